//! `stripe_connect`: connect an existing Stripe account, or create one and see it through Stripe's
//! hosted onboarding to an active account. After onboarding, the account's own state (as Stripe
//! reports it) drives the flow and is pushed into the chat as it changes.
//!
//! ```text
//! choose_account ─ existing ─> connect_existing ─ OAuth ─> exchanging_code ─┐
//!        └─ create ─> register ─> business_profile ─> creating_account ─> onboarding
//!                                                                           │ (return / webhooks)
//!            verification_pending <─> restricted <─> rejected <─────────────┤
//!                                        └──────────> active (flow ends) <──┘
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::answers::{self, format_deadline};
use super::{
    ActiveFlow, Call, CallError, CallOutput, Entry, FlowKind, FlowStep, LinkKind, NewAccount,
    Outside, Owner, Pending, Purpose, Refusal, Turn,
};
use crate::account::{
    AccountSnapshot, AccountState, Fix, USUAL_REJECTION_CAUSES, explain_disabled_reason,
};
use crate::cards::{Action, Card, CardKind, Fact, Field, FieldKind, Style};
use crate::domain::{BusinessType, Country, Email, Origin, StatementDescriptor};

/// What the create-account steps have collected so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub legal_name: Option<String>,
    pub country: Option<Country>,
    pub email: Option<Email>,
    pub statement_descriptor: Option<StatementDescriptor>,
    pub business_type: Option<BusinessType>,
    /// The name customers see on checkout pages, receipts and invoices (Stripe's
    /// `business_profile.name`); the legal name when left empty.
    #[serde(default)]
    pub business_name: Option<String>,
}

/// The steps of `stripe_connect`; the names are what `flow` frames carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ConnectStep {
    ChooseAccount,
    ConnectExisting { nonce: String },
    ExchangingCode,
    Register { draft: Draft },
    BusinessProfile { draft: Draft },
    CreatingAccount { draft: Draft },
    Onboarding { account: String, nonce: String },
    VerificationPending { account: String },
    Restricted { account: String },
    Rejected { account: String },
}

impl ConnectStep {
    pub fn name(&self) -> &'static str {
        match self {
            ConnectStep::ChooseAccount => "choose_account",
            ConnectStep::ConnectExisting { .. } => "connect_existing",
            ConnectStep::ExchangingCode => "exchanging_code",
            ConnectStep::Register { .. } => "register",
            ConnectStep::BusinessProfile { .. } => "business_profile",
            ConnectStep::CreatingAccount { .. } => "creating_account",
            ConnectStep::Onboarding { .. } => "onboarding",
            ConnectStep::VerificationPending { .. } => "verification_pending",
            ConnectStep::Restricted { .. } => "restricted",
            ConnectStep::Rejected { .. } => "rejected",
        }
    }

    /// The account this step is about, once there is one.
    fn account(&self) -> Option<&str> {
        match self {
            ConnectStep::Onboarding { account, .. }
            | ConnectStep::VerificationPending { account }
            | ConnectStep::Restricted { account }
            | ConnectStep::Rejected { account } => Some(account),
            _ => None,
        }
    }
}

const BUSINESS_TYPES: [(&str, &str); 2] = [
    ("individual", "Individual or sole proprietor"),
    ("company", "Company"),
];

impl Turn<'_, '_> {
    fn active_connect(&self) -> Option<&ActiveFlow> {
        self.state
            .flow
            .as_ref()
            .filter(|f| f.kind == FlowKind::StripeConnect)
    }

    /// The step of the active `stripe_connect` flow.
    /// The step of the active `stripe_connect` flow, if it works in this turn's mode (an
    /// account event of the other mode must not move a flow that connects this one).
    fn connect_step(&self) -> Option<ConnectStep> {
        let flow = self.state.flow.as_ref()?;
        if flow.mode.is_some_and(|m| m != self.mode) {
            return None;
        }
        match &flow.step {
            FlowStep::StripeConnect(s) => Some(s.clone()),
            FlowStep::CatalogSync(_) => None,
        }
    }

    pub(super) fn backend_required(&mut self) {
        let card = self.new_card(
            CardKind::BackendRequired,
            "Payments need the backend",
            answers::BACKEND_REQUIRED.to_owned(),
        );
        self.show_info(card);
    }

    /// Whether connecting can't start now, having said why (and shown where things stand):
    /// no backend, a connection under way or done, or another flow in progress.
    fn cannot_connect(&mut self, entry: Entry) -> bool {
        if !self.facts.backend {
            self.backend_required();
        } else if self.active_connect().is_some() {
            if entry == Entry::Chat {
                self.reply("We're already connecting Stripe.");
            }
            self.present_step();
        } else if self.connection.is_some() {
            self.reply("Stripe is already connected to this project.");
            self.account_status(None);
        } else if self.state.flow.is_some() {
            self.reply("Let's finish what we're doing first, or say \"cancel\".");
            self.present_step();
        } else {
            return false;
        }
        true
    }

