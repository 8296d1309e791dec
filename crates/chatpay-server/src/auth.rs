//! API tokens: `cpk_` followed by 40 random hex digits, shown once, stored only as a SHA-256 hash.
//! A token's 160 random bits make a fast hash safe here (nothing to brute-force).

use sha2::{Digest, Sha256};

use chatpay_core::domain::{TokenId, random_hex};
use chatpay_store::{Store, StoreResult};

const PREFIX: &str = "cpk_";

/// Hex SHA-256 of a token, as stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token named `name` and returns it (the only time it is visible).
pub async fn create_token(store: &dyn Store, name: &str) -> StoreResult<String> {
    let token = format!("{PREFIX}{}", random_hex(20));
    store
        .insert_token(&TokenId::generate(), name, &hash(&token))
        .await?;
    Ok(token)
}

/// The token's id if `token` is a valid token.
pub async fn verify(store: &dyn Store, token: &str) -> StoreResult<Option<TokenId>> {
    let plausible = token.len() == PREFIX.len() + 40
        && token.starts_with(PREFIX)
        && token[PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit());
    if !plausible {
        return Ok(None);
    }
    store.token_by_hash(&hash(token)).await
}
