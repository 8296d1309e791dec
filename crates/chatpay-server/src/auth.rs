//! Who is calling: credentials, workspaces and passwords.
//!
//! Every credential is a `tokens` row of a workspace (`chatpay_store::TokenKind`), its secret a
//! prefix and 40 random hex digits, shown once and stored only as a SHA-256 hash (160 random
//! bits make a fast hash safe here: there is nothing to brute-force):
//!
//! - `cpk_…` an API token (`chatpay token create`, Settings → API tokens), sent as
//!   `Authorization: Bearer` or in the chat's `hello`;
//! - `cpt_…` a short-lived token a platform minted for one workspace or one project, used the
//!   same way, refused once it expires;
//! - `cpx_…` a person's browser session, only ever in an HttpOnly cookie; sliding: each use
//!   moves its end to [`SESSION_DAYS`] from then.
//!
//! What a credential may reach is its [`Principal`]: its workspace's projects, or the one
//! project a scoped token names. Passwords are Argon2id hashes (PHC strings, the `argon2`
//! crate's defaults), checked in constant time by the crate.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use chatpay_core::domain::{PersonId, ProjectId, TokenId, WorkspaceId, now_millis, random_hex};
use chatpay_store::{
    NewToken, Store, StoreError, StoreResult, TokenKind, TokenRecord, WorkspaceRecord,
};

/// An API token's prefix.
pub const API_PREFIX: &str = "cpk_";
/// A scoped (platform-minted) token's prefix.
pub const SCOPED_PREFIX: &str = "cpt_";
/// A browser session's prefix (the cookie's value).
pub const SESSION_PREFIX: &str = "cpx_";

/// How long a session lasts after its last use.
pub const SESSION_DAYS: i64 = 30;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// A use is recorded (and a session slid) at most this often, so reads do not all write.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// Hex SHA-256 of a token, as stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a verified credential may reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The credential's id (revoking it ends this principal).
    pub credential: TokenId,
    pub kind: TokenKind,
    pub workspace: WorkspaceId,
    /// A scoped token's one project; `None`: every project of the workspace.
    pub project: Option<ProjectId>,
    /// The person a session belongs to.
    pub person: Option<PersonId>,
    /// When it stops working on its own (a scoped token's expiry, a session's current end).
    pub expires_at: Option<i64>,
}

impl Principal {
    /// Whether this principal may reach the project of `workspace` with id `project`.
    pub fn reaches(&self, workspace: &WorkspaceId, project: &ProjectId) -> bool {
        &self.workspace == workspace && self.project.as_ref().is_none_or(|p| p == project)
    }
}

/// Which workspace a new API token belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The deployment's first workspace, created on an empty database.
    First,
    /// This workspace (it must exist).
    Workspace(WorkspaceId),
    /// A new workspace named as the token.
    New,
}

/// A new credential's secret and its stored record's id.
pub struct Minted {
    pub id: TokenId,
    pub workspace: WorkspaceId,
    /// Shown once.
    pub secret: String,
}

/// A new workspace named `name`.
pub async fn create_workspace(store: &dyn Store, name: &str) -> StoreResult<WorkspaceRecord> {
    let w = WorkspaceRecord {
        id: WorkspaceId::generate(),
        name: name.to_owned(),
        created_at: now_millis(),
    };
    store.insert_workspace(&w).await?;
    Ok(w)
}

/// The workspace `target` names, created when it asks for a new (or the first) one.
pub async fn workspace_for(
    store: &dyn Store,
    target: &Target,
    name: &str,
) -> StoreResult<WorkspaceId> {
    match target {
        Target::First => match store.first_workspace().await? {
            Some(w) => Ok(w.id),
            None => Ok(create_workspace(store, name).await?.id),
        },
        Target::Workspace(id) => match store.workspace(id).await? {
            Some(w) => Ok(w.id),
            None => Err(StoreError::NotFound),
        },
        Target::New => Ok(create_workspace(store, name).await?.id),
    }
}

/// Stores a new credential of `kind` in `workspace` and returns its secret (the only time it
/// is visible).
pub async fn mint(
    store: &dyn Store,
    workspace: &WorkspaceId,
    kind: TokenKind,
    name: &str,
    person: Option<&PersonId>,
    project: Option<&ProjectId>,
    expires_at: Option<i64>,
) -> StoreResult<Minted> {
    let prefix = match kind {
        TokenKind::Api => API_PREFIX,
        TokenKind::Scoped => SCOPED_PREFIX,
        TokenKind::Session => SESSION_PREFIX,
    };
    let secret = format!("{prefix}{}", random_hex(20));
    let id = TokenId::generate();
    store
        .insert_token(NewToken {
            id: &id,
            workspace_id: workspace,
            kind,
            name,
            secret_hash: &hash(&secret),
            person_id: person,
            project_id: project,
            expires_at,
        })
        .await?;
    Ok(Minted {
        id,
        workspace: workspace.clone(),
        secret,
    })
}

