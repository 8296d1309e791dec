//! A WebSocket client that remembers what it saw: the last `seq`, the cards by kind, the frames it
//! sent by id (to send them again).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Default)]
pub struct Client {
    ws: Option<Ws>,
    inbox: VecDeque<Value>,
    /// The highest `seq` received.
    pub last_seq: i64,
    /// Cards seen: kind, id, the card itself.
    cards: Vec<(String, String, Value)>,
    sent: HashMap<String, String>,
    close_code: Option<u16>,
    /// Whether `said` frames (the echo of a person's own `say`) are returned; by default they
    /// are noted (their `seq` counts) and skipped, as transcripts expect chatpay's answers.
    pub keep_said: bool,
    /// The `said` frames seen, in order.
    pub said: Vec<Value>,
}

impl Client {
    pub fn new() -> Client {
        Client::default()
    }

    pub fn connected(&self) -> bool {
        self.ws.is_some()
    }

    /// Opens the WebSocket without saying hello.
    pub async fn open(&mut self, url: &str) -> anyhow::Result<()> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        self.ws = Some(ws);
        self.close_code = None;
        Ok(())
    }

    /// Opens, says hello and waits for `welcome`, which it returns.
    pub async fn connect(
        &mut self,
        url: &str,
        token: &str,
        project: &str,
        resume_after: i64,
    ) -> anyhow::Result<Value> {
        self.open(url).await?;
        let hello = json!({ "type": "hello", "token": token, "project": project, "resume_after": resume_after });
        self.send_text(&hello.to_string()).await?;
        let welcome = self
            .read(Duration::from_secs(15))
            .await?
            .ok_or_else(|| anyhow!("no welcome"))?;
        if welcome["type"] != "welcome" {
            bail!("expected welcome, got {welcome}");
        }
        Ok(welcome)
    }

    pub fn drop_connection(&mut self) {
        self.ws = None;
        self.inbox.clear();
    }

    /// Forgets what was seen (a brand-new client).
    pub fn forget(&mut self) {
        self.last_seq = 0;
        self.cards.clear();
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        let ws = self
            .ws
            .as_mut()
            .ok_or_else(|| anyhow!("client is not connected"))?;
        ws.send(Message::Text(text.into()))
            .await
            .context("sending a frame")
    }

    pub async fn send_json(&mut self, id: &str, frame: &Value) -> anyhow::Result<()> {
        let text = frame.to_string();
        self.sent.insert(id.to_owned(), text.clone());
        self.send_text(&text).await
    }

    pub async fn resend(&mut self, id: &str) -> anyhow::Result<()> {
        let text = self
            .sent
            .get(id)
            .cloned()
            .ok_or_else(|| anyhow!("no frame with id {id} was sent"))?;
        self.send_text(&text).await
    }

    /// The id of the newest (or `nth`, 1-based) card of `kind` seen.
    pub fn card(&self, kind: &str, nth: Option<usize>) -> Option<String> {
        let of_kind: Vec<&String> = self
            .cards
            .iter()
            .filter(|(k, _, _)| k == kind)
            .map(|(_, id, _)| id)
            .collect();
        match nth {
            Some(n) => of_kind.get(n.checked_sub(1)?).map(|s| (*s).clone()),
            None => of_kind.last().map(|s| (*s).clone()),
        }
    }

    /// The URL of a link action on the newest card of `kind` that has one.
    pub fn link(&self, kind: &str, action: &str) -> Option<String> {
        self.cards
            .iter()
            .rev()
            .filter(|(k, _, _)| k == kind)
            .find_map(|(_, _, card)| {
                card["actions"]
                    .as_array()?
                    .iter()
                    .find(|a| a["id"] == action)
                    .and_then(|a| a["url"].as_str())
                    .map(str::to_owned)
            })
    }

    fn note(&mut self, frame: &Value) {
        if let Some(seq) = frame["seq"].as_i64() {
            self.last_seq = self.last_seq.max(seq);
        }
        if frame["type"] == "card" {
            let card = &frame["card"];
            if let (Some(kind), Some(id)) = (card["kind"].as_str(), card["id"].as_str()) {
                // A card shown again (same id) moves to the end: it is the newest of its kind.
                self.cards.retain(|(_, i, _)| i != id);
                self.cards
                    .push((kind.to_owned(), id.to_owned(), card.clone()));
            }
        }
    }

    /// Reads one frame from the socket (not the inbox), waiting up to `patience`.
    async fn read(&mut self, patience: Duration) -> anyhow::Result<Option<Value>> {
        loop {
            let Some(ws) = self.ws.as_mut() else {
                return Ok(None);
            };
            let msg = match tokio::time::timeout(patience, ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => {
                    self.ws = None;
                    return Ok(None);
                }
                Ok(Some(Err(e))) => {
                    self.ws = None;
                    return Err(anyhow!("connection failed: {e}"));
                }
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .context("the server sent a frame that is not JSON")?;
                    self.note(&v);
                    if v["type"] == "said" && !self.keep_said {
                        self.said.push(v);
                        continue;
                    }
                    return Ok(Some(v));
                }
                Message::Close(frame) => {
                    self.close_code = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    return Ok(None);
                }
                _ => continue,
            }
        }
    }

    /// The next frame, waiting up to `patience`.
    pub async fn next(&mut self, patience: Duration) -> anyhow::Result<Value> {
        if let Some(f) = self.inbox.pop_front() {
            return Ok(f);
        }
        self.read(patience)
            .await?
            .ok_or_else(|| anyhow!("nothing arrived within {patience:?}"))
    }

    /// A frame that has already arrived, if any.
    pub fn take_ready(&mut self) -> Option<Value> {
        if let Some(f) = self.inbox.pop_front() {
            return Some(f);
        }
        let ws = self.ws.as_mut()?;
        match futures_util::FutureExt::now_or_never(ws.next()) {
            Some(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).ok()?;
                self.note(&v);
                if v["type"] == "said" && !self.keep_said {
                    self.said.push(v);
                    return self.take_ready();
                }
                Some(v)
            }
            _ => None,
        }
    }

    pub async fn take_ready_or_wait(&mut self, patience: Duration) -> Option<Value> {
        match self.inbox.pop_front() {
            Some(f) => Some(f),
            None => self.read(patience).await.ok().flatten(),
        }
    }

    /// Waits for the server to close the connection; returns the close code.
    pub async fn closed_with(&mut self, patience: Duration) -> Option<u16> {
        while self.ws.is_some() && self.close_code.is_none() {
            match self.read(patience).await {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
        self.close_code
    }
}