    /// Chat: "I want to add payments" / "connect Stripe".
    pub(super) fn offer_connect(&mut self) {
        if self.cannot_connect(Entry::Chat) {
            return;
        }
        let mut card = self.new_card(
            CardKind::ConnectStripe,
            "Connect Stripe",
            "Payments run on Stripe. Connect the Stripe account you have, or create one here: \
             it takes about 15-20 minutes, and you can try everything in test mode first."
                .to_owned(),
        );
        card.actions = vec![
            Action::primary("connect", "Connect Stripe"),
            Action::secondary("not_now", "Not now"),
        ];
        self.drop_cards(|c| c.owner != Owner::Offer);
        self.show(card, Owner::Offer);
    }

    /// Starts `stripe_connect`, or shows where it is. `create` skips the first question.
    pub(super) fn start_connect(&mut self, entry: Entry, create: bool) {
        if self.cannot_connect(entry) {
            return;
        }
        self.state.next_flow += 1;
        self.state.flow = Some(ActiveFlow {
            instance: self.state.next_flow,
            kind: FlowKind::StripeConnect,
            step: FlowStep::StripeConnect(ConnectStep::ChooseAccount),
            card: None,
            mode: Some(self.mode),
        });
        self.drop_cards(|c| c.owner != Owner::Offer);
        if create {
            self.reply("Let's create your Stripe account. It takes about 15-20 minutes in all.");
            self.go_register(self.first_draft());
        } else {
            self.go_choose();
        }
    }

    fn instance(&self) -> u64 {
        self.state.flow.as_ref().map_or(0, |f| f.instance)
    }

    /// Moves the flow to `step`, announces it, and shows its card (if it has one).
    fn goto(&mut self, step: ConnectStep, card: Option<Card>) {
        let instance = self.instance();
        // Cards of earlier steps go stale.
        self.drop_cards(|c| c.owner != Owner::Flow { instance });
        self.flow_frame(FlowKind::StripeConnect, step.name());
        if let Some(card) = &card {
            self.show(card.clone(), Owner::Flow { instance });
        }
        if let Some(flow) = self.state.flow.as_mut() {
            flow.step = FlowStep::StripeConnect(step);
            flow.card = card;
        }
    }

    fn go_choose(&mut self) {
        let mut card = self.new_card(
            CardKind::ChooseAccount,
            "Do you have a Stripe account?",
            "If you already use Stripe, connect that account. Otherwise I'll help you create one."
                .to_owned(),
        );
        card.actions = vec![
            Action::primary("existing", "I already have a Stripe account"),
            Action::primary("create", "Create a Stripe account"),
            Action::secondary("cancel", "Cancel"),
        ];
        self.goto(ConnectStep::ChooseAccount, Some(card));
    }

    fn go_existing(&mut self) {
        let nonce = self.facts.fresh.to_owned();
        let Some(url) = self.facts.links.oauth_url(self.facts.conversation, &nonce) else {
            self.reply(
                "Connecting an existing account needs Stripe Connect OAuth, which this server \
                 is not set up for (no Connect client id). You can create a new account instead.",
            );
            self.go_choose();
            return;
        };
        let mut card = self.new_card(
            CardKind::ConnectExisting,
            "Connect your Stripe account",
            "Sign in to Stripe and allow chatpay to connect. You'll come back here when you're done."
                .to_owned(),
        );
        card.actions = vec![
            Action::link("authorize", "Sign in with Stripe", &url),
            Action::secondary("back", "Back"),
            Action::secondary("cancel", "Cancel"),
        ];
        self.goto(ConnectStep::ConnectExisting { nonce }, Some(card));
    }

    /// What the register form starts with: empty, except when a live account is made for a
    /// project that has a test one, whose name, country, email and statement descriptor are
    /// offered (each can be changed).
    fn first_draft(&self) -> Draft {
        let Some(test) = self.other.as_ref().filter(|_| self.mode.is_live()) else {
            return Draft::default();
        };
        let a = &test.account;
        Draft {
            legal_name: a.business_name.clone(),
            country: a.country.as_deref().and_then(Country::parse),
            email: a.email.as_deref().and_then(Email::parse),
            statement_descriptor: a
                .statement_descriptor
                .as_deref()
                .and_then(|d| StatementDescriptor::parse(d).ok()),
            business_type: None,
            business_name: a.business_name.clone(),
        }
    }

    fn go_register(&mut self, draft: Draft) {
        let countries = crate::domain::SUPPORTED_COUNTRIES.iter().map(|c| (*c, *c));
        let mut card = self.form(
            CardKind::Register,
            "Register (1 of 3)",
            "Who is the account for? Use the legal name of the person or company that gets paid."
                .to_owned(),
            vec![
                Field::text("legal_name", "Legal name").with_value(draft.legal_name.as_deref()),
                Field::text("country", "Country")
                    .with_options(countries)
                    .with_value(Some(draft.country.as_ref().map_or("US", Country::as_str))),
                Field::text("email", "Email")
                    .with_kind(FieldKind::Email)
                    .with_value(draft.email.as_ref().map(Email::as_str)),
            ],
        );
        card.actions = vec![
            Action::primary("continue", "Continue"),
            Action::secondary("back", "Back"),
            Action::secondary("cancel", "Cancel"),
        ];
        self.goto(ConnectStep::Register { draft }, Some(card));
    }

