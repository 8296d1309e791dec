//! Protocol v1 on the wire: client frames parsed into typed commands (or a precise error), and the
//! two server frames that are not part of the conversation (`welcome`, `error`).

use std::collections::BTreeMap;

use serde::Serialize;

use chatpay_core::error::ErrorCode;
use serde_json::{Map, Value};

use crate::chat::Command;

/// Longest client-chosen `id`.
const MAX_ID: usize = 128;
/// Longest `say` text, in characters.
const MAX_TEXT: usize = 4000;

/// A parsed client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Hello {
        token: String,
        project: String,
        resume_after: i64,
    },
    Command(Command),
}

/// Why a frame was refused, as an `error` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub reply_to: Option<String>,
    pub code: ErrorCode,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

impl FrameError {
    pub fn new(
        reply_to: Option<String>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> FrameError {
        FrameError {
            reply_to,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&ServerFrame::Error {
            reply_to: self.reply_to.as_deref(),
            code: self.code.as_str(),
            message: &self.message,
            fields: &self.fields,
        })
        .expect("error frames serialize")
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame<'a> {
    Welcome {
        conversation: &'a str,
        project: &'a str,
        mode: &'a str,
        last_seq: i64,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<&'a str>,
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        fields: &'a BTreeMap<String, String>,
    },
}

pub fn welcome(conversation: &str, project: &str, mode: &str, last_seq: i64) -> String {
    serde_json::to_string(&ServerFrame::Welcome {
        conversation,
        project,
        mode,
        last_seq,
    })
    .expect("welcome frames serialize")
}

fn text_field(
    obj: &Map<String, Value>,
    name: &str,
    id: &Option<String>,
) -> Result<String, FrameError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(FrameError::new(
            id.clone(),
            ErrorCode::BadFrame,
            format!("`{name}` must be a string"),
        )),
        None => Err(FrameError::new(
            id.clone(),
            ErrorCode::BadFrame,
            format!("missing field `{name}`"),
        )),
    }
}

fn id_field(obj: &Map<String, Value>, id: &Option<String>) -> Result<String, FrameError> {
    let value = text_field(obj, "id", id)?;
    if value.is_empty() || value.len() > MAX_ID {
        return Err(FrameError::new(
            None,
            ErrorCode::BadFrame,
            format!("`id` must be 1 to {MAX_ID} bytes"),
        ));
    }
    Ok(value)
}

