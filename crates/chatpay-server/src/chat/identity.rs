//! People, sessions, API tokens and the platform's workspaces, as the HTTP layer asks for them:
//! the handlers translate, these decide (and only these touch the store for them). The
//! credentials themselves (hashes, kinds, what a principal reaches) are `crate::auth`'s.

use chatpay_core::domain::{PersonId, ProjectId, TokenId, WorkspaceId, now_millis};
use chatpay_store::{PersonRecord, TokenKind, TokenRecord, WorkspaceRecord};

use super::{ChatError, Engine};
use crate::auth::{self, Minted, Principal, Target};

/// The answer to any failed sign-in, whether the email or the password was wrong.
pub const WRONG_SIGN_IN: &str = "That email and password do not match a sign-in here.";

/// How long a teammate's invite link works.
pub const INVITE_DAYS: i64 = 7;

/// The answer to an invite link that is wrong, used or expired.
pub const BAD_INVITE: &str =
    "This invite link is not valid: it works once, within 7 days. Ask for a new one.";

/// The longest a platform's scoped token lives.
pub const SCOPED_MAX_SECONDS: i64 = 60 * 60;

/// A new session: the cookie's secret and who it is.
pub struct Session {
    pub secret: String,
    pub person: PersonRecord,
    pub expires_at: i64,
}

fn scoped_only(who: &Principal) -> Result<(), ChatError> {
    if who.kind == TokenKind::Scoped {
        return Err(ChatError::Forbidden {
            code: "scoped_token",
            message: "A scoped token opens the chat and the API of its workspace or project; it cannot manage API tokens.".to_owned(),
        });
    }
    Ok(())
}

impl Engine {
    /// Whether anybody has a sign-in yet: a first run has nobody, and `serve` prints a link.
    pub async fn has_people(&self) -> Result<bool, ChatError> {
        Ok(self.inner.store.has_people().await?)
    }

    /// The first person's sign-in (the owner's), made from the first-run link: the deployment's
    /// first workspace (created on an empty database) gets the person, who is signed in.
    pub async fn create_owner(&self, email: &str, password: &str) -> Result<Session, ChatError> {
        let store = &*self.inner.store;
        if store.has_people().await? {
            return Err(ChatError::Conflict {
                code: "owner_exists",
                message: "The owner's sign-in exists already: sign in with its email and password."
                    .to_owned(),
            });
        }
        let (email, password) = valid_credentials(email, password)?;
        let workspace = auth::workspace_for(store, &Target::First, "My workspace").await?;
        let person = PersonRecord {
            id: PersonId::generate(),
            workspace_id: workspace,
            email,
            password_hash: auth::hash_password(password)?,
            created_at: now_millis(),
        };
        store.insert_person(&person).await.map_err(|e| match e {
            chatpay_store::StoreError::Conflict(_) => ChatError::Conflict {
                code: "owner_exists",
                message: "That email has a sign-in already.".to_owned(),
            },
            e => e.into(),
        })?;
        self.start_session(person).await
    }

    /// A one-time link that lets one person create their sign-in in the caller's workspace:
    /// the code (shown once, stored as a hash) and when it stops working. Made by a person
    /// signed in (Settings), not by a token.
    pub async fn create_invite(&self, who: &Principal) -> Result<(String, i64), ChatError> {
        if who.kind != TokenKind::Session {
            return Err(ChatError::Forbidden {
                code: "people_only",
                message: "Invites are made by a person signed in to the page (Settings), not with a token.".to_owned(),
            });
        }
        let code = format!("cpi_{}", chatpay_core::domain::random_hex(20));
        let now = now_millis();
        let expires_at = now + INVITE_DAYS * 24 * 60 * 60 * 1000;
        let id = format!("inv_{}", chatpay_core::domain::random_hex(10));
        self.inner
            .store
            .insert_invite(&chatpay_store::NewInvite {
                id: &id,
                workspace_id: &who.workspace,
                code_hash: &auth::hash(&code),
                created_by: who.person.as_ref(),
                created_at: now,
                expires_at,
            })
            .await?;
        Ok((code, expires_at))
    }

