use std::collections::BTreeMap;

use super::*;
use crate::account::AccountSnapshot;
use crate::intents::{Matcher, load_embedded};

struct World {
    matcher: Matcher,
    state: ConversationState,
    conversation: ConversationId,
    links: Links,
    labels: BTreeMap<String, String>,
    backend: bool,
    connection: Option<Connection>,
    inputs: u32,
}

impl World {
    fn new(backend: bool) -> World {
        World {
            matcher: load_embedded(0.5, 0.08).unwrap(),
            state: ConversationState::default(),
            conversation: ConversationId::parse("cnv_test1").unwrap(),
            links: Links {
                public: "http://127.0.0.1:1".into(),
                oauth_authorize: Some("http://127.0.0.1:2/oauth/authorize?client_id=ca_x".into()),
            },
            labels: BTreeMap::new(),
            backend,
            connection: None,
            inputs: 0,
        }
    }

    fn input(&mut self, input: Input<'_>) -> Result<Vec<Effect>, Refusal> {
        self.inputs += 1;
        let fresh = format!("n{}x", self.inputs);
        let facts = Facts {
            conversation: &self.conversation,
            backend: self.backend,
            mode: Mode::Test,
            connection: self.connection.as_ref(),
            now_ms: 1_795_000_000_000,
            links: &self.links,
            labels: &self.labels,
            fresh: &fresh,
            asked: None,
        };
        let effects = self.state.handle(input, &facts)?;
        for e in &effects {
            match e {
                Effect::SaveConnection(c) => self.connection = Some((**c).clone()),
                Effect::DropConnection => self.connection = None,
                _ => {}
            }
        }
        Ok(effects)
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
    assert_eq!(profile.fields[0].value.as_deref(), Some("ADA LOVELACE"));
    assert!(matches!(
        w.click(&register.id, "continue", &[]),
        Err(Refusal::StaleCard(_))
    ));

    let bad = w.click(
        &profile.id,
        "create_account",
        &[("statement_descriptor", "A*"), ("business_type", "llc")],
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

    let e = w
        .click(
            &profile.id,
            "create_account",
            &[
                ("statement_descriptor", "ADA LOVELACE"),
                ("business_type", "individual"),
            ],
        )
        .unwrap();
    assert_eq!(flow_states(&e), ["creating_account"]);
    let (op, call) = call_of(&e);
    let Call::CreateAccount(new) = call else {
        panic!()
    };
    assert_eq!(new.country, "GB");
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
        origin: "created".into(),
    });
    let e1 = w
        .input(Input::Outside(Outside::AccountChanged {
            account: "acct_9".into(),
        }))
        .unwrap();
    let e2 = w
        .input(Input::Outside(Outside::AccountChanged {
            account: "acct_9".into(),
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
