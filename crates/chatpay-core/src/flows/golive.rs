//! `go_live`: the checklist that switches a project from test to live mode, and the way back.
//!
//! A project starts in test mode. "Go live" (the chat, or `POST /v1/projects/{id}/mode`) asks
//! the server for the facts the checklist needs (`Call::CheckLive`: the live account re-read
//! from Stripe with the live key, the stored live catalog, the webhook ledger, the configured
//! keys) and [`checklist`] decides, item by item, what is missing and how to fix it. Only when
//! every item passes does the turn switch the project (`Effect::SetMode`, committed with the
//! turn's frames). The check is one read, not a step, so it runs beside whatever flow is
//! active, and a restart re-issues it like any call in flight.
//!
//! Live Stripe objects exist only in live mode, so the live account is connected and the live
//! catalog synced while the project still takes test payments: the checklist's fix buttons put
//! the conversation in *live setup* (`ConversationState::setup`), where what the person does in
//! the chat (connect, sync, ask for the account's status) works in live mode. "Back to test
//! mode" leaves it, and switches a live project back, without a checklist.
//!
//! ```text
//! go live ─> checking ─┬─ every item passes ─> live (the project switches)
//!                      └─ something missing ─> not_ready (checklist card: fix buttons)
//!                                                 └─ connect / sync / status: live setup
//! ```

use super::{Call, CallError, CallOutput, Entry, FlowKind, Owner, Purpose, Turn};
use crate::account::AccountSnapshot;
use crate::cards::{Action, CardKind, Fact};
use crate::domain::Mode;

/// What the server found for the checklist (`Call::CheckLive`), all of it in live mode.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFacts {
    /// The live account as Stripe reports it now (not the stored snapshot): `None` when no
    /// live account is connected, `Err` (why, safe to show) when Stripe could not be asked.
    pub account: Option<Result<AccountSnapshot, String>>,
    /// The stored live catalog: `None` when it was never synced, else (products, sellable).
    pub catalog: Option<(usize, usize)>,
    /// The webhook ledger holds a verified (signed) live-mode event for the live account.
    pub signed_live_event: bool,
    /// A live secret key is configured (the built-in sandbox always has its own).
    pub live_key: bool,
    /// Test products ready to sell: what "Copy your test catalog to live" would copy.
    pub test_sellable: usize,
}

/// The checklist's items, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckCode {
    AccountActive,
    LiveCatalog,
    LiveWebhook,
    StatementDescriptor,
    LiveKeys,
}

impl CheckCode {
    pub const ALL: [CheckCode; 5] = [
        CheckCode::AccountActive,
        CheckCode::LiveCatalog,
        CheckCode::LiveWebhook,
        CheckCode::StatementDescriptor,
        CheckCode::LiveKeys,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckCode::AccountActive => "account_active",
            CheckCode::LiveCatalog => "live_catalog",
            CheckCode::LiveWebhook => "live_webhook",
            CheckCode::StatementDescriptor => "statement_descriptor",
            CheckCode::LiveKeys => "live_keys",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CheckCode::AccountActive => "Live account active",
            CheckCode::LiveCatalog => "Live catalog synced",
            CheckCode::LiveWebhook => "Live webhooks arrive",
            CheckCode::StatementDescriptor => "Statement descriptor",
            CheckCode::LiveKeys => "Live keys",
        }
    }
}

/// One item of the checklist: whether it passes, what was found, and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckItem {
    pub code: CheckCode,
    pub ok: bool,
    /// What was found (what is missing, when it fails).
    pub detail: String,
    /// How to fix it, when it fails.
    pub fix: Option<String>,
    /// The checklist card's action that starts the fix in the chat, if chatpay can do it.
    pub action: Option<&'static str>,
}

impl CheckItem {
    fn pass(code: CheckCode, detail: String) -> CheckItem {
        CheckItem {
            code,
            ok: true,
            detail,
            fix: None,
            action: None,
        }
    }

    fn fail(
        code: CheckCode,
        detail: String,
        fix: String,
        action: Option<&'static str>,
    ) -> CheckItem {
        CheckItem {
            code,
            ok: false,
            detail,
            fix: Some(fix),
            action,
        }
    }
}

