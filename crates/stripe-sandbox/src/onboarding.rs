//! The hosted onboarding page behind account links: `GET /onboarding/{link}` shows a form,
//! `POST` applies the chosen outcome, emits `account.updated` and redirects (303) to the
//! link's `return_url`. A used or expired link redirects (302) to its `refresh_url`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::accounts;
use super::html::{self, escape};
use super::ids;
use super::model::{Account, Dob, OnboardingDetails, REJECT_REASONS, VerificationOutcome};
use super::state::{App, LinkState};

/// Where following a link leads (test control `POST /__sandbox/account_links/follow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowResult {
    /// The URL the browser would be sent to: `return_url` after a submission, `refresh_url`
    /// for a used or expired link.
    pub redirect_to: String,
    /// True if the outcome was applied.
    pub completed: bool,
}

/// The link token of `http://host/onboarding/{token}` (or a bare token).
pub(crate) fn token_of(url_or_token: &str) -> &str {
    url_or_token
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(url_or_token)
}

enum Visit {
    Missing,
    Refresh(String),
    Form {
        account: Box<Account>,
        session: String,
        kind: String,
    },
}

/// Opens a link: the first visit gets a form bound to a session, later ones are sent away.
fn visit(app: &App, token: &str) -> Visit {
    let now = app.now();
    let mut st = app.lock();
    let Some(link) = st.links.get_mut(token) else {
        return Visit::Missing;
    };
    if link.state != LinkState::Fresh || now >= link.expires_at {
        return Visit::Refresh(link.refresh_url.clone());
    }
    let session = ids::random(24);
    link.state = LinkState::Visited {
        session: session.clone(),
    };
    let (mode, account_id, kind) = (link.mode, link.account.clone(), link.kind.clone());
    let account = st.mode(mode).accounts.get(&account_id).cloned();
    drop(st);
    app.mark_changed();
    match account {
        Some(account) => Visit::Form {
            account: Box::new(account),
            session,
            kind,
        },
        None => Visit::Missing,
    }
}

pub(crate) async fn show(State(app): State<App>, Path(token): Path<String>) -> Response {
    match visit(&app, &token) {
        Visit::Missing => missing(),
        Visit::Refresh(url) => html::redirect(StatusCode::FOUND, &url),
        Visit::Form {
            account,
            session,
            kind,
        } => html::respond(
            StatusCode::OK,
            "Set up payouts",
            &form_page(
                &account,
                &token,
                &session,
                &kind,
                &Fields::prefill(&account),
                &[],
            ),
        ),
    }
}

fn missing() -> Response {
    html::message(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "Ask the platform for a new onboarding link.",
    )
}

/// The form as submitted (strings, so a failed submission can be shown again).
#[derive(Debug, Clone, Default)]
struct Fields {
    first_name: String,
    last_name: String,
    dob: String,
    business_name: String,
    url: String,
    product_description: String,
    mcc: String,
    routing_number: String,
    account_number: String,
    outcome: String,
    requirement: String,
    past_due: bool,
    reject_reason: String,
    session: String,
}

impl Fields {
    fn prefill(a: &Account) -> Fields {
        let person = a.individual.as_ref();
        Fields {
            first_name: person
                .and_then(|p| p.first_name.clone())
                .unwrap_or_default(),
            last_name: person.and_then(|p| p.last_name.clone()).unwrap_or_default(),
            dob: person
                .and_then(|p| p.dob)
                .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                .unwrap_or_default(),
            business_name: a
                .profile
                .name
                .clone()
                .or_else(|| a.company_name.clone())
                .unwrap_or_default(),
            url: a.profile.url.clone().unwrap_or_default(),
            product_description: a.profile.product_description.clone().unwrap_or_default(),
            mcc: a.profile.mcc.clone().unwrap_or_else(|| "5734".into()),
            routing_number: "110000000".into(),
            account_number: "000123456789".into(),
            outcome: "verified".into(),
            requirement: "individual.verification.document".into(),
            past_due: false,
            reject_reason: "rejected.fraud".into(),
            session: String::new(),
        }
    }

    fn parse(body: &[u8]) -> Fields {
        let mut f = Fields::default();
        for (k, v) in form_urlencoded::parse(body) {
            let v = v.trim().to_owned();
            match k.as_ref() {
                "first_name" => f.first_name = v,
                "last_name" => f.last_name = v,
                "dob" => f.dob = v,
                "business_name" => f.business_name = v,
                "url" => f.url = v,
                "product_description" => f.product_description = v,
                "mcc" => f.mcc = v,
                "routing_number" => f.routing_number = v,
                "account_number" => f.account_number = v,
                "outcome" => f.outcome = v,
                "requirement" => f.requirement = v,
                "past_due" => f.past_due = matches!(v.as_str(), "on" | "true" | "1"),
                "reject_reason" => f.reject_reason = v,
                "session" => f.session = v,
                _ => {}
            }
        }
        f
    }