/// Parses one text frame: `{"type":"say","id":"u1","text":"hi"}` is a command, `nope` a
/// `bad_frame` error, `{"type":"dance","id":"u2"}` an `unknown_type` one (replying to `u2`).
pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new(None, ErrorCode::BadFrame, format!("not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(FrameError::new(
            None,
            ErrorCode::BadFrame,
            "a frame must be a JSON object",
        ));
    };
    // Used as reply_to in errors when it is usable.
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID)
        .map(str::to_owned);
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(FrameError::new(
                id,
                ErrorCode::BadFrame,
                "`type` must be a string",
            ));
        }
        None => {
            return Err(FrameError::new(
                id,
                ErrorCode::BadFrame,
                "missing field `type`",
            ));
        }
    };
    match kind {
        "hello" => {
            let resume_after = match obj.get("resume_after") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                    FrameError::new(
                        None,
                        ErrorCode::BadFrame,
                        "`resume_after` must be a non-negative integer",
                    )
                })?,
            };
            Ok(ClientFrame::Hello {
                // Absent for the web page, whose session cookie came with the upgrade.
                token: match obj.get("token") {
                    None | Some(Value::Null) => String::new(),
                    Some(_) => text_field(&obj, "token", &None)?,
                },
                project: text_field(&obj, "project", &None)?,
                resume_after,
            })
        }
        "say" => {
            let cmd_id = id_field(&obj, &id)?;
            let text = text_field(&obj, "text", &id)?;
            if text.chars().count() > MAX_TEXT {
                return Err(FrameError::new(
                    id,
                    ErrorCode::BadFrame,
                    format!("`text` is longer than {MAX_TEXT} characters"),
                ));
            }
            Ok(ClientFrame::Command(Command::Say { id: cmd_id, text }))
        }
        "click" => {
            let cmd_id = id_field(&obj, &id)?;
            let card = text_field(&obj, "card", &id)?;
            let action = text_field(&obj, "action", &id)?;
            let mut values = BTreeMap::new();
            let mut wrong = BTreeMap::new();
            match obj.get("values") {
                None | Some(Value::Null) => {}
                Some(Value::Object(map)) => {
                    for (k, v) in map {
                        match v {
                            Value::String(s) => {
                                values.insert(k.clone(), s.clone());
                            }
                            Value::Number(n) => {
                                values.insert(k.clone(), n.to_string());
                            }
                            Value::Bool(b) => {
                                values.insert(k.clone(), b.to_string());
                            }
                            Value::Null => {}
                            _ => {
                                wrong.insert(
                                    k.clone(),
                                    "must be text, a number or true/false".to_owned(),
                                );
                            }
                        }
                    }
                }
                Some(_) => {
                    return Err(FrameError::new(
                        id,
                        ErrorCode::BadFrame,
                        "`values` must be an object",
                    ));
                }
            }
            if !wrong.is_empty() {
                let mut e = FrameError::new(
                    id,
                    ErrorCode::InvalidValues,
                    "some values have the wrong type",
                );
                e.fields = wrong;
                return Err(e);
            }
            Ok(ClientFrame::Command(Command::Click {
                id: cmd_id,
                card,
                action,
                values,
            }))
        }
        other => Err(FrameError::new(
            id,
            ErrorCode::UnknownType,
            format!("unknown frame type {other:?}; expected hello, say or click"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_say_frame_is_a_command() {
        let f = parse(r#"{"type":"say","id":"u1","text":"hi"}"#).unwrap();
        assert!(matches!(f, ClientFrame::Command(Command::Say { .. })));
        assert_eq!(parse("nope").unwrap_err().code.as_str(), "bad_frame");
    }

    #[test]
    fn every_malformed_shape_has_a_precise_error() {
        let cases = [
            ("", "bad_frame"),
            ("[1,2]", "bad_frame"),
            (r#"{"id":"u1"}"#, "bad_frame"),
            (r#"{"type":3}"#, "bad_frame"),
            (r#"{"type":"say","id":"u1"}"#, "bad_frame"),
            (r#"{"type":"say","text":"hi"}"#, "bad_frame"),
            (r#"{"type":"say","id":"","text":"hi"}"#, "bad_frame"),
            (r#"{"type":"click","id":"u1","card":"c"}"#, "bad_frame"),
            (
                r#"{"type":"click","id":"u1","card":"c","action":"a","values":[]}"#,
                "bad_frame",
            ),
            (
                r#"{"type":"click","id":"u1","card":"c","action":"a","values":{"x":[1]}}"#,
                "invalid_values",
            ),
            (r#"{"type":"hello","token":"t"}"#, "bad_frame"),
            (
                r#"{"type":"hello","token":"t","project":"p","resume_after":-1}"#,
                "bad_frame",
            ),
            (r#"{"type":"wave","id":"u9"}"#, "unknown_type"),
        ];
        for (text, code) in cases {
            assert_eq!(parse(text).unwrap_err().code.as_str(), code, "{text}");
        }
        assert_eq!(
            parse(r#"{"type":"wave","id":"u9"}"#)
                .unwrap_err()
                .reply_to
                .as_deref(),
            Some("u9")
        );
    }

    #[test]
    fn click_values_become_text() {
        let f = parse(r#"{"type":"click","id":"u1","card":"c","action":"a","values":{"n":3,"b":true,"s":"x","z":null}}"#).unwrap();
        let ClientFrame::Command(Command::Click { values, .. }) = f else {
            panic!()
        };
        assert_eq!(values.len(), 3);
        assert_eq!(values["n"], "3");
    }
}
