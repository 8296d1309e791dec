//! Values that several API bodies share: one form for every time ([`Timestamp`]), the enums
//! the API names (mirrors of the core's, which know nothing of the web), amounts, flows.
//! Converted from the core's types here, at the edge.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use chatpay_core::domain::{Currency, Money};

/// A moment, in UTC. Every time in an API body is one: RFC 3339 to the second, with `Z`
/// (`2026-12-01T09:30:00Z`), whatever unit the core or Stripe counts it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// From milliseconds since the epoch (chatpay's own times).
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(DateTime::from_timestamp_millis(ms).unwrap_or_default())
    }

    /// From seconds since the epoch (Stripe's times).
    pub fn from_secs(s: i64) -> Timestamp {
        Timestamp(DateTime::from_timestamp(s, 0).unwrap_or_default())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("A moment in UTC, RFC 3339 to the second."))
            .examples([serde_json::json!("2026-12-01T09:30:00Z")])
            .into()
    }
}

impl ToSchema for Timestamp {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }
}

/// Mirrors a core enum for the API: same snake_case names, with a schema, converted both ways.
macro_rules! api_enum {
    ($(#[$meta:meta])* $name:ident mirrors $core:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl From<$core> for $name {
            fn from(v: $core) -> $name {
                match v {
                    $($core::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> $core {
                match v {
                    $($name::$variant => $core::$variant),+
                }
            }
        }
    };
}

use chatpay_core::account::AccountState as CoreAccountState;
use chatpay_core::billing::{
    InvoiceStatus as CoreInvoiceStatus, PayoutStatus as CorePayoutStatus,
    SubscriptionStatus as CoreSubscriptionStatus,
};
use chatpay_core::domain::{Mode as CoreMode, Origin as CoreOrigin};
use chatpay_core::orders::OrderStatus as CoreOrderStatus;

api_enum! {
    /// Which Stripe mode: test (no real money) or live.
    Mode mirrors CoreMode { Test, Live }
}

api_enum! {
    /// How a Stripe account was connected: created through chatpay, or an existing one
    /// through Stripe's OAuth page.
    Origin mirrors CoreOrigin { Created, Oauth }
}

api_enum! {
    /// A connected account's state in plain words.
    AccountState mirrors CoreAccountState { Onboarding, VerificationPending, Restricted, Rejected, Active }
}

api_enum! {
    /// An order's status, following Stripe's objects.
    OrderStatus mirrors CoreOrderStatus { Open, Paid, PaymentFailed, Expired, PartiallyRefunded, Refunded }
}

api_enum! {
    /// A subscription's status, as Stripe names it.
    SubscriptionStatus mirrors CoreSubscriptionStatus {
        Incomplete, IncompleteExpired, Trialing, Active, PastDue, Unpaid, Canceled, Paused
    }
}

api_enum! {
    /// An invoice's status, as Stripe names it.
    InvoiceStatus mirrors CoreInvoiceStatus { Draft, Open, Paid, Uncollectible, Void }
}

api_enum! {
    /// A payout's status, as Stripe names it.
    PayoutStatus mirrors CorePayoutStatus { Pending, InTransit, Paid, Failed, Canceled }
}

/// An amount in a currency's minor unit, with the currency and as people read it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Amount {
    /// In the currency's minor unit (cents for USD).
    pub amount: i64,
    /// ISO 4217, lowercase.
    #[schema(example = "usd")]
    pub currency: String,
    /// Formatted (`$49.00`).
    pub display: String,
}

impl Amount {
    pub fn new(amount: i64, currency: Currency) -> Amount {
        Amount {
            amount,
            currency: currency.as_str().to_owned(),
            display: Money::new(amount, currency).to_string(),
        }
    }
}

/// A guided flow and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowRef {
    /// `stripe_connect`, `catalog_sync`, `go_live`.
    pub name: String,
    /// The flow's state (`choose_account`, `syncing`, …); see docs/protocol.md.
    pub state: Option<String>,
}

/// A flow started (or shown where it is) in the project's conversation: its cards are in the
/// chat.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowStarted {
    /// The project's conversation (`cnv_…`).
    pub conversation: String,
    pub flow: Option<FlowRef>,
}

impl From<crate::chat::FlowView> for FlowStarted {
    fn from(v: crate::chat::FlowView) -> FlowStarted {
        FlowStarted {
            conversation: v.conversation,
            flow: v.flow.map(|name| FlowRef {
                name,
                state: v.state,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_has_one_form() {
        let ms = Timestamp::from_millis(1_796_117_400_123);
        let s = Timestamp::from_secs(1_796_117_400);
        assert_eq!(serde_json::to_value(ms).unwrap(), "2026-12-01T09:30:00Z");
        assert_eq!(serde_json::to_value(s).unwrap(), "2026-12-01T09:30:00Z");
    }

    #[test]
    fn enums_keep_the_core_names() {
        for s in CoreOrderStatus::ALL {
            let api = serde_json::to_value(OrderStatus::from(s)).unwrap();
            assert_eq!(api, s.as_str());
        }
        for s in CoreSubscriptionStatus::ALL {
            let api = serde_json::to_value(SubscriptionStatus::from(s)).unwrap();
            assert_eq!(api, s.as_str());
        }
    }
}