    fn go_business(&mut self, draft: Draft) {
        let suggested: Option<String> = match &draft.statement_descriptor {
            Some(d) => Some(d.as_str().to_owned()),
            None => draft
                .legal_name
                .as_deref()
                .map(|n| n.to_ascii_uppercase().chars().take(22).collect()),
        };
        let mut card = self.form(
            CardKind::BusinessProfile,
            "Business profile (2 of 3)",
            "How your business appears on customers' card statements, and what kind of business it is."
                .to_owned(),
            vec![
                Field::text("business_name", "Business name")
                    .with_value(draft.business_name.as_deref().or(draft.legal_name.as_deref()))
                    .with_help("What customers see on checkout pages, receipts and invoices: your app's or shop's name"),
                Field::text("statement_descriptor", "Statement descriptor")
                    .with_value(suggested.as_deref())
                    .with_help("5-22 Latin characters, at least one letter, none of < > \\ ' \" *; your recognizable business name"),
                Field::text("business_type", "Business type")
                    .with_options(BUSINESS_TYPES)
                    .with_value(Some(
                        draft
                            .business_type
                            .unwrap_or(BusinessType::Individual)
                            .as_str(),
                    )),
            ],
        );
        card.actions = vec![
            Action::primary("create_account", "Create Stripe account"),
            Action::secondary("back", "Back"),
            Action::secondary("cancel", "Cancel"),
        ];
        self.goto(ConnectStep::BusinessProfile { draft }, Some(card));
    }

    fn go_creating(&mut self, draft: Draft, account: NewAccount) {
        let instance = self.instance();
        self.reply(format!(
            "Creating a Stripe account for {}. {}",
            account.legal_name,
            self.mode.label()
        ));
        self.goto(ConnectStep::CreatingAccount { draft }, None);
        self.call(Call::CreateAccount(account), Purpose::Flow(instance));
    }

    /// Verification & payouts happen on Stripe's page; ask for a link to it.
    fn request_onboarding_link(
        &mut self,
        account: &str,
        nonce: &str,
        kind: LinkKind,
        purpose: Purpose,
    ) {
        let conversation = self.facts.conversation;
        let call = Call::CreateAccountLink {
            account: account.to_owned(),
            kind,
            refresh_url: self.facts.links.onboarding_refresh(conversation, nonce),
            return_url: self.facts.links.onboarding_return(conversation, nonce),
        };
        self.call(call, purpose);
    }

    /// `account_update` where Stripe allows it, else `account_onboarding`, which Stripe uses to
    /// collect whatever is due now.
    fn fix_link_kind(&self) -> LinkKind {
        match &self.connection {
            Some(c) if c.account.fixes_with_update_link() => LinkKind::AccountUpdate,
            _ => LinkKind::AccountOnboarding,
        }
    }

    fn onboarding_card(&mut self, url: &str, expires_at: i64, update: bool) -> Card {
        let (title, body) = if update {
            (
                "Update your details on Stripe",
                "Stripe's page asks only for what is missing. Come back here when you're done."
                    .to_owned(),
            )
        } else {
            (
                "Verification & payouts (3 of 3)",
                format!(
                    "Stripe's secure page collects your identity document, your payout bank account \
                     and business details. It usually takes 15-20 minutes. Verification is often \
                     instant and can take 1-7 business days; I'll post updates here. The link works \
                     once and expires {}: if it has expired, it gives you a fresh one.",
                    format_deadline(expires_at)
                ),
            )
        };
        let mut card = self.new_card(CardKind::Onboarding, title, body);
        card.facts = vec![Fact::new("Mode", self.mode.as_str())];
        card.actions = vec![
            Action::link("open", "Continue on Stripe", url),
            Action::secondary("new_link", "Get a new link"),
            Action::secondary("check", "I've finished"),
            Action::secondary("cancel", "Cancel"),
        ];
        card
    }

