//! The conversation frames the server sends (`reply`, `card`, `flow`), as stored and as sent.
//! A frame is serialized once, stored, and the same text goes to every client.

use std::sync::Arc;

use serde::Serialize;

use chatpay_core::cards::Card;

/// The intent a `say` was read as, carried by every frame the `say` caused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentTag {
    pub name: String,
    pub confidence: f32,
}

/// One frame of a conversation, ready to store and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    pub seq: i64,
    pub json: Arc<str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Body<'a> {
    /// A person's own message, as said: part of the conversation like chatpay's answers, so
    /// every tab (and a reload) shows both sides. `reply_to` is the `say`'s own id, so the
    /// tab that sent it does not show it twice.
    Said {
        seq: i64,
        reply_to: Option<&'a str>,
        text: &'a str,
    },
    Reply {
        seq: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<&'a str>,
        text: &'a str,
        /// Absent for frames not caused by a `say`; `null` when the `say` matched nothing.
        #[serde(skip_serializing_if = "Option::is_none")]
        intent: Option<Option<&'a IntentTag>>,
    },
    Card {
        seq: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        intent: Option<Option<&'a IntentTag>>,
        card: &'a Card,
    },
    Flow {
        seq: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        intent: Option<Option<&'a IntentTag>>,
        flow: &'a str,
        state: &'a str,
    },
}
