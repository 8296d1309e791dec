//! Action cards: what the client renders. Plain values, serialized exactly as the protocol shows.

use serde::{Deserialize, Serialize};

use crate::domain::Mode;

/// Every kind of card chatpay sends. Clients may rely on `connect_stripe`, `backend_required` and
/// `clarify` (the protocol contract); the rest are documented in `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardKind {
    /// Offers to connect Stripe; has the `connect` action.
    ConnectStripe,
    /// Payments need a project created with the backend.
    BackendRequired,
    /// The matcher was unsure; one action per candidate intent.
    Clarify,
    /// What chatpay can do, as buttons.
    Help,
    /// First step of `stripe_connect`: existing account or a new one?
    ChooseAccount,
    /// Connect an existing account through Stripe's OAuth page.
    ConnectExisting,
    /// Form: legal name, country, email.
    Register,
    /// Form: statement descriptor, business type.
    BusinessProfile,
    /// Verification & payouts on Stripe's hosted onboarding page.
    Onboarding,
    /// The connected account's state in plain words, with the fix when there is one.
    AccountStatus,
    /// Confirm disconnecting Stripe.
    ConfirmDisconnect,
    /// Information: an answer with facts (test mode, timelines, payouts…).
    Info,
    /// The catalog sync progress and result.
    CatalogSync,
    /// The products and prices the app sells.
    Catalog,
    /// An order: paid, failed, refunded, or asked about.
    Order,
    /// Confirm a refund: what, to whom, what remains.
    ConfirmRefund,
    /// A subscription: started, renewed, failed, ended, or asked about.
    Subscription,
    /// Confirm cancelling or resuming a subscription.
    ConfirmSubscription,
    /// A payout: arrived, failed, or asked about.
    Payout,
    /// The go-live checklist: each item, what is missing and how to fix it; or the switch.
    GoLive,
    /// The test catalog copied to live mode: which test item became which live item.
    CatalogCopied,
    /// Confirm a new product: what was understood (name, prices), with Create, Edit, Cancel.
    ConfirmProduct,
    /// Form: a new product's name, description, currency and prices.
    EditProduct,
    /// A product in the catalog: its prices, whether it sells, its buy link.
    Product,
    /// Confirm a change to a product: a new price (what happens to subscribers), a new name or
    /// description, archiving (what it means for open checkouts and subscriptions), restoring.
    ConfirmProductChange,
    /// Confirm a new discount code: code, discount, duration, limits, expiry, who.
    ConfirmCode,
    /// A discount code just created.
    Code,
    /// The active discount codes with how often each was used.
    Codes,
    /// A dispute of an order: opened (with `accept` and `evidence`), won or lost; or an early
    /// fraud warning (with `refund`).
    Dispute,
    /// Confirm accepting a dispute.
    ConfirmDispute,
    /// The evidence for a dispute, pre-filled, to edit and submit (`submit`).
    DisputeEvidence,
    /// Confirm a plan change: the plans, what Stripe charges now and at renewal (`confirm`).
    ConfirmPlanChange,
    /// A subscriber's billing portal link (a link action, `open`).
    PortalLink,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CardKind::ConnectStripe => "connect_stripe",
            CardKind::BackendRequired => "backend_required",
            CardKind::Clarify => "clarify",
            CardKind::Help => "help",
            CardKind::ChooseAccount => "choose_account",
            CardKind::ConnectExisting => "connect_existing",
            CardKind::Register => "register",
            CardKind::BusinessProfile => "business_profile",
            CardKind::Onboarding => "onboarding",
            CardKind::AccountStatus => "account_status",
            CardKind::ConfirmDisconnect => "confirm_disconnect",
            CardKind::Info => "info",
            CardKind::CatalogSync => "catalog_sync",
            CardKind::Catalog => "catalog",
            CardKind::Order => "order",
            CardKind::ConfirmRefund => "confirm_refund",
            CardKind::Subscription => "subscription",
            CardKind::ConfirmSubscription => "confirm_subscription",
            CardKind::Payout => "payout",
            CardKind::GoLive => "go_live",
            CardKind::CatalogCopied => "catalog_copied",
            CardKind::ConfirmProduct => "confirm_product",
            CardKind::EditProduct => "edit_product",
            CardKind::Product => "product",
            CardKind::ConfirmProductChange => "confirm_product_change",
            CardKind::ConfirmCode => "confirm_code",
            CardKind::Code => "code",
            CardKind::Codes => "codes",
            CardKind::Dispute => "dispute",
            CardKind::ConfirmDispute => "confirm_dispute",
            CardKind::DisputeEvidence => "dispute_evidence",
            CardKind::ConfirmPlanChange => "confirm_plan_change",
            CardKind::PortalLink => "portal_link",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub id: String,
    pub kind: CardKind,
    pub title: String,
    pub body: String,
    /// Which Stripe mode this card is about.
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<Fact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    pub actions: Vec<Action>,
}

/// A labelled value shown on a card ("Payouts": "enabled").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Email,
    Select,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    /// For `select`: the allowed values and their labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Choice>,
    /// A value to start from (what the user entered before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    Primary,
    Secondary,
    Danger,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub label: String,
    pub style: Style,
    /// An action that opens a page (Stripe onboarding, OAuth) instead of being clicked back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Action {
    pub fn new(id: &str, label: &str, style: Style) -> Action {
        Action {
            id: id.to_owned(),
            label: label.to_owned(),
            style,
            url: None,
        }
    }

    pub fn primary(id: &str, label: &str) -> Action {
        Action::new(id, label, Style::Primary)
    }

    pub fn secondary(id: &str, label: &str) -> Action {
        Action::new(id, label, Style::Secondary)
    }

    pub fn link(id: &str, label: &str, url: &str) -> Action {
        Action {
            url: Some(url.to_owned()),
            ..Action::primary(id, label)
        }
    }
}

impl Field {
    pub fn text(name: &str, label: &str) -> Field {
        Field {
            name: name.to_owned(),
            label: label.to_owned(),
            kind: FieldKind::Text,
            required: true,
            options: Vec::new(),
            value: None,
            help: None,
        }
    }

    pub fn with_kind(mut self, kind: FieldKind) -> Field {
        self.kind = kind;
        self
    }

    pub fn with_value(mut self, value: Option<&str>) -> Field {
        self.value = value.map(str::to_owned);
        self
    }

    pub fn with_help(mut self, help: &str) -> Field {
        self.help = Some(help.to_owned());
        self
    }

    pub fn with_options<'a>(
        mut self,
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Field {
        self.kind = FieldKind::Select;
        self.options = options
            .into_iter()
            .map(|(v, l)| Choice {
                value: v.to_owned(),
                label: l.to_owned(),
            })
            .collect();
        self
    }
}

impl Fact {
    pub fn new(label: &str, value: impl Into<String>) -> Fact {
        Fact {
            label: label.to_owned(),
            value: value.into(),
        }
    }
}
