//! Balance and payouts. Not modeled yet beyond each charge's balance transaction and its
//! `available_on`; this holds their state once they are.

use serde::{Deserialize, Serialize};

/// Payouts of one mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Payouts {}