    /// Validates into what the account receives, or the messages to show.
    fn validate(
        &self,
        now: i64,
        ip: String,
        user_agent: Option<String>,
    ) -> Result<(OnboardingDetails, VerificationOutcome), Vec<String>> {
        let mut errors = Vec::new();
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        if self.first_name.is_empty() || self.last_name.is_empty() {
            errors.push("Enter your first and last name.".to_owned());
        }
        let dob = Dob::parse(&self.dob);
        if dob.is_none() {
            errors.push("Enter your date of birth.".to_owned());
        }
        let url = opt(&self.url);
        if let Some(u) = &url
            && super::rules::url("url", u).is_err()
        {
            errors.push("The website must start with http:// or https://.".to_owned());
        }
        if url.is_none() && self.product_description.is_empty() {
            errors.push("Enter a website or describe what you sell.".to_owned());
        }
        let mcc = opt(&self.mcc);
        if mcc
            .as_deref()
            .is_some_and(|m| m.len() != 4 || !m.bytes().all(|b| b.is_ascii_digit()))
        {
            errors.push("Choose an industry.".to_owned());
        }
        if self.routing_number.len() != 9
            || !self.routing_number.bytes().all(|b| b.is_ascii_digit())
        {
            errors.push("The routing number has 9 digits (test: 110000000).".to_owned());
        }
        let acct = &self.account_number;
        if !(4..=17).contains(&acct.len()) || !acct.bytes().all(|b| b.is_ascii_digit()) {
            errors.push("The account number has 4 to 17 digits (test: 000123456789).".to_owned());
        }
        let outcome = match self.outcome.as_str() {
            "verified" => Some(VerificationOutcome::Verified),
            "pending" => Some(VerificationOutcome::Pending),
            "more_info" => Some(VerificationOutcome::MoreInfo {
                requirement: if self.requirement.is_empty() {
                    "individual.verification.document".into()
                } else {
                    self.requirement.clone()
                },
                deadline: Some(now + 14 * 24 * 3600),
                past_due: self.past_due,
                error_code: None,
            }),
            "rejected" => Some(VerificationOutcome::Rejected {
                reason: self.reject_reason.clone(),
            }),
            _ => None,
        };
        let outcome = match outcome.map(|o| o.validate().map(|()| o)) {
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                errors.push(format!("Outcome: {e}."));
                None
            }
            None => {
                errors.push("Choose a verification outcome.".to_owned());
                None
            }
        };
        match (dob, outcome) {
            (Some(dob), Some(outcome)) if errors.is_empty() => Ok((
                OnboardingDetails {
                    first_name: self.first_name.clone(),
                    last_name: self.last_name.clone(),
                    dob,
                    business_name: opt(&self.business_name),
                    url,
                    product_description: opt(&self.product_description),
                    mcc,
                    routing_number: self.routing_number.clone(),
                    account_number: self.account_number.clone(),
                    ip,
                    user_agent,
                },
                outcome,
            )),
            _ => Err(errors),
        }
    }
}

const MCCS: &[(&str, &str)] = &[
    ("5734", "Software"),
    ("7299", "Personal and professional services"),
    ("8299", "Education and courses"),
    ("5812", "Restaurants and food"),
    ("5999", "Retail"),
    ("7997", "Clubs, fitness and recreation"),
    ("8398", "Charities and non-profits"),
];

const REQUIREMENTS: &[&str] = &[
    "individual.verification.document",
    "individual.id_number",
    "business_profile.url",
    "external_account",
    "company.tax_id",
];

