//! The small HTML pages chatpay answers browsers with (Stripe's return URLs, buy links, the
//! thank-you page after a checkout): one escape, one look.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Text made safe to put inside HTML elements and attribute values.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page with a title and a body of already-escaped HTML.
pub(super) fn page_html(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;background:#f6f8fa;color:#1a1f36;margin:0}}\
         main{{max-width:32rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:12px;\
         box-shadow:0 2px 8px rgba(0,0,0,.08)}}h1{{font-size:1.4rem;margin-top:0}}</style></head>\
         <body><main><h1>{t}</h1>{body_html}</main></body></html>",
        t = escape(title),
    );
    (status, Html(html)).into_response()
}

/// A page with a title and one paragraph of plain text.
pub(super) fn page(status: StatusCode, title: &str, text: &str) -> Response {
    page_html(status, title, &format!("<p>{}</p>", escape(text)))
}
