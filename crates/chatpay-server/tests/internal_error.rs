//! When storage fails mid-conversation, the client gets an `internal` error frame (no details),
//! the connection stays open, and nothing half-done is shown.

use std::time::Duration;

use chatpay_server::config::Config;
use chatpay_testkit::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_tungstenite::tungstenite::Message;

async fn next(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_is_an_internal_error_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let url = format!("sqlite://{}", path.display());
    let store = chatpay_store::connect(&url).await.unwrap();
    let token = chatpay_server::auth::create_token(&*store, "t")
        .await
        .unwrap();
    drop(store);
    let mut config = Config {
        database_url: url.clone(),
        ..Config::default()
    };
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.stripe.secret_key = Some(chatpay_server::config::Secret::new("sk_test_unused"));
    config.stripe.api_base = Some("http://127.0.0.1:9/".into());
    let server = tokio::task::spawn_blocking(move || TestServer::start(config))
        .await
        .unwrap()
        .unwrap();

    let http = chatpay_http_client::HttpClient::default();
    let res = http
        .post_json(
            &format!("{}/v1/projects", server.url()),
            &[("authorization", &format!("Bearer {token}"))],
            &json!({ "name": "p", "backend": true }),
        )
        .await
        .unwrap();
    let project = res.json().unwrap()["id"].as_str().unwrap().to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(server.ws_url(), None, true)
        .await
        .unwrap();
    let hello = json!({ "type": "hello", "token": token, "project": project });
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "welcome");
    ws.send(Message::Text(
        json!({ "type": "say", "id": "a", "text": "hi" })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let said = next(&mut ws).await;
    assert_eq!(
        (said["type"].as_str(), said["seq"].as_i64()),
        (Some("said"), Some(1))
    );
    assert_eq!(next(&mut ws).await["seq"], 2);
    assert_eq!(next(&mut ws).await["seq"], 3);

    // Break the database under the server.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("DROP TABLE frames")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    ws.send(Message::Text(
        json!({ "type": "say", "id": "b", "text": "hi" })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let err = next(&mut ws).await;
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["code"], "internal");
    assert_eq!(err["reply_to"], "b");
    assert!(
        !err["message"].as_str().unwrap().contains("frames"),
        "no internals leak: {err}"
    );

    // Still open, still answering.
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next(&mut ws).await["code"], "bad_frame");
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
}