fn form_page(
    a: &Account,
    token: &str,
    session: &str,
    kind: &str,
    f: &Fields,
    errors: &[String],
) -> String {
    let input = |name: &str, label: &str, value: &str, ty: &str| {
        format!(
            "<label for=\"{name}\">{label}</label><input type=\"{ty}\" id=\"{name}\" \
             name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let selected = |a: &str, b: &str| if a == b { " selected" } else { "" };
    let checked = |a: &str, b: &str| if a == b { " checked" } else { "" };
    let mccs: String = MCCS
        .iter()
        .map(|(code, name)| {
            format!(
                "<option value=\"{code}\"{}>{name}</option>",
                selected(code, &f.mcc)
            )
        })
        .collect();
    let requirements: String = REQUIREMENTS
        .iter()
        .map(|r| format!("<option{}>{r}</option>", selected(r, &f.requirement)))
        .collect();
    let reasons: String = REJECT_REASONS
        .iter()
        .map(|r| format!("<option{}>{r}</option>", selected(r, &f.reject_reason)))
        .collect();
    let errors = if errors.is_empty() {
        String::new()
    } else {
        format!(
            "<div class=\"errors\">{}</div>",
            errors
                .iter()
                .map(|e| escape(e))
                .collect::<Vec<_>>()
                .join("<br>")
        )
    };
    let business_label = if a.is_company() {
        "Legal business name"
    } else {
        "Business name (optional)"
    };
    let title = if kind == "account_update" {
        "Update your account"
    } else {
        "Set up payments and payouts"
    };
    format!(
        r#"<div class="card"><h1>{title}</h1><p class="muted">For <b>{account}</b> <span class="test">TEST DATA</span> Nothing here is checked for real.</p><p><a href="/onboarding/{token}/exit">Return to the platform without finishing</a></p></div>
{errors}
<form method="post">
<input type="hidden" name="session" value="{session}">
<div class="card"><h2>Your identity</h2>
<div class="row"><div>{first}</div><div>{last}</div></div>
{dob}
</div>
<div class="card"><h2>Your business</h2>
{bname}{url}{desc}
<label for="mcc">Industry</label><select id="mcc" name="mcc">{mccs}</select>
</div>
<div class="card"><h2>Payout bank account</h2>
<p class="muted">Test numbers are filled in: routing 110000000, account 000123456789.</p>
<div class="row"><div>{routing}</div><div>{account_no}</div></div>
</div>
<div class="card"><h2>Verification outcome <span class="test">SANDBOX</span></h2>
<label class="choice"><input type="radio" name="outcome" value="verified"{c_verified}><span>Verified<small>Charges and payouts enabled.</small></span></label>
<label class="choice"><input type="radio" name="outcome" value="pending"{c_pending}><span>Pending verification<small>Details submitted; Stripe is still checking them.</small></span></label>
<label class="choice"><input type="radio" name="outcome" value="more_info"{c_more}><span>More information needed<small>Charges continue, payouts paused until this is provided:</small></span></label>
<select name="requirement" aria-label="Requirement">{requirements}</select>
<label class="choice"><input type="checkbox" name="past_due"{c_past_due}><span>Deadline already passed<small>Charges stop too (requirements.past_due).</small></span></label>
<label class="choice"><input type="radio" name="outcome" value="rejected"{c_rejected}><span>Rejected<small>The account cannot accept payments.</small></span></label>
<select name="reject_reason" aria-label="Rejection reason">{reasons}</select>
</div>
<button class="primary" type="submit">Agree and submit</button>
<p class="muted">By submitting you accept the (sandbox) Stripe Connected Account Agreement.</p>
</form>"#,
        account = escape(&a.public_name()),
        session = escape(session),
        first = input("first_name", "First name", &f.first_name, "text"),
        last = input("last_name", "Last name", &f.last_name, "text"),
        dob = input("dob", "Date of birth", &f.dob, "date"),
        bname = input("business_name", business_label, &f.business_name, "text"),
        url = input("url", "Website", &f.url, "url"),
        desc = input(
            "product_description",
            "What you sell (if you have no website)",
            &f.product_description,
            "text"
        ),
        routing = input(
            "routing_number",
            "Routing number",
            &f.routing_number,
            "text"
        ),
        account_no = input(
            "account_number",
            "Account number",
            &f.account_number,
            "text"
        ),
        c_verified = checked(&f.outcome, "verified"),
        c_pending = checked(&f.outcome, "pending"),
        c_more = checked(&f.outcome, "more_info"),
        c_rejected = checked(&f.outcome, "rejected"),
        c_past_due = if f.past_due { " checked" } else { "" },
    )
}

enum Submit {
    Missing,
    Refresh(String),
    Done(String),
    Invalid {
        account: Box<Account>,
        kind: String,
        session: String,
        errors: Vec<String>,
    },
}

/// Applies a submission to the link's account. `session` is the one the form carried; a link
/// never opened (a plain HTTP client posting directly) needs none.
fn submit(
    app: &App,
    token: &str,
    session: &str,
    result: impl FnOnce(i64) -> Result<(OnboardingDetails, VerificationOutcome), Vec<String>>,
) -> Submit {
    let now = app.now();
    let link = {
        let st = app.lock();
        match st.links.get(token) {
            None => return Submit::Missing,
            Some(link) => link.clone(),
        }
    };
    let usable = match &link.state {
        LinkState::Fresh => now < link.expires_at,
        LinkState::Visited { session: s } => s == session,
        LinkState::Completed => false,
    };
    if !usable {
        return Submit::Refresh(link.refresh_url);
    }
    match result(now) {
        Err(errors) => {
            let account = app
                .lock()
                .mode(link.mode)
                .accounts
                .get(&link.account)
                .cloned();
            let session = match &link.state {
                LinkState::Visited { session } => session.clone(),
                _ => String::new(),
            };
            match account {
                Some(account) => Submit::Invalid {
                    account: Box::new(account),
                    kind: link.kind,
                    session,
                    errors,
                },
                None => Submit::Missing,
            }
        }
        Ok((details, outcome)) => {
            let applied = app.transact(link.mode, None, |tx| {
                // Checked again under the lock: two submissions race for one link.
                let still_usable = tx
                    .st
                    .links
                    .get(token)
                    .is_some_and(|l| l.state != LinkState::Completed);
                if !still_usable {
                    return false;
                }
                if accounts::set_outcome(tx, &link.account, outcome, Some(details)).is_none() {
                    return false;
                }
                if let Some(l) = tx.st.links.get_mut(token) {
                    l.state = LinkState::Completed;
                }
                true
            });
            if applied {
                Submit::Done(link.return_url)
            } else {
                Submit::Refresh(link.refresh_url)
            }
        }
    }
}

pub(crate) async fn post(
    State(app): State<App>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let outcome = submit(&app, &token, &fields.session, |now| {
        fields.validate(now, "127.0.0.1".into(), user_agent)
    });
    match outcome {
        Submit::Missing => missing(),
        Submit::Refresh(url) => html::redirect(StatusCode::FOUND, &url),
        Submit::Done(url) => html::redirect(StatusCode::SEE_OTHER, &url),
        Submit::Invalid {
            account,
            kind,
            session,
            errors,
        } => html::respond(
            StatusCode::BAD_REQUEST,
            "Set up payouts",
            &form_page(&account, &token, &session, &kind, &fields, &errors),
        ),
    }
}

/// Follows a link without a browser: a fresh link is opened and submitted with Stripe's test
/// identity and bank account and the given outcome; a used or expired one leads to its
/// `refresh_url`. `None` if no such link exists.
/// The person leaves the page without finishing ("Return to the platform"): the link is spent
/// and the browser goes to its `return_url` (or, for an expired link, its `refresh_url`).
/// `None` if no such link exists.
pub(crate) fn leave(app: &App, url_or_token: &str) -> Option<String> {
    let token = token_of(url_or_token);
    let now = app.now();
    let mut st = app.lock();
    let link = st.links.get_mut(token)?;
    if link.state == LinkState::Fresh && now >= link.expires_at {
        return Some(link.refresh_url.clone());
    }
    if link.state == LinkState::Fresh {
        link.state = LinkState::Visited {
            session: ids::random(24),
        };
    }
    let back = link.return_url.clone();
    drop(st);
    app.mark_changed();
    Some(back)
}

pub(crate) async fn exit(State(app): State<App>, Path(token): Path<String>) -> Response {
    match leave(&app, &token) {
        Some(url) => html::redirect(StatusCode::FOUND, &url),
        None => missing(),
    }
}

pub(crate) fn follow(
    app: &App,
    url_or_token: &str,
    outcome: VerificationOutcome,
) -> Option<FollowResult> {
    let token = token_of(url_or_token);
    match visit(app, token) {
        Visit::Missing => None,
        Visit::Refresh(url) => Some(FollowResult {
            redirect_to: url,
            completed: false,
        }),
        Visit::Form { session, .. } => {
            let details = OnboardingDetails::test_defaults();
            match submit(app, token, &session, |_| Ok((details, outcome))) {
                Submit::Done(url) => Some(FollowResult {
                    redirect_to: url,
                    completed: true,
                }),
                Submit::Refresh(url) => Some(FollowResult {
                    redirect_to: url,
                    completed: false,
                }),
                Submit::Missing | Submit::Invalid { .. } => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_urls() {
        assert_eq!(token_of("http://127.0.0.1:1/onboarding/abc"), "abc");
        assert_eq!(token_of("abc"), "abc");
        assert_eq!(token_of("http://x/onboarding/abc/"), "abc");
    }

    #[test]
    fn form_validation_names_each_problem() {
        let f = Fields::parse(b"first_name=&dob=1990-13-01&routing_number=12&account_number=x&outcome=rejected&reject_reason=nope");
        let errors = f.validate(0, "127.0.0.1".into(), None).unwrap_err();
        assert!(errors.len() >= 5, "{errors:?}");
        let f = Fields::parse(
            b"first_name=Ada&last_name=L&dob=1990-01-02&url=https%3A%2F%2Fa.test&mcc=5734&\
              routing_number=110000000&account_number=000123456789&outcome=more_info&\
              requirement=business_profile.url&past_due=on",
        );
        let (details, outcome) = f.validate(100, "127.0.0.1".into(), None).unwrap();
        assert_eq!(details.first_name, "Ada");
        assert!(matches!(
            outcome,
            VerificationOutcome::MoreInfo { past_due: true, deadline: Some(d), .. } if d > 100
        ));
    }
}