    pub(super) fn connect_click(
        &mut self,
        action: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        let Some(step) = self.connect_step() else {
            return Ok(());
        };
        if action == "cancel" {
            self.cancel_flow();
            return Ok(());
        }
        let instance = self.instance();
        match (step, action) {
            (ConnectStep::ChooseAccount, "create") => self.go_register(self.first_draft()),
            (ConnectStep::ChooseAccount, "existing") => self.go_existing(),
            (ConnectStep::ConnectExisting { .. }, "back") => self.go_choose(),
            (ConnectStep::Register { .. }, "back") => self.go_choose(),
            (ConnectStep::Register { draft }, "continue") => {
                let draft = validate_register(draft, values)?;
                self.go_business(draft);
            }
            (ConnectStep::BusinessProfile { draft }, "back") => self.go_register(draft),
            (ConnectStep::BusinessProfile { draft }, "create_account") => {
                let (draft, account) = validate_business(draft, values)?;
                self.go_creating(draft, account);
            }
            (ConnectStep::Onboarding { account, nonce }, "new_link") => {
                self.reply("Getting a fresh link from Stripe.");
                self.request_onboarding_link(
                    &account,
                    &nonce,
                    LinkKind::AccountOnboarding,
                    Purpose::Flow(instance),
                );
            }
            (step, "check") if step.account().is_some() => {
                self.reply("Checking your account with Stripe.");
                let account = step.account().unwrap_or_default().to_owned();
                self.call(Call::RetrieveAccount { account }, Purpose::Flow(instance));
            }
            (step, "fix") if step.account().is_some() => {
                self.reply("Getting you a link to Stripe's page.");
                let account = step.account().unwrap_or_default().to_owned();
                let nonce = self.facts.fresh.to_owned();
                let kind = self.fix_link_kind();
                self.request_onboarding_link(&account, &nonce, kind, Purpose::FixLink);
            }
            (step, other) => {
                return Err(Refusal::StaleCard(format!(
                    "Action {other:?} does not apply at the {} step.",
                    step.name()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn connect_outside(&mut self, o: Outside) {
        let step = self.connect_step();
        let instance = self.instance();
        match o {
            Outside::StartConnect(_)
            | Outside::StartSync
            | Outside::CatalogChanged { .. }
            | Outside::OrderChanged { .. }
            | Outside::SubscriptionChanged { .. }
            | Outside::PayoutChanged { .. }
            | Outside::GoLive(_)
            | Outside::BackToTest(_) => {}
            Outside::AccountChanged { account, evidence } => {
                let connected = self
                    .connection
                    .as_ref()
                    .is_some_and(|c| c.account.id == account);
                let in_flow = step.as_ref().and_then(|s| s.account()) == Some(account.as_str());
                // The payload shows the account as stored, no flow waits on it, and no read of
                // it runs (one started earlier may store an older state): nothing to read. See
                // `chatpay_core::evidence` for why this holds in any order of arrival.
                let nothing_new = connected
                    && !in_flow
                    && evidence.is_some_and(|e| {
                        self.connection.as_ref().is_some_and(|c| c.account == *e)
                    })
                    && !self.state.pending.iter().any(|p| {
                        matches!(&p.call, Call::RetrieveAccount { account: a } if *a == account)
                    });
                if (connected || in_flow) && !nothing_new {
                    self.call(Call::RetrieveAccount { account }, Purpose::Refresh);
                }
            }
            Outside::Deauthorized { account } => {
                if self
                    .connection
                    .as_ref()
                    .is_some_and(|c| c.account.id == account)
                {
                    self.drop_connection();
                    if let Some(flow) = self.state.flow.take() {
                        let instance = flow.instance;
                        self.drop_cards(|c| c.owner != Owner::Flow { instance });
                    }
                    self.drop_cards(|c| c.owner != Owner::Status && c.owner != Owner::Disconnect);
                    self.state.pending.clear();
                    self.state.last_shown = None;
                    self.reply(
                        "The Stripe account was disconnected from Stripe's side, so payments are \
                         off for this project. Connect again whenever you like.",
                    );
                    self.flow_frame(FlowKind::StripeConnect, "disconnected");
                    self.offer_connect();
                }
            }
            Outside::OnboardingReturned { nonce } => match step {
                Some(ConnectStep::Onboarding { account, nonce: n }) if n == nonce => {
                    self.reply(
                        "Welcome back! Reaching the end of Stripe's page doesn't always mean \
                         verification is complete, so I'm checking your account with Stripe.",
                    );
                    self.call(Call::RetrieveAccount { account }, Purpose::Flow(instance));
                }
                // Back from a "Fix now" page: re-read the account and push what changed. Not a
                // forced card: the webhook for the same change may arrive first and already
                // have shown it, and one change is shown once whichever comes first.
                _ => {
                    if let Some(c) = &self.connection {
                        let account = c.account.id.clone();
                        self.call(Call::RetrieveAccount { account }, Purpose::Refresh);
                    }
                }
            },
            Outside::RefreshLink { nonce } => {
                // The onboarding step's link, or a status card's "Fix now" link while the
                // account still has something to fill in (an old link of an active account
                // leads nowhere).
                let target = match &step {
                    Some(ConnectStep::Onboarding { account, nonce: n }) if *n == nonce => {
                        Some((account.clone(), LinkKind::AccountOnboarding))
                    }
                    _ => self
                        .connection
                        .as_ref()
                        .filter(|c| c.account.state() != AccountState::Active)
                        .map(|c| (c.account.id.clone(), self.fix_link_kind())),
                };
                if let Some((account, kind)) = target {
                    let conversation = self.facts.conversation;
                    let call = Call::RefreshLink {
                        account,
                        kind,
                        refresh_url: self.facts.links.onboarding_refresh(conversation, &nonce),
                        return_url: self.facts.links.onboarding_return(conversation, &nonce),
                        nonce,
                    };
                    self.call(call, Purpose::FixLink);
                }
            }
            Outside::OauthReturned { nonce, result } => match (step, result) {
                (Some(ConnectStep::ConnectExisting { nonce: n }), Ok(code)) if n == nonce => {
                    self.reply("Stripe says yes. Finishing the connection.");
                    self.goto(ConnectStep::ExchangingCode, None);
                    self.call(Call::ExchangeOauthCode { code }, Purpose::Flow(instance));
                }
                (Some(ConnectStep::ConnectExisting { nonce: n }), Err(why)) if n == nonce => {
                    self.reply(format!("Stripe did not connect the account: {why}."));
                    self.go_existing();
                }
                _ => {}
            },
        }
    }

    /// Replaces the current step's card without changing the step.
    fn show_step_card(&mut self, card: Card) {
        let instance = self.instance();
        self.drop_cards(|c| c.owner != Owner::Flow { instance });
        self.show(card.clone(), Owner::Flow { instance });
        if let Some(flow) = self.state.flow.as_mut() {
            flow.card = Some(card);
        }
    }

    pub(super) fn connect_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        let in_flow = matches!(pending.purpose, Purpose::Flow(i) if Some(i) == self.state.flow.as_ref().map(|f| f.instance));
        let step = self.connect_step();
        match (pending.call, result) {
            (Call::CreateAccount(_), Ok(CallOutput::Account(account))) => {
                let id = account.id.clone();
                self.apply_account(pending.op, *account, Origin::Created);
                if in_flow {
                    let nonce = self.facts.fresh.to_owned();
                    self.reply(
                        "Your Stripe account is created. Last step: verification and payouts on Stripe's page.",
                    );
                    self.goto(
                        ConnectStep::Onboarding {
                            account: id.clone(),
                            nonce: nonce.clone(),
                        },
                        None,
                    );
                    self.request_onboarding_link(
                        &id,
                        &nonce,
                        LinkKind::AccountOnboarding,
                        pending.purpose,
                    );
                }
            }
            (Call::CreateAccount(_), Err(e)) if in_flow => {
                self.reply(format!(
                    "Stripe could not create the account: {}",
                    e.message
                ));
                if let Some(ConnectStep::CreatingAccount { draft }) = step {
                    self.go_business(draft);
                }
            }
            (Call::CreateAccountLink { kind, .. }, Ok(CallOutput::Link { url, expires_at })) => {
                let update = kind == LinkKind::AccountUpdate;
                match (pending.purpose, &step) {
                    (Purpose::Flow(_), Some(ConnectStep::Onboarding { .. })) if in_flow => {
                        let card = self.onboarding_card(&url, expires_at, update);
                        self.show_step_card(card);
                    }
                    (Purpose::FixLink, _) => {
                        let mut card = self.onboarding_card(&url, expires_at, true);
                        card.actions.retain(|a| a.url.is_some());
                        self.show_info(card);
                    }
                    _ => {}
                }
            }
            (Call::RefreshLink { nonce, .. }, Ok(CallOutput::Link { url, expires_at })) => {
                if let Some(ConnectStep::Onboarding { nonce: n, .. }) = &step
                    && *n == nonce
                {
                    self.reply(
                        "Your onboarding link had expired or was already used, so Stripe issued a fresh one.",
                    );
                    let card = self.onboarding_card(&url, expires_at, false);
                    self.show_step_card(card);
                }
            }
            (Call::CreateAccountLink { .. } | Call::RefreshLink { .. }, Err(e))
                if in_flow || pending.purpose == Purpose::FixLink =>
            {
                self.reply(format!(
                    "I couldn't get a link from Stripe ({}). Try again in a moment.",
                    e.message
                ));
                if in_flow && matches!(step, Some(ConnectStep::Onboarding { .. })) {
                    let mut card = self.new_card(
                        CardKind::Onboarding,
                        "Verification & payouts (3 of 3)",
                        "Stripe didn't give us a link to its onboarding page yet.".to_owned(),
                    );
                    card.actions = vec![
                        Action::primary("new_link", "Get a new link"),
                        Action::secondary("cancel", "Cancel"),
                    ];
                    self.show_step_card(card);
                }
            }
            (Call::RetrieveAccount { .. }, Ok(CallOutput::Account(account))) => {
                let origin = if matches!(step, Some(ConnectStep::ExchangingCode)) {
                    Origin::Oauth
                } else {
                    self.connection
                        .as_ref()
                        .map_or(Origin::Created, |c| c.origin)
                };
                if self.apply_account(pending.op, (*account).clone(), origin) {
                    let force = in_flow || pending.purpose == Purpose::Check;
                    self.account_changed(&account, origin, force);
                }
            }
            (Call::RetrieveAccount { .. }, Err(e)) => {
                if in_flow || pending.purpose == Purpose::Check {
                    self.reply(format!(
                        "I couldn't reach Stripe to check the account ({}). I'll post here as soon as Stripe tells us something changed.",
                        e.message
                    ));
                }
                if matches!(step, Some(ConnectStep::ExchangingCode)) {
                    self.go_existing();
                }
            }
            (Call::ExchangeOauthCode { .. }, Ok(CallOutput::Connected { account })) if in_flow => {
                let instance = self.instance();
                self.call(Call::RetrieveAccount { account }, Purpose::Flow(instance));
            }
            (Call::ExchangeOauthCode { .. }, Err(e)) if in_flow => {
                self.reply(format!(
                    "Stripe did not accept the connection: {}",
                    e.message
                ));
                self.go_existing();
            }
            (Call::Deauthorize { account }, result) => self.disconnect_done(&account, result),
            _ => {}
        }
    }

    /// A fresh read of the account: move the flow to match, and push a status card when the
    /// state is new, or when someone asked (`asked`: the user came back or pressed a button).
    fn account_changed(&mut self, account: &AccountSnapshot, origin: Origin, asked: bool) {
        let state = account.state();
        let shown = Some(status_signature(account));
        let changed = self.state.last_shown != shown;
        let step = self.connect_step();
        let id = account.id.clone();
        match (state, step) {
            (AccountState::Onboarding, Some(step)) => {
                // Stripe sends many updates while the form is being filled; only a person
                // coming back needs a new link (links work once).
                if asked {
                    let nonce = match &step {
                        ConnectStep::Onboarding { nonce, .. } => nonce.clone(),
                        _ => self.facts.fresh.to_owned(),
                    };
                    if !matches!(step, ConnectStep::Onboarding { .. }) {
                        self.goto(
                            ConnectStep::Onboarding {
                                account: id.clone(),
                                nonce: nonce.clone(),
                            },
                            None,
                        );
                    }
                    self.reply("Stripe's onboarding isn't finished yet. Here's a link to pick up where you left off.");
                    let instance = self.instance();
                    self.request_onboarding_link(
                        &id,
                        &nonce,
                        LinkKind::AccountOnboarding,
                        Purpose::Flow(instance),
                    );
                }
            }
            (AccountState::Active, Some(_)) => {
                if let Some(flow) = self.state.flow.take() {
                    let instance = flow.instance;
                    self.drop_cards(|c| c.owner != Owner::Flow { instance });
                }
                self.state.last_shown = shown.clone();
                self.flow_frame(FlowKind::StripeConnect, "active");
                let card = self.status_card(account, origin);
                self.show_status(card);
            }
            (_, Some(step)) if changed || asked || step.account().is_none() => {
                let next = match state {
                    AccountState::VerificationPending => {
                        ConnectStep::VerificationPending { account: id }
                    }
                    AccountState::Restricted => ConnectStep::Restricted { account: id },
                    _ => ConnectStep::Rejected { account: id },
                };
                self.state.last_shown = shown.clone();
                let card = self.status_card(account, origin);
                self.drop_cards(|c| c.owner != Owner::Status);
                self.goto(next, Some(card));
            }
            (_, Some(_)) => {}
            (_, None) => {
                if changed || asked {
                    self.state.last_shown = shown.clone();
                    let card = self.status_card(account, origin);
                    self.show_status(card);
                }
            }
        }
    }

    fn show_status(&mut self, card: Card) {
        self.drop_cards(|c| c.owner != Owner::Status);
        self.show(card, Owner::Status);
    }

    /// The account's state in plain words, with what to do next.
    pub(super) fn status_card(&mut self, account: &AccountSnapshot, origin: Origin) -> Card {
        let state = account.state();
        let r = &account.requirements;
        let mut actions = Vec::new();
        let (title, body) = match state {
            AccountState::Active => {
                actions.push(Action::primary("check", "Refresh status"));
                (
                    "Your Stripe account is active",
                    "Charges and payouts are enabled: you can take payments. Next: add products in \
                     Stripe and say \"sync my products\"."
                        .to_owned(),
                )
            }
            AccountState::Onboarding => {
                actions.push(Action::primary("fix", "Continue on Stripe"));
                actions.push(Action::secondary("check", "Refresh status"));
                (
                    "Your account setup isn't finished",
                    "Stripe still needs the details from its onboarding page (identity, bank account, business)."
                        .to_owned(),
                )
            }
            AccountState::VerificationPending => {
                actions.push(Action::secondary("check", "Refresh status"));
                (
                    "Stripe is verifying your account",
                    "You've sent everything Stripe asked for. Verification is often instant and \
                     can take 1-7 business days; I'll post here as soon as it changes."
                        .to_owned(),
                )
            }
            AccountState::Restricted => {
                actions.push(Action::primary("fix", "Fix now"));
                actions.push(Action::secondary("check", "Refresh status"));
                let mut body = String::new();
                if let Some(reason) = &r.disabled_reason {
                    body.push_str(explain_disabled_reason(reason).sentence);
                    body.push(' ');
                }
                let needs = account.needs_in_plain_words();
                if needs.is_empty() {
                    body.push_str("Stripe has limited the account.");
                } else {
                    body.push_str("Stripe needs: ");
                    body.push_str(&needs.join("; "));
                    body.push('.');
                }
                if let Some(deadline) = r.current_deadline {
                    body.push_str(&format!(" Deadline: {}.", format_deadline(deadline * 1000)));
                }
                for e in &r.errors {
                    body.push_str(&format!(
                        " Stripe says about {}: {}",
                        e.requirement, e.reason
                    ));
                }
                ("Stripe needs a few more details", body)
            }
            AccountState::Rejected => {
                let reason = r.disabled_reason.as_deref().unwrap_or("rejected.other");
                let explanation = explain_disabled_reason(reason);
                let mut body = format!("{} ", explanation.sentence);
                body.push_str("Accounts are usually rejected for: ");
                body.push_str(&USUAL_REJECTION_CAUSES.join("; "));
                body.push_str(". ");
                match explanation.fix {
                    Fix::ContactPlatform => body.push_str(
                        "Only the platform can review this decision: reply to its email or contact its support.",
                    ),
                    _ => {
                        body.push_str(
                            "To appeal, update your details on Stripe (fix what's wrong above) and \
                             ask Stripe to review the account again from its support page.",
                        );
                        actions.push(Action::primary("fix", "Update details"));
                        actions.push(Action::link(
                            "contact",
                            "Contact Stripe support",
                            "https://support.stripe.com/contact",
                        ));
                    }
                }
                ("Stripe rejected the account", body)
            }
        };
        let mut facts = vec![
            Fact::new("Account", account.id.clone()),
            Fact::new("Mode", self.mode.as_str()),
            Fact::new("Status", state.as_str()),
            Fact::new(
                "Charges",
                if account.charges_enabled {
                    "enabled"
                } else {
                    "disabled"
                },
            ),
            Fact::new(
                "Payouts",
                if account.payouts_enabled {
                    "enabled"
                } else {
                    "disabled"
                },
            ),
        ];
        if let Some(s) = &account.payout_schedule {
            facts.push(Fact::new(
                "Payout schedule",
                format!("{}, {} days after payment", s.interval, s.delay_days),
            ));
        }
        if origin == Origin::Oauth {
            facts.push(Fact::new("Connected", "existing account (OAuth)"));
        }
        let mut card = self.facts_card(CardKind::AccountStatus, title, body, facts);
        card.actions = actions;
        card
    }

    /// "Is my account verified?" and friends. True if the card shown is the flow's own step.
    pub(super) fn account_status(&mut self, topic: Option<&str>) -> bool {
        let Some(connection) = self.connection.clone() else {
            match topic {
                Some("timeline") => self.reply(answers::TIMELINES),
                Some("rejected") => self.reply(answers::rejection_causes()),
                _ => {}
            }
            self.reply("No Stripe account is connected to this project yet.");
            if self.facts.backend && self.state.flow.is_none() {
                self.offer_connect();
            }
            return false;
        };
        let state = connection.account.state();
        let shown = Some(status_signature(&connection.account));
        match topic {
            Some("timeline") => self.reply(answers::TIMELINES),
            Some("rejected") if state != AccountState::Rejected => {
                self.reply(format!(
                    "Your account isn't rejected (it is {}). For reference, {}",
                    state.as_str().replace('_', " "),
                    answers::rejection_causes()
                ));
            }
            _ => {}
        }
        self.state.last_shown = shown.clone();
        let card = self.status_card(&connection.account, connection.origin);
        if self
            .active_connect()
            .is_some_and(|_| self.connect_step().is_some_and(|s| s.account().is_some()))
        {
            // The status card is the flow's own card at these steps.
            self.show_step_card(card);
            true
        } else {
            self.show_status(card);
            false
        }
    }

    pub(super) fn status_click(&mut self, action: &str) {
        let Some(connection) = self.connection.clone() else {
            self.reply("Stripe isn't connected any more.");
            return;
        };
        let account = connection.account.id.clone();
        match action {
            "fix" => {
                self.reply("Getting you a link to Stripe's page.");
                let kind = self.fix_link_kind();
                let nonce = self.facts.fresh.to_owned();
                self.request_onboarding_link(&account, &nonce, kind, Purpose::FixLink);
            }
            _ => {
                self.reply("Checking your account with Stripe.");
                self.call(Call::RetrieveAccount { account }, Purpose::Check);
            }
        }
    }

    pub(super) fn ask_disconnect(&mut self) {
        if !self.facts.backend {
            self.backend_required();
            return;
        }
        if self.connection.is_none() {
            self.reply("Stripe isn't connected to this project, so there's nothing to disconnect.");
            self.present_step();
            return;
        }
        let mut card = self.new_card(
            CardKind::ConfirmDisconnect,
            "Disconnect Stripe?",
            "This project will stop taking payments through its Stripe account. The account and \
             its data stay in Stripe; you can connect again later."
                .to_owned(),
        );
        card.actions = vec![
            Action::new("confirm", "Disconnect", Style::Danger),
            Action::secondary("keep", "Keep connected"),
        ];
        self.drop_cards(|c| c.owner != Owner::Disconnect);
        self.show(card, Owner::Disconnect);
    }

    pub(super) fn disconnect_click(&mut self, action: &str) {
        let Some(connection) = self.connection.clone() else {
            self.reply("Stripe is already disconnected.");
            return;
        };
        if action != "confirm" {
            self.reply("Okay, Stripe stays connected.");
            return;
        }
        if connection.origin == Origin::Oauth {
            self.reply("Disconnecting from Stripe.");
            self.call(
                Call::Deauthorize {
                    account: connection.account.id.clone(),
                },
                Purpose::Disconnect,
            );
        } else {
            self.disconnected(&connection.account.id);
        }
    }

    fn disconnect_done(&mut self, account: &str, result: Result<CallOutput, CallError>) {
        match result {
            Ok(_) => self.disconnected(account),
            // Already revoked on Stripe's side: the connection is gone either way.
            Err(e) if e.code.as_deref() == Some("invalid_client") || e.code.as_deref() == Some("account_invalid") => {
                self.disconnected(account)
            }
            Err(e) => self.reply(format!(
                "Stripe didn't confirm the disconnection ({}); Stripe stays connected. Try again in a moment.",
                e.message
            )),
        }
    }

    fn disconnected(&mut self, _account: &str) {
        self.drop_connection();
        if let Some(flow) = self.state.flow.take() {
            let instance = flow.instance;
            self.drop_cards(|c| c.owner != Owner::Flow { instance });
        }
        self.drop_cards(|c| c.owner != Owner::Status);
        self.state
            .pending
            .retain(|p| p.purpose == Purpose::Disconnect);
        self.state.last_shown = None;
        self.reply(
            "Disconnected Stripe account from this project. Payments are off for it; say \"add payments\" to connect again.",
        );
        self.flow_frame(FlowKind::StripeConnect, "disconnected");
    }
}

/// What a status card shows, compared to decide whether a change is worth pushing.
fn status_signature(a: &AccountSnapshot) -> String {
    let r = &a.requirements;
    format!(
        "{}|{}|{}|{}",
        a.state().as_str(),
        r.disabled_reason.as_deref().unwrap_or(""),
        r.past_due.join(","),
        r.currently_due.join(",")
    )
}

fn validate_register(
    mut draft: Draft,
    values: &BTreeMap<String, String>,
) -> Result<Draft, Refusal> {
    let mut errors = BTreeMap::new();
    let get = |k: &str| values.get(k).map(|v| v.trim()).unwrap_or("");
    let name = get("legal_name");
    if name.is_empty() {
        errors.insert(
            "legal_name".into(),
            "Enter the legal name of the person or company.".into(),
        );
    } else if name.chars().count() > 100 {
        errors.insert("legal_name".into(), "Use at most 100 characters.".into());
    }
    let country = Country::parse(get("country"));
    if country.is_none() {
        errors.insert(
            "country".into(),
            format!("Choose a country where Stripe is available (two letters, like US or GB), not {:?}.", get("country")),
        );
    }
    let email = Email::parse(get("email"));
    if email.is_none() {
        errors.insert(
            "email".into(),
            "Enter an email address like name@example.com.".into(),
        );
    }
    if !errors.is_empty() {
        return Err(Refusal::InvalidValues(errors));
    }
    draft.legal_name = Some(name.to_owned());
    draft.country = country;
    draft.email = email;
    Ok(draft)
}

fn validate_business(
    mut draft: Draft,
    values: &BTreeMap<String, String>,
) -> Result<(Draft, NewAccount), Refusal> {
    let mut errors = BTreeMap::new();
    let get = |k: &str| values.get(k).map(|v| v.trim()).unwrap_or("");
    let descriptor = match StatementDescriptor::parse(get("statement_descriptor")) {
        Ok(d) => Some(d),
        Err(broken) => {
            let mut text = String::from("The statement descriptor ");
            text.push_str(&broken.join("; it "));
            text.push('.');
            errors.insert("statement_descriptor".into(), text);
            None
        }
    };
    let business_name = match get("business_name") {
        "" => None,
        name if name.chars().count() > 100 => {
            errors.insert("business_name".into(), "Use at most 100 characters.".into());
            None
        }
        name => Some(name.to_owned()),
    };
    let business_type = BusinessType::parse(get("business_type"));
    if business_type.is_none() {
        errors.insert(
            "business_type".into(),
            "Choose individual or company.".into(),
        );
    }
    let (Some(descriptor), Some(business_type), true) =
        (descriptor, business_type, errors.is_empty())
    else {
        return Err(Refusal::InvalidValues(errors));
    };
    // The register step came first, so its values are there; a draft without them (a stored
    // state from before) goes back to that step's rules.
    let (Some(legal_name), Some(country), Some(email)) = (
        draft.legal_name.clone(),
        draft.country.clone(),
        draft.email.clone(),
    ) else {
        return Err(Refusal::InvalidValues(BTreeMap::from([(
            "legal_name".to_owned(),
            "Go back and fill in the legal name, country and email first.".to_owned(),
        )])));
    };
    draft.statement_descriptor = Some(descriptor.clone());
    draft.business_type = Some(business_type);
    draft.business_name = business_name.clone();
    let account = NewAccount {
        business_name: business_name.unwrap_or_else(|| legal_name.clone()),
        legal_name,
        country,
        email,
        business_type,
        statement_descriptor: descriptor,
    };
    Ok((draft, account))
}
