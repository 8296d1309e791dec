//! The WebSocket transport at `/v1/chat`: upgrade, one task per connection, protocol framing.
//! It translates frames to commands and results to frames; the chat engine decides everything.

mod protocol;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::auth::Principal;
use crate::chat::{ChatError, Engine, Joined, OutFrame, TokenBucket, TurnReply};
use crate::config::ChatConfig;
use crate::wire::ErrorBody;
use chatpay_core::domain::TokenId;
use chatpay_core::error::ErrorCode;
use chatpay_store::TokenKind;
use protocol::{ClientFrame, FrameError};

/// Close codes used here (RFC 6455).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
/// "Try again later" (RFC 6455's registry): the page reconnects and resumes from its last `seq`.
const CLOSE_TRY_AGAIN: u16 = 1013;

/// Stored frames read per page when a client catches up.
const CATCH_UP_PAGE: i64 = 200;

/// Small buffers: an idle connection should cost a few KB, not tungstenite's 128 KiB defaults.
/// Frames queued with `feed` are written together up to this size, or on `flush`.
const READ_BUFFER: usize = 2 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;

/// What a connection needs from the server (the router's state provides it).
#[derive(Clone)]
pub struct WsState {
    pub engine: Engine,
    pub chat: Arc<ChatConfig>,
    /// Flips to true when the server is stopping.
    pub shutdown: watch::Receiver<bool>,
    /// The web page's session secret from the upgrade request's cookie, when the request comes
    /// from the page's own origin (the HTTP layer's rule; `None` otherwise).
    pub page_session: fn(&HeaderMap) -> Option<String>,
}

/// `GET /v1/chat`: the WebSocket upgrade. A request that is not one answers the API's error
/// body (`bad_request`), not axum's plain text.
#[utoipa::path(get, operation_id = "chat_upgrade", path = "/v1/chat", tag = "chat",
    params(
        ("Upgrade" = String, Header, description = "`websocket`"),
        ("Connection" = String, Header, description = "`Upgrade`"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, description = "16 random bytes, base64"),
    ),
    description = "The chat, protocol v1 (docs/protocol.md): a WebSocket; the first frame is         `hello` with the API token and the project.",
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "`bad_request`: not a WebSocket upgrade", body = ErrorBody),
        (status = 405, description = "`method_not_allowed`: an upgrade must be a GET", body = ErrorBody),
        (status = 426, description = "`bad_request`: the upgrade needs `Upgrade: websocket`", body = ErrorBody),
    ))]
pub async fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<WsState>,
    headers: HeaderMap,
) -> Response {
    let page_session = (state.page_session)(&headers);
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return refused(&rejection),
    };
    let max = state.chat.max_frame_bytes;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(4 * 1024 * 1024)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            let mut conn = Connection {
                socket,
                engine: state.engine.clone(),
                joined: None,
                last_sent: 0,
                bucket: TokenBucket::new(state.chat.turns_per_second, Instant::now()),
                max_frame_bytes: max,
                page_session,
                principal: None,
                revocations: state.engine.revocations(),
            };
            let mut shutdown = state.shutdown.clone();
            let deadline = tokio::time::Instant::now() + state.chat.hello_timeout;
            metrics::gauge!("chatpay_ws_connections").increment(1);
            conn.run(&mut shutdown, deadline).await;
            metrics::gauge!("chatpay_ws_connections").decrement(1);
        })
}

/// A request that is not a WebSocket upgrade, as the one error body.
fn refused(rejection: &WebSocketUpgradeRejection) -> Response {
    let code = if rejection.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED {
        ErrorCode::MethodNotAllowed
    } else {
        ErrorCode::BadRequest
    };
    let body = ErrorBody {
        code: code.as_str().to_owned(),
        message: format!(
            "/v1/chat is a WebSocket (protocol v1, docs/protocol.md): {}",
            rejection.body_text()
        ),
        fields: None,
    };
    (rejection.status(), axum::Json(body)).into_response()
}

