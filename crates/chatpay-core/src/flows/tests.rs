use std::collections::BTreeMap;

use super::*;
use crate::account::AccountSnapshot;
use crate::catalog::SyncReport;
use crate::intents::{Matcher, load_embedded};

/// The embedded intents' matcher, built once for all the tests (building it takes a while in a
/// debug build).
fn matcher() -> &'static Matcher {
    static MATCHER: std::sync::OnceLock<Matcher> = std::sync::OnceLock::new();
    MATCHER.get_or_init(|| load_embedded(0.5, 0.08).unwrap())
}

struct World {
    matcher: &'static Matcher,
    state: ConversationState,
    conversation: ConversationId,
    links: Links,
    labels: BTreeMap<String, String>,
    backend: bool,
    /// The test-mode connection.
    connection: Option<Connection>,
    live_connection: Option<Connection>,
    project_mode: Mode,
    /// The mode of the next outside input (a Stripe event's), once.
    event_mode: Option<Mode>,
    inputs: u32,
}

impl World {
    fn new(backend: bool) -> World {
        World {
            matcher: matcher(),
            state: ConversationState::default(),
            conversation: ConversationId::parse("cnv_test1").unwrap(),
            links: Links {
                public: "http://127.0.0.1:1".into(),
                oauth_authorize: Some("http://127.0.0.1:2/oauth/authorize?client_id=ca_x".into()),
            },
            labels: BTreeMap::new(),
            backend,
            connection: None,
            live_connection: None,
            project_mode: Mode::Test,
            event_mode: None,
            inputs: 0,
        }
    }

    fn input(&mut self, input: Input<'_>) -> Result<Vec<Effect>, Refusal> {
        self.inputs += 1;
        let fresh = format!("n{}x", self.inputs);
        // As the actor does: a call's result in the mode it was asked in, the rest in the
        // working mode.
        let mode = match &input {
            Input::Done { op, .. } => self
                .state
                .pending
                .iter()
                .find(|p| p.op == *op)
                .and_then(|p| p.mode),
            Input::Outside(_) => self.event_mode.take(),
            _ => None,
        }
        .unwrap_or(self.state.setup.unwrap_or(self.project_mode));
        let (connection, other) = match mode {
            Mode::Test => (self.connection.as_ref(), self.live_connection.as_ref()),
            Mode::Live => (self.live_connection.as_ref(), self.connection.as_ref()),
        };
        let facts = Facts {
            conversation: &self.conversation,
            backend: self.backend,
            mode,
            connection,
            project_mode: self.project_mode,
            other_connection: other,
            now_ms: 1_795_000_000_000,
            links: &self.links,
            labels: &self.labels,
            fresh: &fresh,
            asked: None,
        };
        let effects = self.state.handle(input, &facts)?;
        for e in &effects {
            match e {
                Effect::SaveConnection { mode, connection } => {
                    *self.connection_mut(*mode) = Some((**connection).clone())
                }
                Effect::DropConnection { mode } => *self.connection_mut(*mode) = None,
                Effect::SetMode(mode) => self.project_mode = *mode,
                _ => {}
            }
        }
        Ok(effects)
    }

    fn connection_mut(&mut self, mode: Mode) -> &mut Option<Connection> {
        match mode {
            Mode::Test => &mut self.connection,
            Mode::Live => &mut self.live_connection,
        }
    }

    fn say(&mut self, text: &str) -> Vec<Effect> {
        let c = self.matcher.classify(text);
        self.input(Input::Say(&c)).unwrap()
    }

    fn click(
        &mut self,
        card: &str,
        action: &str,
        values: &[(&str, &str)],
    ) -> Result<Vec<Effect>, Refusal> {
        let values: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.input(Input::Click {
            card,
            action,
            values: &values,
        })
    }
}