    /// Creates the sign-in an invite link offers (in the invite's workspace) and signs in; the
    /// link is used up.
    pub async fn accept_invite(
        &self,
        code: &str,
        email: &str,
        password: &str,
    ) -> Result<Session, ChatError> {
        let store = &*self.inner.store;
        let (email, password) = valid_credentials(email, password)?;
        let code_hash = auth::hash(code);
        let now = now_millis();
        let Some(workspace) = store.invite_workspace(&code_hash, now).await? else {
            return Err(ChatError::Unauthorized(BAD_INVITE.to_owned()));
        };
        let person = PersonRecord {
            id: PersonId::generate(),
            workspace_id: workspace,
            email,
            password_hash: auth::hash_password(password)?,
            created_at: now,
        };
        match store.redeem_invite(&code_hash, now, &person).await {
            Ok(true) => self.start_session(person).await,
            Ok(false) => Err(ChatError::Unauthorized(BAD_INVITE.to_owned())),
            Err(chatpay_store::StoreError::Conflict(_)) => Err(ChatError::Conflict {
                code: "email_taken",
                message: "That email has a sign-in already: sign in with it instead.".to_owned(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Signs in with an email and a password; the same refusal whichever was wrong, after the
    /// same work (a password hash is checked either way).
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Session, ChatError> {
        let found = match auth::normalize_email(email) {
            Some(e) => self.inner.store.person_by_email(&e).await?,
            None => None,
        };
        let stored = found
            .as_ref()
            .map_or(auth::decoy_hash(), |p| p.password_hash.as_str())
            .to_owned();
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || auth::check_password(&password, &stored))
            .await
            .map_err(anyhow::Error::new)?;
        match found {
            Some(person) if ok => self.start_session(person).await,
            _ => Err(ChatError::Unauthorized(WRONG_SIGN_IN.to_owned())),
        }
    }

    async fn start_session(&self, person: PersonRecord) -> Result<Session, ChatError> {
        let expires_at = auth::session_expiry(now_millis());
        let minted = auth::mint(
            &*self.inner.store,
            &person.workspace_id,
            TokenKind::Session,
            "browser session",
            Some(&person.id),
            None,
            Some(expires_at),
        )
        .await?;
        Ok(Session {
            secret: minted.secret,
            person,
            expires_at,
        })
    }

    /// The person a session belongs to.
    pub async fn person(&self, who: &Principal) -> Result<Option<PersonRecord>, ChatError> {
        match &who.person {
            Some(id) => Ok(self.inner.store.person(id).await?),
            None => Ok(None),
        }
    }

    pub async fn workspace(&self, id: &WorkspaceId) -> Result<WorkspaceRecord, ChatError> {
        self.inner
            .store
            .workspace(id)
            .await?
            .ok_or_else(|| ChatError::NotFound(format!("no workspace \"{id}\"")))
    }

    /// Ends the caller's own credential (Sign out ends the session on the server); open
    /// connections using it close.
    pub async fn sign_out(&self, who: &Principal) -> Result<(), ChatError> {
        self.inner
            .store
            .revoke_token(&who.workspace, &who.credential, now_millis())
            .await?;
        self.revoked(&who.credential);
        Ok(())
    }

    /// The workspace's API tokens, oldest first (revoked ones included, marked).
    pub async fn api_tokens(&self, who: &Principal) -> Result<Vec<TokenRecord>, ChatError> {
        scoped_only(who)?;
        Ok(self
            .inner
            .store
            .tokens_of(&who.workspace, TokenKind::Api)
            .await?)
    }

    /// A new API token of the caller's workspace, shown once.
    pub async fn create_api_token(&self, who: &Principal, name: &str) -> Result<Minted, ChatError> {
        scoped_only(who)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ChatError::Rejected {
                code: "invalid_name",
                message: "Name the token (1 to 100 characters): what will use it?".to_owned(),
            });
        }
        Ok(auth::create_api_token(
            &*self.inner.store,
            name,
            &Target::Workspace(who.workspace.clone()),
        )
        .await?)
    }

    /// Revokes one of the workspace's API tokens: it stops working at once, and open
    /// connections using it close.
    pub async fn revoke_api_token(&self, who: &Principal, id: &str) -> Result<(), ChatError> {
        scoped_only(who)?;
        let not_found = || ChatError::NotFound(format!("no API token \"{id}\" in this workspace"));
        let id = TokenId::parse(id).ok_or_else(not_found)?;
        let is_api = self
            .inner
            .store
            .tokens_of(&who.workspace, TokenKind::Api)
            .await?
            .iter()
            .any(|t| t.id == id);
        if !is_api
            || !self
                .inner
                .store
                .revoke_token(&who.workspace, &id, now_millis())
                .await?
        {
            return Err(not_found());
        }
        self.revoked(&id);
        Ok(())
    }

    /// The platform creates a workspace for one of its builders.
    pub async fn platform_workspace(&self, name: &str) -> Result<WorkspaceRecord, ChatError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ChatError::Rejected {
                code: "invalid_name",
                message: "Name the workspace (1 to 200 characters).".to_owned(),
            });
        }
        Ok(auth::create_workspace(&*self.inner.store, name).await?)
    }

    /// The platform mints a short-lived token for a workspace, or for one of its projects.
    pub async fn platform_token(
        &self,
        workspace: &str,
        project: Option<&str>,
        seconds: i64,
    ) -> Result<(Minted, i64), ChatError> {
        let store = &*self.inner.store;
        if !(60..=SCOPED_MAX_SECONDS).contains(&seconds) {
            return Err(ChatError::Rejected {
                code: "invalid_expiry",
                message: format!(
                    "`expires_in` is in seconds, from 60 to {SCOPED_MAX_SECONDS} (an hour)."
                ),
            });
        }
        let workspace = WorkspaceId::parse(workspace)
            .ok_or_else(|| ChatError::NotFound(format!("no workspace \"{workspace}\"")))?;
        let workspace = self.workspace(&workspace).await?.id;
        let project = match project {
            Some(p) => {
                let found = match ProjectId::parse(p) {
                    Some(id) => store.project(&id).await?,
                    None => None,
                };
                Some(
                    found
                        .filter(|r| r.workspace_id == workspace)
                        .ok_or_else(|| {
                            ChatError::NotFound(format!("no project \"{p}\" in this workspace"))
                        })?
                        .id,
                )
            }
            None => None,
        };
        let expires_at = now_millis() + seconds * 1000;
        let minted = auth::mint(
            store,
            &workspace,
            TokenKind::Scoped,
            "platform",
            None,
            project.as_ref(),
            Some(expires_at),
        )
        .await?;
        Ok((minted, expires_at))
    }
}

/// The email as stored and the password, or what is wrong with them.
fn valid_credentials<'a>(email: &str, password: &'a str) -> Result<(String, &'a str), ChatError> {
    let mut fields = std::collections::BTreeMap::new();
    let email = auth::normalize_email(email);
    if email.is_none() {
        fields.insert(
            "email".to_owned(),
            "Enter an email address, like name@example.com.".to_owned(),
        );
    }
    if let Some(p) = auth::password_problem(password) {
        fields.insert("password".to_owned(), p.to_owned());
    }
    match email {
        Some(e) if fields.is_empty() => Ok((e, password)),
        _ => Err(ChatError::InvalidValues(fields)),
    }
}
