//! The web chat view: static files embedded in the binary (`crates/chatpay-server/web/`), plain
//! HTML, CSS and JavaScript modules with no build step. The page speaks only the public
//! protocol (`/v1/chat`) and HTTP API, like any other client.
//!
//! Caching: the files are served under `/assets/{version}/…`, where the version is a hash of
//! all of them, so a new build changes every URL: assets are cached for a year (`immutable`);
//! `/` itself is `no-cache`, so a browser always learns the current version. One version for
//! the whole set (not one per file) keeps the modules' relative `import`s working.
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles only from this
//! origin (no inline script or style, no `eval`), connections only to this origin (the
//! WebSocket included), no frames, no plugins.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ErrorBody;
use super::{ApiError, ApiPath};

/// The files: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/dom.js"),
    ),
    (
        "socket.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/socket.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/chat.js"),
    ),
    (
        "cards.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/cards.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/views.js"),
    ),
    (
        "billing.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/billing.js"),
    ),
    (
        "customers.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/customers.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/chart.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../../web/icon.svg"),
    ),
];

const INDEX: &str = include_str!("../../web/index.html");

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The hash of every file, first 12 hex digits.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (name, _, bytes) in FILES {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.update(INDEX.as_bytes());
    hex::encode(h.finalize())[..12].to_owned()
});

static INDEX_HTML: LazyLock<String> =
    LazyLock::new(|| INDEX.replace("{{version}}", VERSION.as_str()));

/// The current version of the assets (part of their URLs).
pub fn version() -> &'static str {
    VERSION.as_str()
}

fn secure(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// `GET /`: the page. Always revalidated, so it names the current assets.
#[utoipa::path(get, operation_id = "web_index", path = "/", tag = "pages",
    responses((status = 200, description = "The web chat view", content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    secure(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            INDEX_HTML.as_str(),
        )
            .into_response(),
    )
}

/// `GET /favicon.ico`: browsers ask for it on every page of this origin (Stripe's return pages
/// too); the icon is an SVG, which they accept whatever the name.
#[utoipa::path(get, operation_id = "web_favicon", path = "/favicon.ico", tag = "pages",
    responses((status = 200, description = "The icon", content_type = "image/svg+xml", body = String)))]
pub async fn favicon() -> Response {
    let icon = FILES
        .iter()
        .find(|(name, _, _)| *name == "icon.svg")
        .map(|(_, _, bytes)| *bytes)
        .unwrap_or_default();
    secure(
        (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            icon,
        )
            .into_response(),
    )
}

/// `GET /assets/{version}/{file}`: a file of the current version, cached for a year. An old
/// version's URL is 404 (a page that old reloads `/` and gets the new names).
#[utoipa::path(get, operation_id = "web_asset", path = "/assets/{version}/{file}", tag = "pages",
    params(
        ("version" = String, Path, description = "The assets' version, named by `/`"),
        ("file" = String, Path, description = "`app.js`, `app.css`, …"),
    ),
    responses(
        (status = 200, description = "The file", content((String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such file in this version", body = ErrorBody),
    ))]
pub async fn asset(ApiPath((version, file)): ApiPath<(String, String)>) -> Response {
    let found = FILES.iter().find(|(name, _, _)| *name == file);
    match found {
        Some((_, content_type, bytes)) if version == *VERSION => secure(
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, *content_type),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                ],
                *bytes,
            )
                .into_response(),
        ),
        _ => ApiError::NotFound(format!("no asset {file} in version {version}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_current_assets_and_no_inline_script() {
        let html = INDEX_HTML.as_str();
        assert!(html.contains(&format!("/assets/{}/app.js", version())));
        assert!(!html.contains("{{version}}"));
        // CSP forbids inline script and style: the page must not rely on them.
        assert!(!html.contains("<script>"), "inline script in index.html");
        assert!(!html.contains("<style"), "inline style in index.html");
        assert!(
            !html.contains("style=\""),
            "inline style attribute in index.html"
        );
    }

    #[test]
    fn every_module_import_is_a_served_file() {
        for (name, _, bytes) in FILES {
            let text = std::str::from_utf8(bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .split(['\'', '"'])
                    .nth(1)
                    .and_then(|t| t.strip_prefix("./"))
                    .unwrap_or_else(|| panic!("{name}: import without a ./ path: {line}"));
                assert!(
                    FILES.iter().any(|(n, _, _)| *n == target),
                    "{name} imports {target}, which is not embedded"
                );
            }
        }
    }
}