fn card_of(effects: &[Effect], kind: CardKind) -> Card {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Card(c) if c.kind == kind => Some(c.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind:?} card in {effects:#?}"))
}

fn call_of(effects: &[Effect]) -> (u64, Call) {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Call { op, call } => Some((*op, call.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no call in {effects:#?}"))
}

fn flow_states(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Flow { state, .. } => Some(state.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn payments_without_backend_explain_the_backend() {
    let mut w = World::new(false);
    let e = w.say("I want to add payments");
    let card = card_of(&e, CardKind::BackendRequired);
    assert!(
        card.body
            .contains("only be chosen when a project is created")
    );
    assert!(w.state.flow.is_none());
}

#[test]
fn create_path_validates_each_field_and_calls_stripe_once() {
    let mut w = World::new(true);
    let offer = card_of(&w.say("I want to add payments"), CardKind::ConnectStripe);
    let e = w.click(&offer.id, "connect", &[]).unwrap();
    assert_eq!(flow_states(&e), ["choose_account"]);
    let choose = card_of(&e, CardKind::ChooseAccount);
    // The offer was used: clicking it again is stale.
    assert!(matches!(
        w.click(&offer.id, "connect", &[]),
        Err(Refusal::StaleCard(_))
    ));
    let register = card_of(
        &w.click(&choose.id, "create", &[]).unwrap(),
        CardKind::Register,
    );

    let bad = w.click(
        &register.id,
        "continue",
        &[("legal_name", ""), ("country", "XX"), ("email", "nope")],
    );
    let Err(Refusal::InvalidValues(errors)) = bad else {
        panic!("{bad:?}")
    };
    assert_eq!(errors.len(), 3, "{errors:?}");
    // A refused click changes nothing: the card is still current.
    let e = w
        .click(
            &register.id,
            "continue",
            &[
                ("legal_name", "Ada Lovelace"),
                ("country", "gb"),
                ("email", "ada@example.com"),
            ],
        )
        .unwrap();
    let profile = card_of(&e, CardKind::BusinessProfile);
    // The name customers see starts as the legal name, for the owner to change.
    assert_eq!(profile.fields[0].name, "business_name");
    assert_eq!(profile.fields[0].value.as_deref(), Some("Ada Lovelace"));
    assert_eq!(profile.fields[1].value.as_deref(), Some("ADA LOVELACE"));
    assert!(matches!(
        w.click(&register.id, "continue", &[]),
        Err(Refusal::StaleCard(_))
    ));

    let bad = w.click(
        &profile.id,
        "create_account",
        &[
            ("statement_descriptor", "A*"),
            ("business_type", "llc"),
            ("business_name", &"x".repeat(101)),
        ],
    );
    let Err(Refusal::InvalidValues(errors)) = bad else {
        panic!("{bad:?}")
    };
    assert!(
        errors["statement_descriptor"].contains("at least 5"),
        "{errors:?}"
    );
    assert!(
        errors["statement_descriptor"].contains("may not contain"),
        "{errors:?}"
    );
    assert!(errors.contains_key("business_type"));
    assert!(errors.contains_key("business_name"));

    let e = w
        .click(
            &profile.id,
            "create_account",
            &[
                ("statement_descriptor", "ADA LOVELACE"),
                ("business_type", "individual"),
                ("business_name", "  Ada's Tutoring "),
            ],
        )
        .unwrap();
    assert_eq!(flow_states(&e), ["creating_account"]);
    let (op, call) = call_of(&e);
    let Call::CreateAccount(new) = call else {
        panic!()
    };
    assert_eq!(new.country.as_str(), "GB");
    assert_eq!(new.legal_name, "Ada Lovelace");
    assert_eq!(new.business_name, "Ada's Tutoring");
    assert!(matches!(
        w.click(&profile.id, "create_account", &[]),
        Err(Refusal::StaleCard(_))
    ));

    // Stripe answers; the flow asks for an onboarding link.
    let account = AccountSnapshot {
        id: "acct_1".into(),
        ..Default::default()
    };
    let e = w
        .input(Input::Done {
            op,
            result: Ok(CallOutput::Account(Box::new(account))),
        })
        .unwrap();
    assert_eq!(flow_states(&e), ["onboarding"]);
    let (op, call) = call_of(&e);
    assert!(matches!(
        call,
        Call::CreateAccountLink {
            kind: LinkKind::AccountOnboarding,
            ..
        }
    ));
    assert!(w.connection.is_some());
    let e = w
        .input(Input::Done {
            op,
            result: Ok(CallOutput::Link {
                url: "http://s/onboarding/x".into(),
                expires_at: 1,
            }),
        })
        .unwrap();
    let onboarding = card_of(&e, CardKind::Onboarding);
    assert_eq!(
        onboarding.actions[0].url.as_deref(),
        Some("http://s/onboarding/x")
    );
    // A late duplicate of the same result is ignored.
    assert!(
        w.input(Input::Done {
            op,
            result: Ok(CallOutput::Done)
        })
        .unwrap()
        .is_empty()
    );
}

#[test]
fn questions_mid_flow_are_answered_and_the_step_comes_back() {
    let mut w = World::new(true);
    let offer = card_of(&w.say("add payments"), CardKind::ConnectStripe);
    let choose = card_of(
        &w.click(&offer.id, "connect", &[]).unwrap(),
        CardKind::ChooseAccount,
    );
    let e = w.say("can I test payments without real money?");
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::Card(c) if c.kind == CardKind::Info))
    );
    let again = card_of(&e, CardKind::ChooseAccount);
    assert_eq!(again.id, choose.id, "the same card, still clickable");
    assert_eq!(flow_states(&e), ["choose_account"]);
    let e = w.say("cancel");
    assert_eq!(flow_states(&e), ["cancelled"]);
    assert!(matches!(
        w.click(&choose.id, "create", &[]),
        Err(Refusal::StaleCard(_))
    ));
}

#[test]
fn unknown_actions_and_foreign_cards_are_refused() {
    let mut w = World::new(true);
    let offer = card_of(&w.say("add payments"), CardKind::ConnectStripe);
    assert!(matches!(
        w.click(&offer.id, "explode", &[]),
        Err(Refusal::NotFound(_))
    ));
    assert!(matches!(
        w.click("crd_other_1", "connect", &[]),
        Err(Refusal::StaleCard(_))
    ));
}

#[test]
fn older_account_reads_never_overwrite_newer_ones() {
    let mut w = World::new(true);
    w.connection = Some(Connection {
        account: AccountSnapshot {
            id: "acct_9".into(),
            ..Default::default()
        },
        origin: crate::domain::Origin::Created,
    });
    let e1 = w
        .input(Input::Outside(Outside::AccountChanged {
            account: "acct_9".into(),
            evidence: None,
        }))
        .unwrap();
    let e2 = w
        .input(Input::Outside(Outside::AccountChanged {
            account: "acct_9".into(),
            evidence: None,
        }))
        .unwrap();
    let (op1, _) = call_of(&e1);
    let (op2, _) = call_of(&e2);
    let active = AccountSnapshot {
        id: "acct_9".into(),
        details_submitted: true,
        charges_enabled: true,
        payouts_enabled: true,
        ..Default::default()
    };
    let stale = AccountSnapshot {
        id: "acct_9".into(),
        details_submitted: true,
        ..Default::default()
    };
    w.input(Input::Done {
        op: op2,
        result: Ok(CallOutput::Account(Box::new(active.clone()))),
    })
    .unwrap();
    let e = w
        .input(Input::Done {
            op: op1,
            result: Ok(CallOutput::Account(Box::new(stale))),
        })
        .unwrap();
    assert!(e.is_empty(), "{e:#?}");
    assert_eq!(w.connection.unwrap().account, active);
}

// ---------------------------------------------------------------------------------------------
// Table-driven cases of the connect and catalog flows: from a state reached by a scripted path,
// one input, and what comes out (the active flow's step, the kinds of the effects, in order).

/// Where a case starts, reached from a fresh conversation (with the backend) by [`At::path`].
#[derive(Debug, Clone, Copy)]
enum At {
    Fresh,
    Offered,
    Choosing,
    Registering,
    Profile,
    /// The account is being created (the call is in flight).
    Creating,
    /// The account exists; its onboarding link is being asked for.
    AccountCreated,
    /// The onboarding link is shown.
    Onboarding,
    /// Back from Stripe's onboarding page; the account is being re-read for the flow.
    Returned,
    /// An active account, connected through chatpay (`created`), no flow.
    Connected,
    /// An active account connected through OAuth, no flow.
    ConnectedOauth,
    /// The disconnect confirmation is shown (account created through chatpay).
    AskedDisconnect,
    AskedDisconnectOauth,
    /// A catalog sync is running.
    Syncing,
    /// The last sync failed (its card offers a retry).
    SyncFailed,
}

/// What a case (or a step towards its start) does.
#[derive(Debug, Clone, Copy)]
enum Do {
    Say(&'static str),
    /// Clicks the newest card of this kind shown so far.
    Click(
        CardKind,
        &'static str,
        &'static [(&'static str, &'static str)],
    ),
    /// The newest call asked for finishes.
    Done(Answer),
    Outside(Happens),
    /// The project has an active account connected with this origin (a fact, not an input).
    Connected(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Account(AccountIs),
    Link,
    Synced,
    Failed,
}

#[derive(Debug, Clone, Copy)]
enum AccountIs {
    Onboarding,
    Active,
    Restricted,
    Rejected,
}

#[derive(Debug, Clone, Copy)]
enum Happens {
    AccountChanged,
    /// The browser came back with the onboarding step's nonce.
    OnboardingReturned,
    StartSync,
    Deauthorized,
}

const REGISTER_OK: &[(&str, &str)] = &[
    ("legal_name", "Ada Lovelace"),
    ("country", "gb"),
    ("email", "ada@example.com"),
];
const PROFILE_OK: &[(&str, &str)] = &[
    ("statement_descriptor", "ADA LOVELACE"),
    ("business_type", "individual"),
];

impl At {
    fn path(self) -> Vec<Do> {
        use Do::*;
        let then = |before: At, step: &[Do]| [before.path(), step.to_vec()].concat();
        match self {
            At::Fresh => Vec::new(),
            At::Offered => vec![Say("I want to add payments")],
            At::Choosing => then(
                At::Offered,
                &[Click(CardKind::ConnectStripe, "connect", &[])],
            ),
            At::Registering => then(
                At::Choosing,
                &[Click(CardKind::ChooseAccount, "create", &[])],
            ),
            At::Profile => then(
                At::Registering,
                &[Click(CardKind::Register, "continue", REGISTER_OK)],
            ),
            At::Creating => then(
                At::Profile,
                &[Click(
                    CardKind::BusinessProfile,
                    "create_account",
                    PROFILE_OK,
                )],
            ),
            At::AccountCreated => then(
                At::Creating,
                &[Done(Answer::Account(AccountIs::Onboarding))],
            ),
            At::Onboarding => then(At::AccountCreated, &[Done(Answer::Link)]),
            At::Returned => then(At::Onboarding, &[Outside(Happens::OnboardingReturned)]),
            At::Connected => vec![Connected("created")],
            At::ConnectedOauth => vec![Connected("oauth")],
            At::AskedDisconnect => then(At::Connected, &[Say("disconnect stripe")]),
            At::AskedDisconnectOauth => then(At::ConnectedOauth, &[Say("disconnect stripe")]),
            At::Syncing => then(At::Connected, &[Outside(Happens::StartSync)]),
            At::SyncFailed => then(At::Syncing, &[Done(Answer::Failed)]),
        }
    }
}

fn account(is: AccountIs) -> AccountSnapshot {
    let mut a = AccountSnapshot {
        id: "acct_1".into(),
        ..Default::default()
    };
    match is {
        AccountIs::Onboarding => {}
        AccountIs::Active => {
            a.details_submitted = true;
            a.charges_enabled = true;
            a.payouts_enabled = true;
        }
        AccountIs::Restricted => {
            a.details_submitted = true;
            a.requirements.currently_due = vec!["individual.id_number".into()];
        }
        AccountIs::Rejected => {
            a.details_submitted = true;
            a.requirements.disabled_reason = Some("rejected.fraud".into());
        }
    }
    a
}

/// A world with what it has been shown, so a case can click a card or finish a call by kind.
struct Table {
    w: World,
    cards: Vec<Card>,
    calls: Vec<u64>,
}

impl Table {
    fn step(&mut self, d: Do) -> Result<Vec<Effect>, Refusal> {
        let effects = match d {
            Do::Say(text) => Ok(self.w.say(text)),
            Do::Click(kind, action, values) => {
                let card = self
                    .cards
                    .iter()
                    .rev()
                    .find(|c| c.kind == kind)
                    .unwrap_or_else(|| panic!("no {kind:?} card shown"))
                    .id
                    .clone();
                self.w.click(&card, action, values)
            }
            Do::Done(answer) => {
                let op = *self.calls.last().expect("a call in flight");
                let result = match answer {
                    Answer::Account(is) => Ok(CallOutput::Account(Box::new(account(is)))),
                    Answer::Link => Ok(CallOutput::Link {
                        url: "http://s/onboarding/x".into(),
                        expires_at: 1_795_000_600,
                    }),
                    Answer::Synced => Ok(CallOutput::Synced(Box::new(SyncReport {
                        products: 2,
                        sellable: 1,
                        requests: 3,
                        ..Default::default()
                    }))),
                    Answer::Failed => Err(CallError {
                        message: "Stripe is unreachable.".into(),
                        code: None,
                    }),
                };
                self.w.input(Input::Done { op, result })
            }
            Do::Outside(h) => {
                let o = match h {
                    Happens::AccountChanged => Outside::AccountChanged {
                        account: "acct_1".into(),
                        evidence: None,
                    },
                    Happens::Deauthorized => Outside::Deauthorized {
                        account: "acct_1".into(),
                    },
                    Happens::StartSync => Outside::StartSync,
                    Happens::OnboardingReturned => {
                        let Some(FlowStep::StripeConnect(ConnectStep::Onboarding {
                            nonce, ..
                        })) = self.w.state.flow.as_ref().map(|f| f.step.clone())
                        else {
                            panic!("not at the onboarding step")
                        };
                        Outside::OnboardingReturned { nonce }
                    }
                };
                self.w.input(Input::Outside(o))
            }
            Do::Connected(origin) => {
                self.w.connection = Some(Connection {
                    account: account(AccountIs::Active),
                    origin: crate::domain::Origin::parse(origin).expect("created or oauth"),
                });
                Ok(Vec::new())
            }
        }?;
        for e in &effects {
            match e {
                Effect::Card(c) => self.cards.push(c.clone()),
                Effect::Call { op, .. } => self.calls.push(*op),
                _ => {}
            }
        }
        Ok(effects)
    }
}

/// An effect as the table names it: `reply`, `card:<kind>`, `flow:<state>`, `call:<name>`,
/// `save_connection`, `drop_connection`, `save_order`, `event_applied`.
fn effect_kind(e: &Effect) -> String {
    match e {
        Effect::Reply(_) => "reply".into(),
        Effect::Card(c) => format!(
            "card:{}",
            serde_json::to_value(c.kind).unwrap().as_str().unwrap()
        ),
        Effect::Flow { state, .. } => format!("flow:{state}"),
        Effect::Call { call, .. } => format!("call:{}", call.name()),
        Effect::SaveConnection { mode, .. } => format!("save_connection:{}", mode.as_str()),
        Effect::DropConnection { mode } => format!("drop_connection:{}", mode.as_str()),
        Effect::SetMode(mode) => format!("set_mode:{}", mode.as_str()),
        Effect::SaveOrder { .. } => "save_order".into(),
        Effect::SaveSubscription { .. } => "save_subscription".into(),
        Effect::EventApplied { .. } => "event_applied".into(),
        Effect::Notify(c) => format!("notify:{}", c.event_type()),
    }
}

/// A refusal as the table names it; invalid values name their fields.
fn refusal_kind(r: &Refusal) -> String {
    match r {
        Refusal::StaleCard(_) => "stale_card".into(),
        Refusal::NotFound(_) => "not_found".into(),
        Refusal::InvalidValues(fields) => format!(
            "invalid_values:{}",
            fields.keys().cloned().collect::<Vec<_>>().join(",")
        ),
    }
}

struct Case {
    name: &'static str,
    at: At,
    input: Do,
    /// The active flow's step afterwards (`None`: no flow).
    step: Option<&'static str>,
    /// The effects' kinds, or the refusal's.
    out: Result<&'static [&'static str], &'static str>,
}

macro_rules! case {
    ($name:literal, $at:ident, $input:expr => $step:expr, [$($kind:literal),* $(,)?]) => {
        Case { name: $name, at: At::$at, input: $input, step: $step, out: Ok(&[$($kind),*]) }
    };
    ($name:literal, $at:ident, $input:expr => $step:expr, refused $why:literal) => {
        Case { name: $name, at: At::$at, input: $input, step: $step, out: Err($why) }
    };
}

const BAD_REGISTER: &[(&str, &str)] = &[("legal_name", ""), ("country", "XX"), ("email", "nope")];
const BAD_PROFILE: &[(&str, &str)] = &[("statement_descriptor", "A*"), ("business_type", "llc")];

use Do::{Click, Done, Outside as Out, Say};

const CASES: &[Case] = &[
    // stripe_connect, the create path.
    case!("offer", Fresh, Say("I want to add payments") => None, ["card:connect_stripe"]),
    case!("offer accepted", Offered, Click(CardKind::ConnectStripe, "connect", &[]) => Some("choose_account"), ["flow:choose_account", "card:choose_account"]),
    case!("offer declined", Offered, Click(CardKind::ConnectStripe, "not_now", &[]) => None, ["reply"]),
    case!("choose to create", Choosing, Click(CardKind::ChooseAccount, "create", &[]) => Some("register"), ["flow:register", "card:register"]),
    case!("choose existing", Choosing, Click(CardKind::ChooseAccount, "existing", &[]) => Some("connect_existing"), ["flow:connect_existing", "card:connect_existing"]),
    case!("register with invalid values", Registering, Click(CardKind::Register, "continue", BAD_REGISTER) => Some("register"), refused "invalid_values:country,email,legal_name"),
    case!("register", Registering, Click(CardKind::Register, "continue", REGISTER_OK) => Some("business_profile"), ["flow:business_profile", "card:business_profile"]),
    case!("register back", Registering, Click(CardKind::Register, "back", &[]) => Some("choose_account"), ["flow:choose_account", "card:choose_account"]),
    case!("business profile with invalid values", Profile, Click(CardKind::BusinessProfile, "create_account", BAD_PROFILE) => Some("business_profile"), refused "invalid_values:business_type,statement_descriptor"),
    case!("business profile back", Profile, Click(CardKind::BusinessProfile, "back", &[]) => Some("register"), ["flow:register", "card:register"]),
    case!("creating account", Profile, Click(CardKind::BusinessProfile, "create_account", PROFILE_OK) => Some("creating_account"), ["reply", "flow:creating_account", "call:create_account"]),
    case!("account creation fails", Creating, Done(Answer::Failed) => Some("business_profile"), ["reply", "flow:business_profile", "card:business_profile"]),
    case!("account created", Creating, Done(Answer::Account(AccountIs::Onboarding)) => Some("onboarding"), ["save_connection:test", "reply", "flow:onboarding", "call:create_account_link"]),
    case!("onboarding link", AccountCreated, Done(Answer::Link) => Some("onboarding"), ["card:onboarding"]),
    case!("onboarding link fails", AccountCreated, Done(Answer::Failed) => Some("onboarding"), ["reply", "card:onboarding"]),
    case!("onboarding return", Onboarding, Out(Happens::OnboardingReturned) => Some("onboarding"), ["reply", "call:retrieve_account"]),
    case!("returned unfinished", Returned, Done(Answer::Account(AccountIs::Onboarding)) => Some("onboarding"), ["save_connection:test", "reply", "call:create_account_link"]),
    case!("account restricted", Returned, Done(Answer::Account(AccountIs::Restricted)) => Some("restricted"), ["save_connection:test", "flow:restricted", "card:account_status"]),
    case!("account rejected", Returned, Done(Answer::Account(AccountIs::Rejected)) => Some("rejected"), ["save_connection:test", "flow:rejected", "card:account_status"]),
    case!("account active", Returned, Done(Answer::Account(AccountIs::Active)) => None, ["save_connection:test", "flow:active", "card:account_status"]),
    case!("account webhook while onboarding", Onboarding, Out(Happens::AccountChanged) => Some("onboarding"), ["call:retrieve_account"]),
    // Leaving, stale cards, double clicks.
    case!("cancel said", Choosing, Say("cancel") => None, ["reply", "flow:cancelled"]),
    case!("cancel clicked", Registering, Click(CardKind::Register, "cancel", &[]) => None, ["reply", "flow:cancelled"]),
    case!("cancel once connected", Onboarding, Say("cancel") => None, ["reply", "flow:cancelled"]),
    case!("stale offer", Choosing, Click(CardKind::ConnectStripe, "connect", &[]) => Some("choose_account"), refused "stale_card"),
    case!("double click register", Profile, Click(CardKind::Register, "continue", REGISTER_OK) => Some("business_profile"), refused "stale_card"),
    case!("double click create account", Creating, Click(CardKind::BusinessProfile, "create_account", PROFILE_OK) => Some("creating_account"), refused "stale_card"),
    case!("unknown action", Choosing, Click(CardKind::ChooseAccount, "explode", &[]) => Some("choose_account"), refused "not_found"),
    // Disconnecting.
    case!("disconnect asked", Connected, Say("disconnect stripe") => None, ["card:confirm_disconnect"]),
    case!("disconnect confirmed", AskedDisconnect, Click(CardKind::ConfirmDisconnect, "confirm", &[]) => None, ["drop_connection:test", "reply", "flow:disconnected"]),
    case!("disconnect confirmed, oauth", AskedDisconnectOauth, Click(CardKind::ConfirmDisconnect, "confirm", &[]) => None, ["reply", "call:deauthorize"]),
    case!("disconnect declined", AskedDisconnect, Click(CardKind::ConfirmDisconnect, "keep", &[]) => None, ["reply"]),
    case!("deauthorized by Stripe", Connected, Out(Happens::Deauthorized) => None, ["drop_connection:test", "reply", "flow:disconnected", "card:connect_stripe"]),
    // catalog_sync.
    case!("sync start", Connected, Out(Happens::StartSync) => Some("syncing"), ["flow:syncing", "card:catalog_sync", "call:sync_catalog"]),
    case!("sync said", Connected, Say("sync my products") => Some("syncing"), ["flow:syncing", "card:catalog_sync", "call:sync_catalog"]),
    case!("sync join said", Syncing, Say("sync my products") => Some("syncing"), ["reply", "reply", "flow:syncing", "card:catalog_sync"]),
    case!("sync join from the panel", Syncing, Out(Happens::StartSync) => Some("syncing"), ["reply", "flow:syncing", "card:catalog_sync"]),
    case!("sync done", Syncing, Done(Answer::Synced) => None, ["flow:done", "card:catalog_sync"]),
    case!("sync failed", Syncing, Done(Answer::Failed) => None, ["flow:failed", "card:catalog_sync"]),
    case!("sync retried", SyncFailed, Click(CardKind::CatalogSync, "retry", &[]) => Some("syncing"), ["flow:syncing", "card:catalog_sync", "call:sync_catalog"]),
    case!("cancel during sync", Syncing, Say("cancel") => Some("syncing"), ["reply", "reply", "flow:syncing", "card:catalog_sync"]),
    case!("sync without Stripe", Fresh, Say("sync my products") => None, ["reply", "card:connect_stripe"]),
    case!("sync during connect", Choosing, Out(Happens::StartSync) => Some("choose_account"), ["reply", "reply", "flow:choose_account", "card:choose_account"]),
];

#[test]
fn flow_table() {
    let mut failures = Vec::new();
    for case in CASES {
        let mut t = Table {
            w: World::new(true),
            cards: Vec::new(),
            calls: Vec::new(),
        };
        for d in case.at.path() {
            t.step(d)
                .unwrap_or_else(|r| panic!("{}: reaching {:?}: {r:?}", case.name, case.at));
        }
        let got = t.step(case.input);
        let got_out = match &got {
            Ok(effects) => Ok(effects.iter().map(effect_kind).collect::<Vec<_>>()),
            Err(r) => Err(refusal_kind(r)),
        };
        let want_out = case
            .out
            .map(|kinds| kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>())
            .map_err(str::to_owned);
        let got_step = t.w.state.flow.as_ref().map(|f| f.step.name());
        if got_out != want_out || got_step != case.step {
            failures.push(format!(
                "{}: at {:?}, {:?}\n  expected: {:?} {:?}\n  got:      {:?} {:?}",
                case.name, case.at, case.input, case.step, want_out, got_step, got_out
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

// go_live: the checklist decides each item; the flow switches only when all pass.

fn live_ready() -> LiveFacts {
    let mut a = account(AccountIs::Active);
    a.id = "acct_live".into();
    a.statement_descriptor = Some("ADA SHOP".into());
    LiveFacts {
        account: Some(Ok(a)),
        catalog: Some((3, 2)),
        signed_live_event: true,
        live_key: true,
        test_sellable: 0,
    }
}

fn failing(items: &[CheckItem]) -> Vec<&'static str> {
    items
        .iter()
        .filter(|i| !i.ok)
        .map(|i| i.code.as_str())
        .collect()
}

#[test]
fn the_catalog_item_offers_to_copy_the_test_catalog_when_there_is_one() {
    let mut f = live_ready();
    f.catalog = None;
    let item = |f: &LiveFacts| {
        checklist(f, "https://x")
            .into_iter()
            .find(|i| i.code == CheckCode::LiveCatalog)
            .expect("catalog item")
    };
    assert_eq!(item(&f).action, Some("sync_live"), "nothing to copy");
    f.test_sellable = 2;
    let copy = item(&f);
    assert_eq!(copy.action, Some("copy_catalog"));
    assert!(copy.fix.unwrap().contains("2 test products"));
    f.account = None;
    assert_eq!(item(&f).action, None, "a live account first");
}

#[test]
fn checklist_fails_each_item_alone_and_says_how_to_fix_it() {
    type Breaks = fn(&mut LiveFacts);
    let cases: &[(&str, Breaks, &[&str])] = &[
        ("everything ready", |_| {}, &[]),
        (
            "no live account",
            |f| {
                f.account = None;
                f.signed_live_event = false
            },
            &["account_active", "live_webhook", "statement_descriptor"],
        ),
        (
            "Stripe unreachable",
            |f| f.account = Some(Err("Stripe didn't answer in time".into())),
            &["account_active", "statement_descriptor"],
        ),
        (
            "charges disabled",
            |f| {
                if let Some(Ok(a)) = &mut f.account {
                    a.charges_enabled = false
                }
            },
            &["account_active"],
        ),
        (
            "payouts disabled",
            |f| {
                if let Some(Ok(a)) = &mut f.account {
                    a.payouts_enabled = false
                }
            },
            &["account_active"],
        ),
        (
            "something due",
            |f| {
                if let Some(Ok(a)) = &mut f.account {
                    a.requirements.currently_due = vec!["external_account".into()]
                }
            },
            &["account_active"],
        ),
        (
            "something past due",
            |f| {
                if let Some(Ok(a)) = &mut f.account {
                    a.requirements.past_due = vec!["individual.id_number".into()]
                }
            },
            &["account_active"],
        ),
        (
            "catalog never synced",
            |f| f.catalog = None,
            &["live_catalog"],
        ),
        (
            "catalog with nothing sellable",
            |f| f.catalog = Some((4, 0)),
            &["live_catalog"],
        ),
        (
            "no signed live event",
            |f| f.signed_live_event = false,
            &["live_webhook"],
        ),
        (
            "no statement descriptor",
            |f| {
                if let Some(Ok(a)) = &mut f.account {
                    a.statement_descriptor = None
                }
            },
            &["statement_descriptor"],
        ),
        (
            "blank statement descriptor",
            |f| {
                if let Some(Ok(a)) = &mut f.account {
                    a.statement_descriptor = Some("  ".into())
                }
            },
            &["statement_descriptor"],
        ),
        ("no live key", |f| f.live_key = false, &["live_keys"]),
    ];
    let mut failures = Vec::new();
    for (name, breaks, want) in cases {
        let mut f = live_ready();
        breaks(&mut f);
        let items = checklist(&f, "https://chat.example/v1/webhooks/stripe");
        assert_eq!(items.len(), 5, "{name}: every item is always reported");
        let got = failing(&items);
        if got != *want {
            failures.push(format!("{name}: expected {want:?} to fail, got {got:?}"));
        }
        for i in items.iter().filter(|i| !i.ok) {
            if i.fix.as_deref().is_none_or(str::is_empty) || i.detail.is_empty() {
                failures.push(format!(
                    "{name}: {} fails without saying why and how to fix it",
                    i.code.as_str()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The fixes name what to do.
    let mut f = live_ready();
    f.signed_live_event = false;
    let webhook = &checklist(&f, "https://chat.example/v1/webhooks/stripe")[2];
    assert!(
        webhook
            .fix
            .as_deref()
            .unwrap()
            .contains("https://chat.example/v1/webhooks/stripe")
    );
    f.account = None;
    assert_eq!(checklist(&f, "x")[0].action, Some("connect_live"));
}

fn done_checklist(w: &mut World, facts: LiveFacts) -> Vec<Effect> {
    let op = w
        .state
        .pending
        .iter()
        .find(|p| p.call == Call::CheckLive)
        .map(|p| p.op)
        .expect("a checklist call is pending");
    w.input(Input::Done {
        op,
        result: Ok(CallOutput::LiveChecked(Box::new(facts))),
    })
    .unwrap()
}

fn kinds(effects: &[Effect]) -> Vec<String> {
    effects.iter().map(effect_kind).collect()
}

#[test]
fn going_live_switches_only_when_every_item_passes() {
    let mut w = World::new(true);
    let mut test_account = account(AccountIs::Active);
    test_account.business_name = Some("Ada's Courses".into());
    test_account.email = Some("ada@example.com".into());
    test_account.country = Some("GB".into());
    w.connection = Some(Connection {
        account: test_account,
        origin: crate::domain::Origin::Created,
    });
    let e = w.say("go live");
    assert_eq!(kinds(&e), ["flow:checking", "reply", "call:check_live"]);
    // Asking again while it runs joins the running check.
    assert_eq!(kinds(&w.say("go live")), ["reply"]);
    assert_eq!(
        w.state
            .pending
            .iter()
            .filter(|p| p.call == Call::CheckLive)
            .count(),
        1
    );

    let mut missing = live_ready();
    missing.account = None;
    let e = done_checklist(&mut w, missing);
    assert_eq!(kinds(&e), ["flow:not_ready", "card:go_live"]);
    let card = card_of(&e, CardKind::GoLive);
    assert_eq!(card.mode, Mode::Live);
    assert!(
        card.body.contains("No live-mode Stripe account"),
        "{}",
        card.body
    );
    let actions: Vec<&str> = card.actions.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(actions, ["connect_live", "check_again"]);
    assert_eq!(w.project_mode, Mode::Test);

    // The fix button puts the conversation in live setup: connecting works in live mode.
    let e = w.click(&card.id, "connect_live", &[]).unwrap();
    assert_eq!(w.state.setup, Some(Mode::Live));
    assert_eq!(
        kinds(&e),
        ["reply", "flow:choose_account", "card:choose_account"]
    );
    assert_eq!(card_of(&e, CardKind::ChooseAccount).mode, Mode::Live);
    let create = card_of(&e, CardKind::ChooseAccount);
    let e = w.click(&create.id, "create", &[]).unwrap();
    let register = card_of(&e, CardKind::Register);
    // The live account's form offers what the test account has.
    let offered: Vec<(&str, Option<&str>)> = register
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.value.as_deref()))
        .collect();
    assert_eq!(
        offered,
        [
            ("legal_name", Some("Ada's Courses")),
            ("country", Some("GB")),
            ("email", Some("ada@example.com"))
        ]
    );
    let e = w.click(&register.id, "continue", REGISTER_OK).unwrap();
    let profile = card_of(&e, CardKind::BusinessProfile);
    let e = w.click(&profile.id, "create_account", PROFILE_OK).unwrap();
    let (op, call) = call_of(&e);
    assert!(matches!(call, Call::CreateAccount(_)));
    assert_eq!(
        w.state.pending.iter().find(|p| p.op == op).unwrap().mode,
        Some(Mode::Live)
    );
    let mut live = account(AccountIs::Onboarding);
    live.id = "acct_live".into();
    let e = w
        .input(Input::Done {
            op,
            result: Ok(CallOutput::Account(Box::new(live))),
        })
        .unwrap();
    assert!(
        kinds(&e).contains(&"save_connection:live".to_owned()),
        "{:?}",
        kinds(&e)
    );
    assert_eq!(
        w.connection.as_ref().unwrap().account.id,
        "acct_1",
        "the test connection is untouched"
    );

    // A test-mode account event meanwhile does not move the live connection flow.
    w.event_mode = Some(Mode::Test);
    let e = w
        .input(Input::Outside(Outside::AccountChanged {
            account: "acct_1".into(),
            evidence: None,
        }))
        .unwrap();
    assert_eq!(kinds(&e), ["call:retrieve_account"]);
    let (op, _) = call_of(&e);
    assert_eq!(
        w.state.pending.iter().find(|p| p.op == op).unwrap().mode,
        Some(Mode::Test)
    );
    let e = w
        .input(Input::Done {
            op,
            result: Ok(CallOutput::Account(Box::new(account(AccountIs::Active)))),
        })
        .unwrap();
    assert_eq!(kinds(&e), ["save_connection:test", "card:account_status"]);
    assert_eq!(card_of(&e, CardKind::AccountStatus).mode, Mode::Test);
    assert_eq!(w.state.flow.as_ref().unwrap().step.name(), "onboarding");

    // Everything passes: the switch is an effect of the same turn, and live setup ends.
    w.say("cancel");
    let e = w.say("go live");
    assert_eq!(kinds(&e), ["flow:checking", "reply", "call:check_live"]);
    let e = done_checklist(&mut w, live_ready());
    assert_eq!(kinds(&e), ["set_mode:live", "flow:live", "card:go_live"]);
    assert_eq!(w.project_mode, Mode::Live);
    assert_eq!(w.state.setup, None);
    assert_eq!(card_of(&e, CardKind::GoLive).mode, Mode::Live);
    assert_eq!(kinds(&w.say("go live")), ["reply"]);

    // Back to test needs no checklist.
    let e = w.say("switch back to test mode");
    assert_eq!(kinds(&e), ["set_mode:test", "reply"]);
    assert_eq!(w.project_mode, Mode::Test);
    assert_eq!(kinds(&w.say("switch back to test mode")), ["reply"]);
}

#[test]
fn back_to_test_leaves_live_setup_and_stops_a_live_connection() {
    let mut w = World::new(true);
    w.say("go live");
    let mut missing = live_ready();
    missing.account = None;
    let card = card_of(&done_checklist(&mut w, missing), CardKind::GoLive);
    w.click(&card.id, "connect_live", &[]).unwrap();
    assert_eq!(w.state.flow.as_ref().unwrap().mode, Some(Mode::Live));
    let e = w.say("back to test mode");
    assert_eq!(kinds(&e), ["reply", "flow:cancelled", "reply"]);
    assert_eq!(w.state.setup, None);
    assert!(w.state.flow.is_none());
    assert_eq!(w.project_mode, Mode::Test);
    // The checklist card's buttons went with it.
    assert!(matches!(
        w.click(&card.id, "connect_live", &[]),
        Err(Refusal::StaleCard(_))
    ));
}

#[test]
fn go_live_needs_the_backend_and_survives_a_failed_check() {
    let mut w = World::new(false);
    assert_eq!(kinds(&w.say("go live")), ["card:backend_required"]);
    let mut w = World::new(true);
    w.say("go live");
    let op = w.state.pending[0].op;
    // The pending check is part of the stored state: a restart re-issues it.
    let stored: ConversationState =
        serde_json::from_str(&serde_json::to_string(&w.state).unwrap()).unwrap();
    assert_eq!(
        stored
            .pending_calls()
            .map(|(_, c)| c.clone())
            .collect::<Vec<_>>(),
        [Call::CheckLive]
    );
    let e = w
        .input(Input::Done {
            op,
            result: Err(CallError {
                message: "the store is unavailable".into(),
                code: None,
            }),
        })
        .unwrap();
    assert_eq!(kinds(&e), ["flow:not_ready", "reply"]);
    assert_eq!(w.project_mode, Mode::Test);
    // A result for a check nobody waits for any more changes nothing.
    assert!(done_is_ignored(&mut w, op));
}

fn done_is_ignored(w: &mut World, op: u64) -> bool {
    w.input(Input::Done {
        op,
        result: Ok(CallOutput::LiveChecked(Box::new(live_ready()))),
    })
    .unwrap()
    .is_empty()
}

fn payout(status: crate::billing::PayoutStatus) -> crate::billing::Payout {
    crate::billing::Payout {
        id: "po_1".into(),
        amount: 4728,
        currency: crate::domain::Currency::parse("usd").unwrap(),
        status,
        arrival_date: 1_795_000_000,
        created: 1_794_800_000,
        failure_code: None,
        failure_message: None,
        payments: Vec::new(),
    }
}

fn payout_event(w: &mut World, event: &str) -> Vec<Effect> {
    w.input(Input::Outside(Outside::PayoutChanged {
        payout: "po_1".into(),
        event: Some(event.into()),
    }))
    .unwrap()
}

fn payout_read(w: &mut World, op: u64, p: crate::billing::PayoutStatus) -> Vec<Effect> {
    w.input(Input::Done {
        op,
        result: Ok(CallOutput::PayoutRefreshed(Some(Box::new(payout(p))))),
    })
    .unwrap()
}

/// A payout's events race its re-reads: an event that arrives while a read runs is applied by
/// a read after it (so "paid" is not lost behind an "in transit" read), and the arrival is told
/// once however many events name it.
#[test]
fn payouts_are_read_after_their_last_event_and_told_once() {
    use crate::billing::PayoutStatus as P;
    let mut w = World::new(true);
    w.connection = Some(Connection {
        account: account(AccountIs::Active),
        origin: Origin::Created,
    });
    let (op, _) = call_of(&payout_event(&mut w, "evt_updated"));
    // payout.paid arrives while the read for payout.updated is running.
    assert!(kinds(&payout_event(&mut w, "evt_paid")).is_empty());
    let after = payout_read(&mut w, op, P::InTransit);
    assert!(!after.iter().any(|e| matches!(e, Effect::Card(_))));
    let (again, call) = call_of(&after);
    assert!(
        matches!(&call, Call::RefreshPayout { events, .. } if events == &["evt_paid".to_owned()])
    );
    let told = payout_read(&mut w, again, P::Paid);
    assert_eq!(card_of(&told, CardKind::Payout).title, "Payout arrived");
    assert!(told.iter().any(
        |e| matches!(e, Effect::EventApplied { id, outcome } if id == "evt_paid" && outcome == "applied")
    ));
    // A late duplicate reads paid again: nothing more is told.
    let (op, _) = call_of(&payout_event(&mut w, "evt_paid_again"));
    let quiet = payout_read(&mut w, op, P::Paid);
    assert!(
        !quiet.iter().any(|e| matches!(e, Effect::Card(_))),
        "{quiet:?}"
    );
}

fn order_event(w: &mut World, order: OrderRef, event: &str) -> Vec<Effect> {
    w.input(Input::Outside(Outside::OrderChanged {
        order,
        event: Some(event.into()),
        evidence: Some(crate::evidence::Evidence::PaymentIntent {
            id: "pi_1".into(),
            status: "succeeded".into(),
        }),
        known: None,
    }))
    .unwrap()
}

/// A read of ord_1: open before, paid by pi_1 after (so it shows the events' evidence).
fn order_read(w: &mut World, op: u64) -> Vec<Effect> {
    let mut before = crate::orders::Order::new_for_tests(
        "ord_1",
        1001,
        crate::domain::Currency::parse("usd").unwrap(),
        4900,
    );
    before.payment_intent = Some("pi_1".into());
    let mut after = before.clone();
    after.status = crate::orders::OrderStatus::Paid;
    w.input(Input::Done {
        op,
        result: Ok(CallOutput::OrderRefreshed {
            before: Some(Box::new(before)),
            after: Some(Box::new(after)),
            version: 1,
        }),
    })
    .unwrap()
}

fn reads(effects: &[Effect]) -> Vec<Vec<String>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Call {
                call: Call::RefreshOrder { events, .. },
                ..
            } => Some(events.clone()),
            _ => None,
        })
        .collect()
}

fn applied(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::EventApplied { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// An event's evidence may spare the order's read only when no other re-read of that order
/// runs: an event arriving during a read joins it, and the read's own result decides for it; a
/// read running under another kind of reference (a PaymentIntent) may be of the same order, and
/// a join without evidence always reads again.
#[test]
fn evidence_spares_a_read_only_while_no_read_of_the_order_runs() {
    let mut w = World::new(true);
    w.connection = Some(Connection {
        account: account(AccountIs::Active),
        origin: Origin::Created,
    });
    let ord = |id: &str| OrderRef::Order(id.into());
    // Without the stored order at hand: read.
    let (first, _) = call_of(&order_event(&mut w, ord("ord_1"), "evt_1"));
    let (other, _) = call_of(&order_event(&mut w, ord("ord_2"), "evt_2"));
    // The same order again: joined to the running read.
    assert!(kinds(&order_event(&mut w, ord("ord_1"), "evt_3")).is_empty());
    // Named by its PaymentIntent: maybe the same order, so its own read.
    let (by_pi, _) = call_of(&order_event(
        &mut w,
        OrderRef::PaymentIntent("pi_1".into()),
        "evt_4",
    ));
    // The first read ends while the PaymentIntent's runs: though the order it stores shows
    // evt_3's evidence, evt_3 is read again.
    let after_first = order_read(&mut w, first);
    assert_eq!(reads(&after_first), vec![vec!["evt_3".to_owned()]]);
    assert!(!applied(&after_first).contains(&"evt_3".to_owned()));
    let (again, _) = call_of(&after_first);
    for op in [other, by_pi, again] {
        order_read(&mut w, op);
    }
    // With nothing else running, the events that joined a read are applied by its result
    // when it shows their evidence.
    let (op, _) = call_of(&order_event(&mut w, ord("ord_1"), "evt_5"));
    assert!(kinds(&order_event(&mut w, ord("ord_1"), "evt_6")).is_empty());
    let done = order_read(&mut w, op);
    assert!(reads(&done).is_empty(), "{done:?}");
    assert_eq!(applied(&done), vec!["evt_5".to_owned(), "evt_6".to_owned()]);
    // Unless one joined without evidence.
    let (op, _) = call_of(&order_event(&mut w, ord("ord_1"), "evt_8"));
    assert!(kinds(&order_event(&mut w, ord("ord_1"), "evt_7")).is_empty());
    w.input(Input::Outside(Outside::OrderChanged {
        order: ord("ord_1"),
        event: None,
        evidence: None,
        known: None,
    }))
    .unwrap();
    assert_eq!(
        reads(&order_read(&mut w, op)),
        vec![vec!["evt_7".to_owned()]]
    );
}

/// `account.updated` with the account as stored reads nothing; a different one, or one while
/// a read of the account runs, is read.
#[test]
fn an_account_event_showing_the_stored_account_reads_nothing() {
    let mut w = World::new(true);
    let stored = account(AccountIs::Active);
    w.connection = Some(Connection {
        account: stored.clone(),
        origin: Origin::Created,
    });
    let event = |w: &mut World, evidence: Option<AccountSnapshot>| {
        w.input(Input::Outside(Outside::AccountChanged {
            account: stored.id.clone(),
            evidence: evidence.map(Box::new),
        }))
        .unwrap()
    };
    assert!(kinds(&event(&mut w, Some(stored.clone()))).is_empty());
    let mut changed = stored.clone();
    changed.payouts_enabled = false;
    let (op, call) = call_of(&event(&mut w, Some(changed)));
    assert!(matches!(call, Call::RetrieveAccount { .. }));
    // While that read runs, even the stored account is read again.
    let (again, _) = call_of(&event(&mut w, Some(stored.clone())));
    assert_ne!(op, again);
    let (_, call) = call_of(&event(&mut w, None));
    assert!(matches!(call, Call::RetrieveAccount { .. }));
}

/// With the stored order at hand (the server looked it up), an event it already shows is
/// applied at once, without a read; not while a read that may be of the same order runs.
#[test]
fn an_order_event_the_stored_order_shows_is_applied_without_a_read() {
    let mut w = World::new(true);
    w.connection = Some(Connection {
        account: account(AccountIs::Active),
        origin: Origin::Created,
    });
    let mut paid = crate::orders::Order::new_for_tests(
        "ord_1",
        1001,
        crate::domain::Currency::parse("usd").unwrap(),
        4900,
    );
    paid.status = crate::orders::OrderStatus::Paid;
    paid.payment_intent = Some("pi_1".into());
    let event = |w: &mut World, order: OrderRef, id: &str, known: Option<&crate::orders::Order>| {
        w.input(Input::Outside(Outside::OrderChanged {
            order,
            event: Some(id.into()),
            evidence: Some(crate::evidence::Evidence::PaymentIntent {
                id: "pi_1".into(),
                status: "succeeded".into(),
            }),
            known: known.cloned().map(Box::new),
        }))
        .unwrap()
    };
    let quiet = event(
        &mut w,
        OrderRef::Order("ord_1".into()),
        "evt_1",
        Some(&paid),
    );
    assert!(
        matches!(quiet.as_slice(), [Effect::EventApplied { id, .. }] if id == "evt_1"),
        "{quiet:?}"
    );
    let mut open = paid.clone();
    open.status = crate::orders::OrderStatus::Open;
    let (_, call) = call_of(&event(
        &mut w,
        OrderRef::Order("ord_1".into()),
        "evt_2",
        Some(&open),
    ));
    assert!(matches!(call, Call::RefreshOrder { .. }));
    // That read runs: the same order under its PaymentIntent is read, whatever is stored.
    let (_, call) = call_of(&event(
        &mut w,
        OrderRef::PaymentIntent("pi_1".into()),
        "evt_3",
        Some(&paid),
    ));
    assert!(matches!(call, Call::RefreshOrder { .. }));
}

/// A first sync that finds no products (a project's first live sync) does not claim that
/// nothing changed since a last sync it never had; a later sync of the same products does.
#[test]
fn an_empty_first_sync_does_not_say_nothing_changed() {
    let mut w = World::new(true);
    w.connection = Some(Connection {
        account: account(AccountIs::Active),
        origin: crate::domain::Origin::Created,
    });
    let synced = |w: &mut World, products: usize| {
        let e = w.say("sync my products");
        let (op, _) = call_of(&e);
        let e = w
            .input(Input::Done {
                op,
                result: Ok(CallOutput::Synced(Box::new(SyncReport {
                    products,
                    sellable: products,
                    ..Default::default()
                }))),
            })
            .unwrap();
        card_of(&e, CardKind::CatalogSync).body
    };
    let empty = synced(&mut w, 0);
    assert!(!empty.contains("Nothing changed"), "{empty}");
    assert!(empty.contains("no products yet"), "{empty}");
    let same = synced(&mut w, 2);
    assert!(
        same.contains("Nothing changed since the last sync"),
        "{same}"
    );
}
