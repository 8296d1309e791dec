//! The HTTP API's edges over a real socket: the OpenAPI document (every route of the real
//! router is in it, and it is a well-formed OpenAPI 3.1 document whose references resolve),
//! and every refusal of what can't be read (too large, not JSON, not an object, a bad query or
//! path, not a WebSocket upgrade) is the one error body with its status, changing nothing.
//! Bodies that reach the selling paths (arrays as refunds and carts, `?limit=abc`) are
//! transcripts: `fixtures/transcripts/093_sell_bodies_not_objects.toml`.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::{Value, json};

use chatpay_http_client::{HttpClient, Response};
use chatpay_server::config::Config;
use chatpay_testkit::TestServer;

struct Fixture {
    server: TestServer,
    http: HttpClient,
    token: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chatpay.db").display());
    let store = chatpay_store::connect(&url).await.unwrap();
    let token = chatpay_server::auth::create_token(&*store, "t")
        .await
        .unwrap();
    drop(store);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url,
        ..Config::default()
    };
    let server = tokio::task::spawn_blocking(move || TestServer::start(config))
        .await
        .unwrap()
        .unwrap();
    Fixture {
        server,
        http: HttpClient::new(Duration::from_secs(30)),
        token,
        _dir: dir,
    }
}

impl Fixture {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Response {
        let auth = format!("Bearer {}", self.token);
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.http
            .send(method, &format!("{}{path}", self.server.url()), &all, body)
            .await
            .unwrap()
    }

    async fn json(&self, method: &str, path: &str, body: &str) -> Response {
        self.send(
            method,
            path,
            &[("content-type", "application/json")],
            Bytes::from(body.to_owned()),
        )
        .await
    }

    async fn projects(&self) -> Vec<Value> {
        let res = self.send("GET", "/v1/projects", &[], Bytes::new()).await;
        assert_eq!(res.status, 200, "{}", res.text());
        res.json().unwrap()["data"].as_array().unwrap().clone()
    }
}