/// A new API token named `name` of the workspace `target` names.
pub async fn create_api_token(
    store: &dyn Store,
    name: &str,
    target: &Target,
) -> StoreResult<Minted> {
    let workspace = workspace_for(store, target, name).await?;
    mint(store, &workspace, TokenKind::Api, name, None, None, None).await
}

/// Creates an API token named `name` of the deployment's first workspace (creating it on an
/// empty database) and returns it, as `chatpay token create --name NAME` does.
pub async fn create_token(store: &dyn Store, name: &str) -> StoreResult<String> {
    Ok(create_api_token(store, name, &Target::First).await?.secret)
}

/// The kind a secret's prefix says it is, when it is shaped like one of ours.
fn kind_of(secret: &str) -> Option<TokenKind> {
    let (kind, body) = if let Some(b) = secret.strip_prefix(API_PREFIX) {
        (TokenKind::Api, b)
    } else if let Some(b) = secret.strip_prefix(SCOPED_PREFIX) {
        (TokenKind::Scoped, b)
    } else if let Some(b) = secret.strip_prefix(SESSION_PREFIX) {
        (TokenKind::Session, b)
    } else {
        return None;
    };
    (body.len() == 40 && body.bytes().all(|b| b.is_ascii_hexdigit())).then_some(kind)
}

/// The principal of `secret` if it is a live credential of one of the `accepted` kinds
/// (not revoked, not expired); records the use, and slides a session.
pub async fn verify(
    store: &dyn Store,
    secret: &str,
    accepted: &[TokenKind],
) -> StoreResult<Option<Principal>> {
    let Some(kind) = kind_of(secret) else {
        return Ok(None);
    };
    if !accepted.contains(&kind) {
        return Ok(None);
    }
    let Some(t) = store.token_by_hash(&hash(secret)).await? else {
        return Ok(None);
    };
    let now = now_millis();
    if t.kind != kind || t.revoked_at.is_some() || t.expires_at.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    let mut expires_at = t.expires_at;
    if t.last_used_at.is_none_or(|u| now - u >= TOUCH_EVERY_MS) {
        let slid = (t.kind == TokenKind::Session).then_some(now + SESSION_DAYS * DAY_MS);
        store.touch_token(&t.id, now, slid).await?;
        expires_at = slid.or(expires_at);
    }
    Ok(Some(principal(t, expires_at)))
}

fn principal(t: TokenRecord, expires_at: Option<i64>) -> Principal {
    Principal {
        credential: t.id,
        kind: t.kind,
        workspace: t.workspace_id,
        project: t.project_id,
        person: t.person_id,
        expires_at,
    }
}

/// When a new session ends unless it is used.
pub fn session_expiry(now: i64) -> i64 {
    now + SESSION_DAYS * DAY_MS
}

/// The Argon2id hash of `password` (a PHC string with its own random salt).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("random salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?
        .to_string())
}

/// Whether `password` matches the stored hash.
pub fn check_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to check against when there is no such person, so that a wrong email costs the same
/// time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not anybody's password").expect("hashing works"))
}

/// What a new password must be: 10 to 200 characters.
pub fn password_problem(password: &str) -> Option<&'static str> {
    let n = password.chars().count();
    if n < 10 {
        Some("Use at least 10 characters.")
    } else if n > 200 {
        Some("Use at most 200 characters.")
    } else {
        None
    }
}

/// An email as stored: trimmed and lowercased; `None` when it does not look like one.
pub fn normalize_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e.chars().any(char::is_whitespace);
    ok.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id_and_checked() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(check_password("correct horse battery", &h));
        assert!(!check_password("wrong horse battery", &h));
        assert!(!check_password("anything", "not a hash"));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn secrets_are_told_apart_by_prefix() {
        let hex40 = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(kind_of(&format!("cpk_{hex40}")), Some(TokenKind::Api));
        assert_eq!(kind_of(&format!("cpt_{hex40}")), Some(TokenKind::Scoped));
        assert_eq!(kind_of(&format!("cpx_{hex40}")), Some(TokenKind::Session));
        assert_eq!(kind_of("cpk_short"), None);
        assert_eq!(kind_of(&format!("cpq_{hex40}")), None);
    }

    #[test]
    fn emails_are_normalized() {
        assert_eq!(
            normalize_email("  Maya@Example.COM "),
            Some("maya@example.com".to_owned())
        );
        assert_eq!(normalize_email("maya"), None);
        assert_eq!(normalize_email("maya@localhost"), None);
        assert_eq!(normalize_email("ma ya@example.com"), None);
    }

    #[test]
    fn a_scoped_principal_reaches_one_project() {
        let w = WorkspaceId::generate();
        let (p, q) = (ProjectId::generate(), ProjectId::generate());
        let mut who = Principal {
            credential: TokenId::generate(),
            kind: TokenKind::Scoped,
            workspace: w.clone(),
            project: Some(p.clone()),
            person: None,
            expires_at: None,
        };
        assert!(who.reaches(&w, &p));
        assert!(!who.reaches(&w, &q));
        assert!(!who.reaches(&WorkspaceId::generate(), &p));
        who.project = None;
        assert!(who.reaches(&w, &q));
    }
}
