//! The WebSocket's edges, over a real socket: the close handshake is completed (RFC 6455
//! §5.5.1: a client's Close is answered with a Close).

use std::time::Duration;

use chatpay_server::config::Config;
use chatpay_testkit::TestServer;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut config = Config {
        database_url: url,
        ..Config::default()
    };
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.stripe.secret_key = Some(chatpay_server::config::Secret::new("sk_test_unused"));
    config.stripe.api_base = Some("http://127.0.0.1:9/".into());
    let server = tokio::task::spawn_blocking(move || TestServer::start(config))
        .await
        .unwrap()
        .unwrap();
    (server, dir)
}

/// Everything the server sends until the connection ends: its frames, then how it ended
/// (`Ok` for a clean end of stream, `Err` with the error otherwise).
async fn rest(ws: &mut Ws) -> (Vec<Message>, Result<(), String>) {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Err(_) => return (got, Err("no end within 20 s".to_owned())),
            Ok(None) => return (got, Ok(())),
            Ok(Some(Ok(m))) => got.push(m),
            Ok(Some(Err(e))) => return (got, Err(e.to_string())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_close_is_answered_with_a_close() {
    let (server, _dir) = server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let (got, end) = rest(&mut ws).await;
    let close = got.iter().find_map(|m| match m {
        Message::Close(f) => Some(f.clone()),
        _ => None,
    });
    assert_eq!(
        close.flatten().map(|f| u16::from(f.code)),
        Some(1000),
        "the server answers a Close with a Close: {got:?} {end:?}"
    );
    assert_eq!(end, Ok(()), "then the connection ends cleanly");
}