/// The answer is the one error body with this status and code.
fn refused(res: &Response, status: u16, code: &str) -> String {
    assert_eq!(res.status, status, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json().expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().expect("a message").to_owned();
    assert!(!message.is_empty());
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["code", "message"]), "{body}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_of_the_router() {
    let f = start().await;
    let res = f.send("GET", "/openapi.json", &[], Bytes::new()).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let doc = res.json().unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = chatpay_server::http::route_table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    // And each documented operation is served (not the 404 fallback).
    for (method, path) in &documented {
        if method == "GET" && !path.contains('{') && path != "/v1/chat" {
            let res = f.send(method, path, &[], Bytes::new()).await;
            assert_ne!(res.status, 404, "{method} {path}: {}", res.text());
            assert_ne!(res.status, 405, "{method} {path}: {}", res.text());
        }
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|x| refs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_well_formed_openapi_3_1() {
    let f = start().await;
    let doc = f
        .send("GET", "/openapi.json", &[], Bytes::new())
        .await
        .json()
        .unwrap();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in ["api_token", "publishable_key", "stripe_signature"] {
        assert!(schemes.contains_key(name), "{name}");
    }
    assert_eq!(schemes["api_token"]["scheme"], "bearer");

    // Every reference resolves to a component.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a reference outside the schemas: {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }

    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            let at = format!("{} {path}", method.to_uppercase());
            assert!(
                operation_ids.insert(op["operationId"].as_str().unwrap().to_owned()),
                "{at}: operationId twice"
            );
            // Every path parameter is declared, required, and nothing else is in the path.
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let declared: BTreeSet<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{at}: {p}");
                    p["name"].as_str().unwrap()
                })
                .collect();
            assert_eq!(declared, templated, "{at}");
            for p in &params {
                assert!(
                    ["path", "query", "header", "cookie"].contains(&p["in"].as_str().unwrap()),
                    "{at}: {p}"
                );
                assert!(p.get("schema").is_some(), "{at}: {p}");
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{at}: no responses");
            for (status, response) in responses {
                assert!(
                    status == "default"
                        || (status.len() == 3 && status.chars().all(|c| c.is_ascii_digit())),
                    "{at}: {status}"
                );
                assert!(response["description"].is_string(), "{at} {status}");
            }
            // A call that needs a token says so, and names only schemes that exist.
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{at}: {name}");
                }
            }
            if path.starts_with("/v1/projects") && method != "options" {
                assert!(op["security"].is_array(), "{at}: no security");
                for status in ["400", "401", "404", "500"] {
                    let schema = &responses[status]["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{at} {status}"
                    );
                }
            }
            if op.get("requestBody").is_some()
                && op["requestBody"]["content"]
                    .get("application/json")
                    .is_some()
                && path != "/v1/webhooks/stripe"
            {
                for status in ["413", "415"] {
                    assert!(responses.contains_key(status), "{at}: no {status}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_large_is_413_and_creates_nothing() {
    let f = start().await;
    // 8 MB of a valid-looking object.
    let mut big = String::from("{\"name\":\"");
    big.push_str(&"x".repeat(8 * 1024 * 1024));
    big.push_str("\",\"backend\":true}");
    let res = f.json("POST", "/v1/projects", &big).await;
    let message = refused(&res, 413, "payload_too_large");
    assert!(message.contains("2 MiB"), "{message}");
    assert!(f.projects().await.is_empty());
    // The Stripe webhook endpoint reads raw bytes, under the same limit.
    let res = f
        .send(
            "POST",
            "/v1/webhooks/stripe",
            &[("stripe-signature", "t=1,v1=00")],
            Bytes::from(big),
        )
        .await;
    refused(&res, 413, "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_a_json_object_is_refused_before_anything_happens() {
    let f = start().await;
    // serde would read `["Shop", true]` as {"name": "Shop", "backend": true}.
    for body in [r#"["Shop", true]"#, r#""Shop""#, "1", "null", "true"] {
        let res = f.json("POST", "/v1/projects", body).await;
        let message = refused(&res, 400, "bad_request");
        assert!(
            message.contains("must be a JSON object"),
            "{body}: {message}"
        );
    }
    for (body, says) in [
        ("{\"name\": ", "not valid JSON"),
        ("{\"name\": \"Shop\", \"backend\": \"yes\"}", "does not fit"),
        (
            "{\"name\": \"Shop\", \"backend\": true, \"extra\": 1}",
            "unknown field",
        ),
        ("", "there is none"),
    ] {
        let res = f.json("POST", "/v1/projects", body).await;
        let message = refused(&res, 400, "bad_request");
        assert!(message.contains(says), "{body}: {message}");
    }
    // Not JSON at all: 415, whatever the bytes.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let res = f
            .send(
                "POST",
                "/v1/projects",
                &headers,
                Bytes::from_static(br#"{"name":"Shop","backend":true}"#),
            )
            .await;
        refused(&res, 415, "unsupported_media_type");
    }
    assert!(f.projects().await.is_empty());
    let res = f
        .json("POST", "/v1/projects", r#"{"name":"Shop","backend":true}"#)
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    assert_eq!(f.projects().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_path_and_upgrade_requests_answer_the_error_body() {
    let f = start().await;
    let res = f
        .json("POST", "/v1/projects", r#"{"name":"Shop","backend":true}"#)
        .await;
    let project = res.json().unwrap()["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/v1/projects/{project}/orders?limit=abc"),
        format!("/v1/projects/{project}/orders?starting_after=x"),
        format!("/v1/projects/{project}/orders?status=lost"),
        format!("/v1/projects/{project}/orders?limit=0"),
        format!("/v1/projects/{project}/subscriptions?limit=abc"),
        format!("/v1/projects/{project}/subscriptions?status=lost"),
        format!("/v1/projects/{project}/payouts?limit=abc"),
        format!("/v1/projects/{project}/integrations/stripe?mode=maybe"),
        format!("/v1/projects/{project}/orders?unknown=1"),
        "/v1/projects/%FF".to_owned(),
    ] {
        let res = f.send("GET", &path, &[], Bytes::new()).await;
        refused(&res, 400, "bad_request");
    }
    // Not a WebSocket upgrade.
    let res = f.send("GET", "/v1/chat", &[], Bytes::new()).await;
    assert!(res.status == 400 || res.status == 426, "{}", res.text());
    assert_eq!(res.json().unwrap()["code"], "bad_request");
    // The page's own path and method refusals keep the shape too.
    refused(
        &f.send("DELETE", "/v1/projects", &[], Bytes::new()).await,
        405,
        "method_not_allowed",
    );
    refused(
        &f.send("GET", "/v1/nothing", &[], Bytes::new()).await,
        404,
        "not_found",
    );
    // The health answers are typed JSON too.
    let health = f.send("GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(health.json().unwrap(), json!({ "status": "ok" }));
    let ready = f.send("GET", "/readyz", &[], Bytes::new()).await;
    assert_eq!(
        ready.json().unwrap(),
        json!({ "status": "ready", "database": "sqlite" })
    );
}