struct Connection {
    socket: WebSocket,
    engine: Engine,
    joined: Option<Joined>,
    /// The highest `seq` sent to this client.
    last_sent: i64,
    bucket: TokenBucket,
    /// The configured largest frame, named when a bigger one closes the connection.
    max_frame_bytes: usize,
    /// The page's session from the upgrade's cookie (same origin only), used by a `hello`
    /// without a token.
    page_session: Option<String>,
    /// Who said hello: the connection closes when its credential is revoked or expires.
    principal: Option<Principal>,
    revocations: broadcast::Receiver<TokenId>,
}

/// Why a connection ends.
enum End {
    /// The connection is gone (or broken): nothing more can be sent.
    Closed,
    /// The client sent a Close: it is answered with one (RFC 6455 §5.5.1).
    ClosedByClient,
    /// The server closes with this code and reason, and waits for the client's Close.
    Close(u16, Cow<'static, str>),
}

/// How long a server-initiated close waits for the client's Close before it drops the
/// connection.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Connection {
    async fn run(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        hello_deadline: tokio::time::Instant,
    ) {
        let end = loop {
            let step = tokio::select! {
                _ = shutdown.changed() => Err(End::Close(CLOSE_GOING_AWAY, "server shutting down".into())),
                _ = tokio::time::sleep_until(hello_deadline), if self.joined.is_none() => {
                    Err(End::Close(CLOSE_POLICY, "no hello in time".into()))
                }
                // Handling is boxed: an idle connection then holds only this small select.
                revoked = self.revocations.recv(), if self.principal.is_some() => Box::pin(self.check_revoked(revoked)).await,
                _ = sleep_until_expiry(self.principal.as_ref()) => {
                    Err(End::Close(CLOSE_POLICY, "the token expired".into()))
                }
                incoming = self.socket.recv() => Box::pin(self.incoming(incoming)).await,
                live = recv_live(&mut self.joined) => Box::pin(self.live(live)).await,
            };
            if let Err(end) = step {
                break end;
            }
        };
        match end {
            End::Closed => {}
            // The library queued the answering Close when it read the client's: send it.
            End::ClosedByClient => {
                let _ = self.socket.flush().await;
            }
            End::Close(code, reason) => {
                let sent = self
                    .socket
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.as_ref().into(),
                    })))
                    .await;
                // Read on until the client's Close (or the end, or CLOSE_WAIT): closing the
                // TCP connection with unread data in it sends a reset, and a client that is
                // still sending (an oversized frame) would never read the Close.
                if sent.is_ok() {
                    let _ = tokio::time::timeout(CLOSE_WAIT, async {
                        while let Some(m) = self.socket.recv().await {
                            if matches!(m, Ok(Message::Close(_))) {
                                break;
                            }
                        }
                    })
                    .await;
                }
            }
        }
    }

    /// A credential was revoked (here, by another instance, or by the command line: see
    /// `Engine::revocations`): if it is this connection's, the connection ends.
    async fn check_revoked(&mut self, revoked: Result<TokenId, RecvError>) -> Result<(), End> {
        let Some(mine) = &self.principal else {
            return Ok(());
        };
        let ended = match revoked {
            Ok(id) => id == mine.credential,
            Err(RecvError::Closed) => false,
            // Missed some: ask the store whether this one still works.
            Err(RecvError::Lagged(_)) => match self.engine.still_valid(mine).await {
                Ok(valid) => !valid,
                Err(e) => {
                    tracing::warn!(error = %e, "could not check the connection's credential");
                    false
                }
            },
        };
        if !ended {
            return Ok(());
        }
        let reason = match mine.kind {
            TokenKind::Session => "signed out: the session was ended",
            _ => "the token was revoked",
        };
        Err(End::Close(CLOSE_POLICY, reason.into()))
    }

    async fn send_text(&mut self, text: &str) -> Result<(), End> {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| End::Closed)
    }

    async fn send_error(&mut self, e: &FrameError) -> Result<(), End> {
        self.send_text(&e.to_json()).await
    }

    /// Queues a conversation frame unless the client already has it; `flush` sends what is
    /// queued (one write for a turn's frames instead of one per frame).
    async fn send_frame(&mut self, f: &OutFrame) -> Result<(), End> {
        if f.seq <= self.last_sent {
            return Ok(());
        }
        self.socket
            .feed(Message::Text(f.json.as_ref().into()))
            .await
            .map_err(|_| End::Closed)?;
        self.last_sent = f.seq;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), End> {
        self.socket.flush().await.map_err(|_| End::Closed)
    }

    async fn incoming(&mut self, msg: Option<Result<Message, axum::Error>>) -> Result<(), End> {
        let text = match msg {
            None => return Err(End::Closed),
            Some(Err(e)) => {
                return Err(if is_too_big(&e) {
                    End::Close(
                        CLOSE_TOO_BIG,
                        format!("frame larger than {}", size(self.max_frame_bytes)).into(),
                    )
                } else {
                    End::Closed
                });
            }
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) => {
                return self
                    .send_error(&FrameError::new(
                        None,
                        ErrorCode::BadFrame,
                        "frames are JSON text, not binary",
                    ))
                    .await;
            }
            Some(Ok(Message::Close(_))) => return Err(End::ClosedByClient),
            Some(Ok(_)) => return Ok(()), // ping/pong: handled by the library
        };
        let frame = match protocol::parse(text.as_str()) {
            Ok(f) => f,
            Err(e) => return self.send_error(&e).await,
        };
        match frame {
            ClientFrame::Hello {
                token,
                project,
                resume_after,
            } => self.hello(&token, &project, resume_after).await,
            ClientFrame::Command(cmd) => {
                let id = cmd.id().to_owned();
                let Some(joined) = &self.joined else {
                    return self
                        .send_error(&FrameError::new(
                            Some(id),
                            ErrorCode::Unauthorized,
                            "send hello first",
                        ))
                        .await;
                };
                if !self.bucket.take(Instant::now()) {
                    return self
                        .send_error(&FrameError::new(
                            Some(id),
                            ErrorCode::RateLimited,
                            "too many frames; slow down and retry",
                        ))
                        .await;
                }
                let handle = joined.handle.clone();
                match self.engine.turn(&handle, cmd).await {
                    Ok(TurnReply::Done) => self.drain().await,
                    Ok(TurnReply::Resend(frames)) => {
                        for f in frames {
                            self.send_text(&f.json).await?;
                            self.last_sent = self.last_sent.max(f.seq);
                        }
                        Ok(())
                    }
                    Err(e) => self.send_error(&chat_error(Some(id), e)).await,
                }
            }
        }
    }

    async fn hello(&mut self, token: &str, project: &str, resume_after: i64) -> Result<(), End> {
        if self.joined.is_some() {
            return self
                .send_error(&FrameError::new(
                    None,
                    ErrorCode::BadFrame,
                    "hello was already sent on this connection",
                ))
                .await;
        }
        let joined = async {
            let who = match (token.is_empty(), &self.page_session) {
                (true, Some(session)) => self.engine.authenticate_session(session).await?,
                (true, None) => {
                    return Err(ChatError::Unauthorized(
                        "send the API token in hello (or open the chat from chatpay's page, signed in)"
                            .to_owned(),
                    ));
                }
                (false, _) => self.engine.authenticate(token).await?,
            };
            // Another workspace's project reads as one that does not exist (the protocol's
            // `unauthorized` for both, with the same message).
            let project = self.engine.project_of(&who, project).await.map_err(|_| {
                ChatError::Unauthorized("no such project for this token".to_owned())
            })?;
            let joined = self.engine.join(&project).await?;
            Ok::<_, ChatError>((joined, project, who))
        }
        .await;
        let (joined, project, who) = match joined {
            Ok(j) => j,
            Err(e) => return self.send_error(&chat_error(None, e)).await,
        };
        let welcome = protocol::welcome(
            joined.conversation.as_str(),
            project.id.as_str(),
            joined.mode.as_str(),
            joined.last_seq,
        );
        self.send_text(&welcome).await?;
        self.last_sent = resume_after.clamp(0, joined.last_seq);
        let (conversation, upto) = (joined.conversation.clone(), joined.last_seq);
        self.joined = Some(joined);
        self.principal = Some(who);
        if self.last_sent < upto {
            metrics::counter!("chatpay_resumes_total").increment(1);
        }
        match self.send_stored(&conversation, upto).await {
            Ok(()) => Ok(()),
            Err(Ok(e)) => self.send_error(&chat_error(None, e)).await,
            Err(Err(end)) => Err(end),
        }
    }

    /// Sends the stored frames after `last_sent` up to `upto`, a page at a time (a client far
    /// behind costs one page of memory, not its whole backlog), each page flushed before the
    /// next is read.
    async fn send_stored(
        &mut self,
        conversation: &chatpay_core::domain::ConversationId,
        upto: i64,
    ) -> Result<(), Result<ChatError, End>> {
        while self.last_sent < upto {
            let page_end = upto.min(self.last_sent.saturating_add(CATCH_UP_PAGE));
            let frames = self
                .engine
                .backlog(conversation, self.last_sent, page_end)
                .await
                .map_err(Ok)?;
            if frames.is_empty() {
                break;
            }
            for f in &frames {
                self.send_frame(f).await.map_err(Err)?;
            }
            self.flush().await.map_err(Err)?;
        }
        Ok(())
    }

    /// Sends whatever live frames are already waiting.
    async fn drain(&mut self) -> Result<(), End> {
        loop {
            let Some(joined) = &mut self.joined else {
                return Ok(());
            };
            match joined.frames.try_recv() {
                Ok(f) => self.send_frame(&f).await?,
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                    self.catch_up().await?
                }
                Err(_) => return self.flush().await,
            }
        }
    }

    async fn live(&mut self, frame: Result<OutFrame, RecvError>) -> Result<(), End> {
        match frame {
            Ok(f) => {
                self.send_frame(&f).await?;
                // The rest of the turn's frames are usually already here.
                self.drain().await
            }
            // Fell behind the broadcast: read what was missed from the store.
            Err(RecvError::Lagged(_)) => self.catch_up().await,
            Err(RecvError::Closed) => {
                Err(End::Close(CLOSE_GOING_AWAY, "conversation unloaded".into()))
            }
        }
    }

    async fn catch_up(&mut self) -> Result<(), End> {
        let Some(joined) = &self.joined else {
            return Ok(());
        };
        let conversation = joined.conversation.clone();
        metrics::counter!("chatpay_catch_ups_total").increment(1);
        match self.send_stored(&conversation, i64::MAX).await {
            Ok(()) => Ok(()),
            Err(Ok(e)) => {
                tracing::warn!(error = %e, "catch-up from the store failed");
                Err(End::Close(
                    CLOSE_TRY_AGAIN,
                    "could not catch up; resume".into(),
                ))
            }
            Err(Err(end)) => Err(end),
        }
    }
}

