//! The transcript format: a conversation as data (TOML), replayed against a real server.
//!
//! ```toml
//! name = "add payments, then connect"
//! [setup]
//! backend = true
//!
//! [[turn]]
//! say = "I want to add payments"
//! expect = [{ type = "card", kind = "connect_stripe", actions = ["connect"] }]
//!
//! [[turn]]
//! click = { kind = "connect_stripe", action = "connect" }
//! expect = [
//!   { type = "flow", flow = "stripe_connect", state = "choose_account" },
//!   { type = "card", kind = "choose_account" },
//! ]
//! ```
//!
//! See `docs/transcripts.md` for every step and expectation.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub setup: Setup,
    #[serde(default, rename = "turn")]
    pub turns: Vec<Turn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Setup {
    /// Create the project with the backend on.
    pub backend: bool,
    /// Create the project with `connect_stripe: true` (the new-project screen's entry point).
    pub connect_stripe: bool,
    /// How many clients connect at the start.
    pub clients: usize,
    /// Connect the clients at the start (false: the first turn must `connect`).
    pub connect: bool,
    /// Turns per second allowed per connection (the server's `chat.turns_per_second`).
    pub rate_limit: Option<u32>,
    /// Start with Stripe connected (an existing account, through OAuth); the frames of that
    /// prelude are not part of the transcript.
    pub connected: bool,
    /// The sandbox enforces Stripe's rate limits (25 requests/s in test mode).
    pub stripe_rate_limit: bool,
    /// The server is configured with a live secret key (false: `[stripe] live_secret_key`
    /// unset, so nothing can be done in live mode).
    pub live_key: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            backend: true,
            connect_stripe: false,
            clients: 1,
            connect: true,
            rate_limit: None,
            connected: false,
            stripe_rate_limit: false,
            live_key: true,
        }
    }
}

/// One step. Exactly one action field is set.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Which client acts (1-based; default 1).
    pub client: Option<usize>,
    /// The client frame id to use (default: generated, unique).
    pub id: Option<String>,

    pub say: Option<String>,
    pub click: Option<Click>,
    /// Send this text as a frame, as is.
    pub raw: Option<String>,
    /// Send a text frame of this many bytes.
    pub oversized: Option<usize>,
    /// Send again the frame that had this id.
    pub resend: Option<String>,
    /// Stop the server abruptly (like kill -9) and start it again on the same database.
    #[serde(default)]
    pub restart: bool,
    /// Drop this client's connection and connect again.
    pub reconnect: Option<Reconnect>,
    /// Connect the client (with `hello`).
    #[serde(default)]
    pub connect: bool,
    /// Send `hello` with these values instead of the right ones.
    pub hello: Option<Hello>,
    /// Call the HTTP API.
    pub http: Option<Http>,
    /// Make the Stripe sandbox do something.
    pub stripe: Option<StripeStep>,
    /// The builder's app receiving chatpay's app webhooks (see [`AppWebhookStep`]).
    pub app_webhook: Option<AppWebhookStep>,
    /// Only wait for the expected frames (pushed by something else).
    #[serde(default)]
    pub wait: bool,
    /// Hold Stripe's webhooks until this turn's expectations are met (a turn whose answer and
    /// the pushes its webhooks cause would otherwise race); they are delivered after it.
    #[serde(default)]
    pub hold_webhooks: bool,
    /// The expected frames may come in any order: pushes caused by independent Stripe events
    /// (a renewal and a payout on the same day) race. Each frame must still match one of them,
    /// and each expectation must be met once.
    #[serde(default)]
    pub unordered: bool,

    /// Frames this client must receive, in order (unless `unordered`).
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// Frames other clients must receive too (every other connected client).
    #[serde(default)]
    pub others_expect: Vec<Expect>,
    /// The connection must be closed with this code.
    pub expect_close: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Click {
    /// The newest card of this kind the client has seen.
    pub kind: String,
    pub action: String,
    #[serde(default)]
    pub values: BTreeMap<String, toml::Value>,
    /// Click an earlier card of that kind: 1 = the first one seen.
    pub nth: Option<usize>,
    /// Use this card id instead (e.g. one from another conversation).
    pub card: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    /// Resume after the last `seq` this client saw (otherwise from 0).
    #[serde(default = "yes")]
    pub resume: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub token: Option<String>,
    /// `other` = a project of another token; `missing` = no such project.
    pub project: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub method: String,
    /// `{project}` is replaced by the transcript's project id.
    pub path: String,
    pub body: Option<toml::Value>,
    /// Send no Authorization header (or a wrong token).
    #[serde(default)]
    pub token: Option<String>,
    pub status: u16,
    /// Fields the JSON answer must contain (dotted paths to values).
    #[serde(default)]
    pub json: BTreeMap<String, toml::Value>,
    /// Text a non-JSON answer (a CSV export) must contain, each piece as written.
    #[serde(default)]
    pub text: Vec<String>,
    /// Repeat the request until the answer matches (state that webhooks update in the
    /// background), failing after the usual patience.
    #[serde(default)]
    pub eventually: bool,
    /// Extra request headers (`Idempotency-Key`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Things the Stripe sandbox can be told to do.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StripeStep {
    /// `complete_onboarding`, `set_outcome`, `authorize_oauth`, `deny_oauth`, `deauthorize`,
    /// `fault`, `expire_link`, `resend_last_event`, `deliver_stale_event`, `follow_link`,
    /// `signed_webhook`.
    pub action: String,
    /// Outcome for `complete_onboarding` / `set_outcome`: verified, pending, more_info, rejected.
    pub outcome: Option<String>,
    /// Rejection reason or requirement, by outcome.
    pub reason: Option<String>,
    /// For `fault`: which method and path prefix, what status, how many times.
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<u16>,
    /// For `fault`: handle the request, then answer `status` (the response is lost).
    #[serde(default)]
    pub lose_response: bool,
    /// For `fault`: answer normally, but this many milliseconds late.
    pub delay_ms: Option<u64>,
    pub count: Option<u32>,
    /// For `resend_last_event` / `deliver_stale_event`: the event type (default
    /// `account.updated`).
    pub event: Option<String>,
    /// For `signed_webhook`: a raw body and whether to sign it correctly.
    pub body: Option<String>,
    #[serde(default)]
    pub bad_signature: bool,
    /// Expected HTTP status from the webhook endpoint for `signed_webhook`, or from the page
    /// the browser lands on for `complete_onboarding`.
    pub expect_status: Option<u16>,
    /// For the catalog steps: a product's name, price (minor units), currency and billing
    /// interval (none: one-time).
    pub name: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<String>,
    /// Hold Stripe's webhooks until this turn's expectations are met, so that the browser
    /// coming back is seen before the webhook (default for the browser steps); false lets
    /// them race as in life.
    pub hold_webhooks: Option<bool>,
    /// For the browser steps: whether the browser follows Stripe's redirect back to chatpay
    /// (false: the person closed the tab).
    pub browse: Option<bool>,
    /// For `pay`: the card number (default 4242 4242 4242 4242), the customer's email, and the
    /// 3D Secure answer (`complete` / `fail`) when the card asks for one; the checkout paid is
    /// the newest one an HTTP step created (or `order`, by number).
    pub card: Option<String>,
    pub email: Option<String>,
    pub authenticate: Option<String>,
    pub order: Option<i64>,
    /// For `pay`: a promotion code the customer types on the checkout page first.
    pub promotion_code: Option<String>,
    /// Which mode's account the step acts on (`live`: the project's live connection, with the
    /// live key); default `test`.
    pub mode: Option<String>,
    /// For `update_account`: the account's new statement descriptor (`""` clears it).
    pub descriptor: Option<String>,
}

