//! The sandbox's small, self-contained HTML pages (no external assets).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f6f8fa;color:#1a1f36}
header{background:#635bff;color:#fff;padding:14px 24px;font-weight:600}
header small{opacity:.8;font-weight:400;margin-left:8px}
main{max-width:560px;margin:24px auto;padding:0 16px}
.card{background:#fff;border:1px solid #e3e8ee;border-radius:8px;padding:20px 24px;margin-bottom:16px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:15px;margin:0 0 12px;color:#3c4257}
p.muted{color:#697386;margin:0 0 12px}
label{display:block;font-size:13px;color:#3c4257;margin:10px 0 4px}
input[type=text],input[type=email],input[type=date],input[type=url],select{width:100%;padding:9px 11px;border:1px solid #cfd7df;border-radius:6px;font:inherit;background:#fff;box-shadow:0 1px 1px rgba(0,0,0,.03)}
input:focus,select:focus{outline:none;border-color:#635bff;box-shadow:0 0 0 3px rgba(99,91,255,.25)}
button.primary:hover{background:#5146e8}
.card{box-shadow:0 1px 3px rgba(16,24,40,.06)}
.row{display:flex;gap:12px}.row>div{flex:1}
.choice{display:flex;gap:8px;align-items:flex-start;margin:8px 0}
.choice input{margin-top:4px}
.choice span small{display:block;color:#697386}
button{font:inherit;font-weight:600;border:0;border-radius:6px;padding:10px 16px;cursor:pointer}
button.primary{background:#635bff;color:#fff}
button.secondary{background:#e3e8ee;color:#1a1f36}
.errors{background:#fff1f0;border:1px solid #ffccc7;color:#a8071a;border-radius:6px;padding:10px 14px;margin-bottom:16px}
.test{display:inline-block;background:#ffde92;color:#5c3b00;border-radius:4px;padding:0 6px;font-size:12px;font-weight:600}
"#;

/// A full page.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\
         <header>Stripe sandbox<small>chatpay</small></header><main>{body}</main></body></html>",
        title = escape(title),
    )
}

/// A page with a status code.
pub(crate) fn respond(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(page(title, body))).into_response()
}

/// A short message page (errors, dead links).
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    respond(
        status,
        title,
        &format!(
            "<div class=\"card\"><h1>{}</h1><p class=\"muted\">{}</p></div>",
            escape(title),
            escape(text)
        ),
    )
}

/// A redirect with the given status (302 or 303) to `location`.
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (status, [(header::LOCATION, v)]).into_response(),
        Err(_) => message(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The redirect address is not a valid URL.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