/// Waits until a scoped token expires (forever for anything else: a session slides).
async fn sleep_until_expiry(who: Option<&Principal>) {
    match who {
        Some(p) if p.kind == TokenKind::Scoped => {
            if let Some(at) = p.expires_at {
                let left = (at - chatpay_core::domain::now_millis()).max(0);
                tokio::time::sleep(std::time::Duration::from_millis(left as u64)).await;
                return;
            }
            std::future::pending().await
        }
        _ => std::future::pending().await,
    }
}

async fn recv_live(joined: &mut Option<Joined>) -> Result<OutFrame, RecvError> {
    match joined {
        Some(j) => j.frames.recv().await,
        None => std::future::pending().await,
    }
}

fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(t, tokio_tungstenite::tungstenite::Error::Capacity(_));
        }
        source = s.source();
    }
    false
}

fn chat_error(reply_to: Option<String>, e: ChatError) -> FrameError {
    if let ChatError::Internal(inner) = &e {
        tracing::error!(error = ?inner, "turn failed");
    }
    let mut f = FrameError::new(reply_to, e.code(), e.public_message());
    if let ChatError::InvalidValues(fields) = e {
        f.fields = fields;
    }
    f
}

/// A size as people read it: `64 KiB`, `1 MiB`, or bytes when it is not a whole number of KiB.
fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_are_named_as_configured() {
        assert_eq!(super::size(64 * 1024), "64 KiB");
        assert_eq!(super::size(2 * 1024 * 1024), "2 MiB");
        assert_eq!(super::size(1536 * 1024), "1536 KiB");
        assert_eq!(super::size(1000), "1000 bytes");
    }
}