impl StripeStep {
    pub fn holds_webhooks(&self) -> bool {
        self.hold_webhooks.unwrap_or(matches!(
            self.action.as_str(),
            "complete_onboarding" | "leave_onboarding" | "authorize_oauth" | "deny_oauth"
        ))
    }
}

/// The builder's app: a receiver of chatpay's signed app webhooks.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AppWebhookStep {
    /// `start`: listen on 127.0.0.1:0 and register with `PUT …/app_webhook` (keeping the secret
    /// it answers); `down` / `up`: answer 500 to every delivery, or stop doing so; `expect`:
    /// wait until the events delivered (answered 2xx) are `events`, in order.
    pub action: String,
    /// For `start`: answer 500 to this many deliveries first.
    pub fail_first: Option<u32>,
    /// For `expect`: the types of every event delivered so far, in order.
    #[serde(default)]
    pub events: Vec<String>,
    /// For `expect`: the `data.object.reason` of each, in order.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// For `expect`: how many deliveries were refused (500) in all; for `wait_refused`: wait
    /// until at least this many were.
    pub refused: Option<usize>,
}

/// One expected frame. Unset fields are not checked.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(rename = "type")]
    pub kind_of_frame: String,
    /// Card kind.
    pub kind: Option<String>,
    /// Action ids the card must have.
    pub actions: Option<Vec<String>>,
    /// Field names the card must have.
    pub card_fields: Option<Vec<String>>,
    /// Text the reply (or the card's title and body) must contain, case-insensitively.
    pub text: Option<String>,
    /// Intent name the frame must carry; "none" for `null`.
    pub intent: Option<String>,
    pub flow: Option<String>,
    pub state: Option<String>,
    /// Error code.
    pub code: Option<String>,
    /// Error fields that must be present.
    pub fields: Option<Vec<String>>,
    /// The frame must carry no `reply_to` (pushed from outside the chat).
    #[serde(default)]
    pub pushed: bool,
    /// The card's mode.
    pub mode: Option<String>,
}
