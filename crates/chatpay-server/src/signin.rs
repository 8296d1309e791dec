//! The one-time sign-in link a first run prints (the way Jupyter prints its token URL): while
//! nobody has a sign-in, nobody could sign in to the web page, so `chatpay serve` offers a code
//! that the page redeems once, within an hour, to make the owner's sign-in
//! (`POST /v1/session/owner`; `POST /v1/signin` exchanges it for an API token instead).
//!
//! The code lives only in this process, stored as its SHA-256 hash: it is printed by the process
//! that made it and redeemed there; a restart while nobody has a sign-in prints a new one.
//! It travels in the URL's fragment (`/#signin=…`), which browsers never send to the server, so
//! it reaches no access log and no `Referer`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatpay_core::domain::random_hex;

/// How long a printed link works.
pub const VALID_FOR: Duration = Duration::from_secs(60 * 60);

const PREFIX: &str = "cps_";

/// At most one outstanding code; taken when it is redeemed.
#[derive(Default)]
pub struct SignInCode {
    slot: Mutex<Option<(String, Instant)>>,
}

impl SignInCode {
    /// Makes a new code (replacing any earlier one) and returns it: the only time it is visible.
    pub fn issue(&self) -> String {
        let code = format!("{PREFIX}{}", random_hex(16));
        let expires = Instant::now() + VALID_FOR;
        *self.slot.lock().expect("sign-in code lock") = Some((crate::auth::hash(&code), expires));
        code
    }

    /// True once for the code issued last, while it is valid; false for anything else (a
    /// wrong code, a used one, an expired one).
    pub fn redeem(&self, code: &str) -> bool {
        let mut slot = self.slot.lock().expect("sign-in code lock");
        let matches = match slot.as_ref() {
            Some((hash, expires)) => {
                Instant::now() < *expires && *hash == crate::auth::hash(code.trim())
            }
            None => false,
        };
        if matches {
            *slot = None;
        }
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once() {
        let codes = SignInCode::default();
        assert!(!codes.redeem("cps_nothing_issued"));
        let code = codes.issue();
        assert!(code.starts_with(PREFIX));
        assert!(!codes.redeem("cps_wrong"));
        assert!(codes.redeem(&code));
        assert!(!codes.redeem(&code), "a used code is refused");
    }

    #[test]
    fn a_new_code_replaces_the_old_one() {
        let codes = SignInCode::default();
        let old = codes.issue();
        let new = codes.issue();
        assert!(!codes.redeem(&old));
        assert!(codes.redeem(&new));
    }

    #[test]
    fn an_expired_code_is_refused() {
        let codes = SignInCode::default();
        let code = codes.issue();
        codes.slot.lock().unwrap().as_mut().unwrap().1 = Instant::now();
        assert!(!codes.redeem(&code));
    }
}