/// The label of the checklist card's button for a fix chatpay can start (a [`CheckItem`]'s
/// `action`): the card shows it, and the Go live page offers the same button.
pub fn action_label(action: &str) -> Option<&'static str> {
    match action {
        "connect_live" => Some("Connect your live account"),
        "live_status" => Some("Show the live account"),
        "sync_live" => Some("Sync your live catalog"),
        "copy_catalog" => Some("Copy your test catalog to live"),
        _ => None,
    }
}

/// Decides each item from what the server found. `webhook_url` is where Stripe must send
/// events (shown in the webhook item's fix).
pub fn checklist(f: &LiveFacts, webhook_url: &str) -> Vec<CheckItem> {
    let account = match &f.account {
        Some(Ok(a)) => Some(a),
        _ => None,
    };
    let needs_account = "Connect a live account first (the first item).".to_owned();
    let mut items = Vec::with_capacity(CheckCode::ALL.len());

    items.push(match &f.account {
        None => CheckItem::fail(
            CheckCode::AccountActive,
            "No live-mode Stripe account is connected: test accounts don't exist in live mode.".to_owned(),
            "Press \"Connect your live account\": chatpay sets it up in live mode while your app keeps taking test payments.".to_owned(),
            Some("connect_live"),
        ),
        Some(Err(why)) => CheckItem::fail(
            CheckCode::AccountActive,
            format!("Stripe couldn't be asked about the live account ({why})."),
            "Check again in a moment; if it keeps failing, check the live secret key.".to_owned(),
            Some("check_again"),
        ),
        Some(Ok(a)) => {
            let r = &a.requirements;
            let mut missing = Vec::new();
            if !a.charges_enabled {
                missing.push("charges are disabled".to_owned());
            }
            if !a.payouts_enabled {
                missing.push("payouts are disabled".to_owned());
            }
            if !r.currently_due.is_empty() || !r.past_due.is_empty() {
                let needs = a.needs_in_plain_words();
                missing.push(if needs.is_empty() {
                    "Stripe needs more details".to_owned()
                } else {
                    format!("Stripe needs: {}", needs.join("; "))
                });
            }
            if missing.is_empty() {
                CheckItem::pass(
                    CheckCode::AccountActive,
                    "The live account is active: charges and payouts enabled, nothing due.".to_owned(),
                )
            } else {
                CheckItem::fail(
                    CheckCode::AccountActive,
                    format!("The account isn't active in live mode yet: {}.", missing.join(", ")),
                    "Press \"Show the live account\" and finish what Stripe asks for on its page (Fix now), then check again.".to_owned(),
                    Some("live_status"),
                )
            }
        }
    });

    // With a live account and test products to sell, the fix is to copy them.
    let copy = account.is_some() && f.test_sellable > 0;
    let sync = if copy {
        Some("copy_catalog")
    } else {
        f.account.is_some().then_some("sync_live")
    };
    let copy_fix = format!(
        "Press \"Copy your test catalog to live\": your {} test product{} ready to sell, their prices and your active discount codes are made in live mode (what live mode has already, by name, is kept), and the live catalog is synced.",
        f.test_sellable,
        if f.test_sellable == 1 { "" } else { "s" }
    );
    items.push(match f.catalog {
        None => CheckItem::fail(
            CheckCode::LiveCatalog,
            "The live catalog has never been synced.".to_owned(),
            if copy {
                copy_fix
            } else {
                "Create your products in Stripe in live mode (test products don't exist there), then press \"Sync your live catalog\".".to_owned()
            },
            sync,
        ),
        Some((products, 0)) => CheckItem::fail(
            CheckCode::LiveCatalog,
            format!("None of the {products} products in the live catalog can be sold."),
            if copy {
                copy_fix
            } else {
                "Give a product an active one-time or recurring price in Stripe's live mode, then sync the live catalog again.".to_owned()
            },
            sync,
        ),
        Some((products, sellable)) => CheckItem::pass(
            CheckCode::LiveCatalog,
            format!("{sellable} of {products} live products are ready to sell."),
        ),
    });

    items.push(if f.signed_live_event {
        CheckItem::pass(
            CheckCode::LiveWebhook,
            "Stripe's live webhook endpoint reaches chatpay: a signed live event for the account was received.".to_owned(),
        )
    } else if account.is_none() {
        CheckItem::fail(
            CheckCode::LiveWebhook,
            "No signed live event can arrive before a live account is connected.".to_owned(),
            needs_account.clone(),
            None,
        )
    } else {
        CheckItem::fail(
            CheckCode::LiveWebhook,
            "No signed live-mode event for the live account has reached chatpay yet.".to_owned(),
            format!(
                "In the Stripe Dashboard, in live mode, add a webhook endpoint at {webhook_url} for events on connected accounts, and configure its signing secret as [stripe] webhook_secret. The account's next event (an account.updated) completes this item; then check again."
            ),
            None,
        )
    });

    items.push(match account {
        None => CheckItem::fail(
            CheckCode::StatementDescriptor,
            "The statement descriptor is read from the live account.".to_owned(),
            needs_account,
            None,
        ),
        Some(a) => match a.statement_descriptor.as_deref().map(str::trim) {
            Some(d) if !d.is_empty() => CheckItem::pass(
                CheckCode::StatementDescriptor,
                format!("Card statements will show \"{d}\"."),
            ),
            _ => CheckItem::fail(
                CheckCode::StatementDescriptor,
                "The live account has no statement descriptor, so customers' card statements wouldn't name your business.".to_owned(),
                "Set it in the Stripe Dashboard in live mode (Settings -> Public details -> Statement descriptor: 5-22 Latin characters, your recognizable business name), then check again.".to_owned(),
                None,
            ),
        },
    });

    items.push(if f.live_key {
        CheckItem::pass(
            CheckCode::LiveKeys,
            "A live secret key is configured.".to_owned(),
        )
    } else {
        CheckItem::fail(
            CheckCode::LiveKeys,
            "No live secret key is configured, so chatpay can't act in live mode.".to_owned(),
            "Set [stripe] live_secret_key in the config (or STRIPE_LIVE_SECRET_KEY) to your sk_live_ key and restart chatpay.".to_owned(),
            None,
        )
    });
    items
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl Turn<'_, '_> {
    fn webhook_url(&self) -> String {
        format!("{}/v1/webhooks/stripe", self.facts.links.public)
    }

    /// Works in `mode` from here on in this turn: its connection becomes the turn's.
    fn work_in(&mut self, mode: Mode) {
        if mode != self.mode {
            std::mem::swap(&mut self.connection, &mut self.other);
            self.mode = mode;
        }
    }

    /// "Go live", or `POST …/mode {"mode":"live"}`: runs the checklist (joins one running).
    pub(super) fn start_go_live(&mut self, entry: Entry) {
        if !self.facts.backend {
            self.backend_required();
            return;
        }
        if self.project_mode.is_live() {
            self.reply("This project is already in live mode: payments are real. Say \"switch back to test mode\" to go back.");
            self.present_step();
            return;
        }
        if self.state.pending.iter().any(|p| p.call == Call::CheckLive) {
            if entry == Entry::Chat {
                self.reply("I'm already checking whether this project is ready for live payments; the result will appear here.");
            }
            return;
        }
        self.flow_frame(FlowKind::GoLive, "checking");
        self.reply(
            "Checking whether this project is ready to take real payments: the live account (asked from Stripe now), the live catalog, live webhooks, the statement descriptor and the live keys.",
        );
        self.call(Call::CheckLive, Purpose::Answer);
    }

    pub(super) fn golive_done(&mut self, result: Result<CallOutput, CallError>) {
        let facts = match result {
            Ok(CallOutput::LiveChecked(facts)) => facts,
            Ok(_) => return,
            Err(e) => {
                self.flow_frame(FlowKind::GoLive, "not_ready");
                self.reply(format!(
                    "I couldn't run the go-live checklist ({}); nothing changed. Say \"go live\" to try again.",
                    e.message
                ));
                self.present_step();
                return;
            }
        };
        if self.project_mode.is_live() {
            // Switched meanwhile (another request's checklist passed first).
            return;
        }
        let items = checklist(&facts, &self.webhook_url());
        if items.iter().all(|i| i.ok) {
            self.switch_live(&items);
        } else {
            self.not_ready(&items);
        }
        self.present_step();
    }

    fn switch_live(&mut self, items: &[CheckItem]) {
        self.effects.push(super::Effect::SetMode(Mode::Live));
        self.project_mode = Mode::Live;
        self.state.setup = None;
        self.work_in(Mode::Live);
        self.drop_cards(|c| c.owner != Owner::GoLive);
        self.flow_frame(FlowKind::GoLive, "live");
        let mut card = self.facts_card(
            CardKind::GoLive,
            "You're live",
            "Every item of the checklist passes, so this project now takes real payments: checkouts, orders and the catalog are the live ones (test orders stay in test mode). Say \"switch back to test mode\" any time.".to_owned(),
            items
                .iter()
                .map(|i| Fact::new(i.code.label(), i.detail.clone()))
                .collect(),
        );
        card.actions = Vec::new();
        self.show_info(card);
    }

    fn not_ready(&mut self, items: &[CheckItem]) {
        self.flow_frame(FlowKind::GoLive, "not_ready");
        let missing: Vec<&CheckItem> = items.iter().filter(|i| !i.ok).collect();
        let mut body = format!(
            "Not switching yet: {} of {} items are ready, and the project stays in test mode.",
            items.len() - missing.len(),
            items.len()
        );
        for (n, i) in missing.iter().enumerate() {
            body.push_str(&format!(
                " {}. {}: {} Fix: {}",
                n + 1,
                i.code.label(),
                i.detail,
                i.fix.as_deref().unwrap_or("")
            ));
        }
        let mut card = self.facts_card(
            CardKind::GoLive,
            "Not ready for live payments yet",
            body,
            items
                .iter()
                .map(|i| Fact::new(i.code.label(), if i.ok { "ready" } else { "missing" }))
                .collect(),
        );
        // The checklist is about live mode, whichever mode the conversation works in.
        card.mode = Mode::Live;
        let mut actions: Vec<&str> = missing.iter().filter_map(|i| i.action).collect();
        actions.dedup();
        for a in actions {
            let Some(label) = action_label(a) else {
                continue;
            };
            card.actions.push(Action::primary(a, label));
        }
        card.actions
            .push(Action::secondary("check_again", "Check again"));
        if self.state.setup.is_some() {
            card.actions
                .push(Action::secondary("back_to_test", "Back to test mode"));
        }
        self.drop_cards(|c| c.owner != Owner::GoLive);
        self.show(card, Owner::GoLive);
    }

    pub(super) fn golive_click(&mut self, action: &str) {
        match action {
            "connect_live" => {
                if self.enter_setup() {
                    if self.connection.is_some() {
                        self.account_status(None);
                    } else {
                        self.start_connect(Entry::Chat, false);
                    }
                }
            }
            "live_status" => {
                if self.enter_setup() {
                    self.account_status(None);
                }
            }
            "sync_live" => {
                if self.enter_setup() {
                    self.start_sync(Entry::Chat);
                }
            }
            "copy_catalog" => self.copy_catalog(),
            "back_to_test" => self.back_to_test(Entry::Chat),
            _ => self.start_go_live(Entry::Chat),
        }
    }

    /// "Copy your test catalog to live": one call (`Call::CopyCatalog`, a stored operation)
    /// makes each test item in live mode with a key derived from the project and the test
    /// item's id, so a double click, a retry or a crash copies each item once.
    fn copy_catalog(&mut self) {
        if self.project_mode.is_live() {
            self.reply("This project is already in live mode.");
            return;
        }
        if self
            .state
            .pending
            .iter()
            .any(|p| p.call == Call::CopyCatalog)
        {
            self.reply(
                "I'm already copying your test catalog to live mode; the result will appear here.",
            );
            return;
        }
        self.drop_cards(|c| c.owner != Owner::GoLive);
        self.reply("Copying your test catalog (products, prices and discount codes) to live mode…");
        self.call(Call::CopyCatalog, Purpose::Answer);
    }

    pub(super) fn copy_done(&mut self, result: Result<CallOutput, CallError>) {
        let report = match result {
            Ok(CallOutput::CatalogCopied(r)) => r,
            Ok(_) => return,
            Err(e) => {
                self.reply(format!(
                    "Copying the catalog to live mode stopped: {}. What was copied stays (nothing is made twice); press \"Check again\" or say \"go live\" to try again.",
                    e.message
                ));
                return;
            }
        };
        let made = report.items.iter().filter(|i| !i.existed).count();
        let mut body = format!(
            "{made} item{} made in live mode; {} live product{} ready to sell. Live objects have ids of their own: buy links and checkouts use them once the project is live.",
            if made == 1 { "" } else { "s" },
            report.live_sellable,
            if report.live_sellable == 1 { "" } else { "s" },
        );
        if report.items.iter().any(|i| i.existed) {
            body.push_str(
                " Live mode had some already (same name): those were kept, not copied again.",
            );
        }
        if !report.skipped.is_empty() {
            body.push_str(&format!(" Not copied: {}.", report.skipped.join("; ")));
        }
        let facts = report
            .items
            .iter()
            .map(|i| {
                Fact::new(
                    &format!("{} {}", capital(i.kind), i.name),
                    format!(
                        "{} -> {}{}",
                        i.test,
                        i.live,
                        if i.existed { " (already live)" } else { "" }
                    ),
                )
            })
            .collect();
        let mut card = self.facts_card(
            CardKind::CatalogCopied,
            "Test catalog copied to live",
            body,
            facts,
        );
        card.mode = Mode::Live;
        card.actions = Vec::new();
        self.show_info(card);
        // The checklist again: its catalog item passes now.
        self.start_go_live(Entry::Chat);
    }

    /// Puts the conversation in live setup; false (having said why) when it can't now.
    fn enter_setup(&mut self) -> bool {
        if self.project_mode.is_live() {
            self.reply("This project is already in live mode.");
            return false;
        }
        if self.state.setup == Some(Mode::Live) {
            self.work_in(Mode::Live);
            return true;
        }
        if self.state.flow.is_some() {
            self.reply("Let's finish what we're doing first, or say \"cancel\".");
            self.present_step();
            return false;
        }
        self.state.setup = Some(Mode::Live);
        self.work_in(Mode::Live);
        self.reply(
            "Setting up live mode. Your app keeps taking test payments until the checklist passes and the project goes live; say \"back to test mode\" to stop.",
        );
        true
    }

    /// "Switch back to test mode", or `POST …/mode {"mode":"test"}`: always possible, no
    /// checklist. Leaves live setup too.
    pub(super) fn back_to_test(&mut self, entry: Entry) {
        let was_live = self.project_mode.is_live();
        let was_setting_up = self.state.setup.is_some();
        if !was_live && !was_setting_up {
            if entry == Entry::Chat {
                self.reply("This project is already in test mode: no real money moves.");
                self.present_step();
            }
            return;
        }
        self.state.setup = None;
        // A live connection under way stops here; what it connected stays.
        if self
            .state
            .flow
            .as_ref()
            .is_some_and(|f| f.kind == FlowKind::StripeConnect && f.mode != Some(Mode::Test))
        {
            self.cancel_flow();
        }
        self.work_in(Mode::Test);
        self.drop_cards(|c| c.owner != Owner::GoLive);
        if was_live {
            self.effects.push(super::Effect::SetMode(Mode::Test));
            self.project_mode = Mode::Test;
            self.reply(
                "Back in test mode: checkouts, orders and the catalog are the test ones again, and no real money moves. Your live account, catalog and orders stay as they are; say \"go live\" to switch again (the checklist runs again).",
            );
        } else {
            self.reply(
                "Stopped setting up live mode: you're working in test mode again. What you set up for live stays; say \"go live\" to check where it stands.",
            );
        }
        self.present_step();
    }
}
