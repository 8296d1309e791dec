//! The sandbox's objects and the rules that move them: account requirements per verification
//! outcome, products and prices. Pure data and functions; no locking, no I/O, no JSON shapes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Where a connected account's verification ends up: chosen on the hosted onboarding page, or
/// set later through the test controls (a pending account resolving, a document being asked for).
///
/// As JSON (test controls) it is tagged by `outcome`:
/// `{"outcome": "verified"}`, `{"outcome": "pending"}`,
/// `{"outcome": "more_info", "requirement": "individual.verification.document",
///   "deadline": 1767225600, "past_due": false}`,
/// `{"outcome": "rejected", "reason": "rejected.fraud"}`,
/// `{"outcome": "disabled", "reason": "under_review"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum VerificationOutcome {
    /// Charges and payouts enabled, nothing due.
    Verified,
    /// Details submitted, Stripe still checking: `requirements.pending_verification`.
    Pending,
    /// Stripe needs something more: charges stay enabled until the requirement is past due,
    /// payouts are paused.
    MoreInfo {
        /// The requirement, e.g. `individual.verification.document` or `business_profile.url`.
        #[serde(default = "default_requirement")]
        requirement: String,
        /// `requirements.current_deadline` (Unix seconds).
        #[serde(default)]
        deadline: Option<i64>,
        /// The deadline has passed: the requirement is in `past_due` and charges stop.
        #[serde(default)]
        past_due: bool,
        /// `requirements.errors[].code`; defaults to a code matching the requirement.
        #[serde(default)]
        error_code: Option<String>,
    },
    /// Stripe rejected the account; `reason` is one of [`REJECT_REASONS`].
    Rejected { reason: String },
    /// Disabled for a reason other than rejection or requirements; one of [`DISABLED_REASONS`].
    Disabled { reason: String },
}

fn default_requirement() -> String {
    "individual.verification.document".to_owned()
}

/// The `requirements.disabled_reason` values of a rejected account (API version 2026-09-30
/// added the `rejected.platform_*` ones).
pub const REJECT_REASONS: &[&str] = &[
    "rejected.fraud",
    "rejected.terms_of_service",
    "rejected.listed",
    "rejected.other",
    "rejected.incomplete_verification",
    "rejected.platform_fraud",
    "rejected.platform_terms_of_service",
    "rejected.platform_other",
];

/// The other `disabled_reason` values an outcome may set directly.
pub const DISABLED_REASONS: &[&str] = &[
    "listed",
    "platform_paused",
    "under_review",
    "other",
    "action_required.requested_capabilities",
];

impl VerificationOutcome {
    /// Checks the free-text parts (reasons, requirement names, error codes).
    pub fn validate(&self) -> Result<(), String> {
        let field_like = |s: &str| {
            !s.is_empty()
                && s.len() <= 200
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(&b))
        };
        match self {
            VerificationOutcome::Verified | VerificationOutcome::Pending => Ok(()),
            VerificationOutcome::MoreInfo {
                requirement,
                error_code,
                ..
            } => {
                if !field_like(requirement) {
                    return Err(format!("invalid requirement {requirement:?}"));
                }
                match error_code {
                    Some(code) if !field_like(code) || code.contains('.') => {
                        Err(format!("invalid error_code {code:?}"))
                    }
                    _ => Ok(()),
                }
            }
            VerificationOutcome::Rejected { reason } => {
                if REJECT_REASONS.contains(&reason.as_str()) {
                    Ok(())
                } else {
                    Err(format!(
                        "reason must be one of {}, not {reason:?}",
                        REJECT_REASONS.join(", ")
                    ))
                }
            }
            VerificationOutcome::Disabled { reason } => {
                if DISABLED_REASONS.contains(&reason.as_str()) {
                    Ok(())
                } else {
                    Err(format!(
                        "reason must be one of {}, not {reason:?}",
                        DISABLED_REASONS.join(", ")
                    ))
                }
            }
        }
    }
}

/// `controller`: who pays fees, bears losses, collects requirements, which dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Controller {
    /// `controller.type`: `application` (the platform controls it) or `account`.
    pub platform_controls: bool,
    pub fees_payer: String,
    pub losses_payments: String,
    pub requirement_collection: String,
    pub dashboard: String,
}

impl Controller {
    pub fn standard(platform_controls: bool) -> Controller {
        Controller {
            platform_controls,
            fees_payer: "account".into(),
            losses_payments: "stripe".into(),
            requirement_collection: "stripe".into(),
            dashboard: "full".into(),
        }
    }

    pub fn express() -> Controller {
        Controller {
            platform_controls: true,
            fees_payer: "application_express".into(),
            losses_payments: "application".into(),
            requirement_collection: "stripe".into(),
            dashboard: "express".into(),
        }
    }

    pub fn custom() -> Controller {
        Controller {
            platform_controls: true,
            fees_payer: "application_custom".into(),
            losses_payments: "application".into(),
            requirement_collection: "application".into(),
            dashboard: "none".into(),
        }
    }

    /// The legacy `type` these properties correspond to (`none` when they match no type).
    pub fn legacy_type(&self) -> &'static str {
        match (
            self.dashboard.as_str(),
            self.requirement_collection.as_str(),
            self.losses_payments.as_str(),
        ) {
            ("full", "stripe", "stripe") if self.fees_payer == "account" => "standard",
            ("express", "stripe", "application") => "express",
            ("none", "application", "application") => "custom",
            _ => "none",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BusinessProfile {
    pub name: Option<String>,
    pub url: Option<String>,
    pub mcc: Option<String>,
    pub product_description: Option<String>,
    pub support_email: Option<String>,
    pub support_phone: Option<String>,
    pub support_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PayoutSchedule {
    pub delay_days: u32,
    /// `daily`, `weekly`, `monthly` or `manual`.
    pub interval: String,
    pub weekly_anchor: Option<String>,
    pub monthly_anchor: Option<u8>,
}

impl Default for PayoutSchedule {
    /// A new account: payouts daily, funds held 7 days (the first-payout hold).
    fn default() -> Self {
        PayoutSchedule {
            delay_days: 7,
            interval: "daily".into(),
            weekly_anchor: None,
            monthly_anchor: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dob {
    pub day: u32,
    pub month: u32,
    pub year: i32,
}

impl Dob {
    /// `YYYY-MM-DD`, a real date, a plausible year.
    pub fn parse(s: &str) -> Option<Dob> {
        let date = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
        use chrono::Datelike;
        (1900..=2100).contains(&date.year()).then(|| Dob {
            day: date.day(),
            month: date.month(),
            year: date.year(),
        })
    }
}

/// The person behind an `individual` account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Individual {
    pub id: String,
    pub created: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub dob: Option<Dob>,
}

/// The payout bank account (`external_accounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bank {
    pub id: String,
    pub country: String,
    pub currency: String,
    pub routing_number: String,
    pub last4: String,
    pub holder_name: Option<String>,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tos {
    pub date: i64,
    pub ip: String,
    pub user_agent: Option<String>,
}

/// A connected account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Account {
    pub id: String,
    pub created: i64,
    /// Legacy `type`: standard, express, custom or none.
    pub kind: String,
    pub controller: Controller,
    pub country: String,
    pub default_currency: String,
    pub email: Option<String>,
    pub business_type: Option<String>,
    pub profile: BusinessProfile,
    pub statement_descriptor: Option<String>,
    pub payouts: PayoutSchedule,
    pub metadata: BTreeMap<String, String>,
    /// Requested capabilities (`card_payments`, `transfers`, ...).
    pub capabilities: BTreeSet<String>,
    pub individual: Option<Individual>,
    pub company_name: Option<String>,
    pub bank: Option<Bank>,
    pub tos: Option<Tos>,
    /// `None` until details are submitted.
    pub status: Option<VerificationOutcome>,
    /// Connected through OAuth (an existing Standard account).
    pub oauth: bool,
    /// The platform was disconnected (`/oauth/deauthorize`): requests for it fail.
    pub revoked: bool,
}

/// What `requirements` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Requirements {
    pub currently_due: Vec<String>,
    pub eventually_due: Vec<String>,
    pub past_due: Vec<String>,
    pub pending_verification: Vec<String>,
    pub current_deadline: Option<i64>,
    pub disabled_reason: Option<String>,
    pub errors: Vec<RequirementError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequirementError {
    pub code: String,
    pub reason: String,
    pub requirement: String,
}

const INDIVIDUAL_DUE: &[&str] = &[
    "individual.address.city",
    "individual.address.line1",
    "individual.address.postal_code",
    "individual.dob.day",
    "individual.dob.month",
    "individual.dob.year",
    "individual.email",
    "individual.first_name",
    "individual.last_name",
    "individual.phone",
];

const COMPANY_DUE: &[&str] = &[
    "company.address.city",
    "company.address.line1",
    "company.address.postal_code",
    "company.name",
    "company.phone",
    "company.tax_id",
    "owners.first_name",
    "owners.last_name",
    "representative.dob.day",
    "representative.dob.month",
    "representative.dob.year",
    "representative.email",
    "representative.first_name",
    "representative.last_name",
];

/// What the hosted onboarding form collects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OnboardingDetails {
    pub first_name: String,
    pub last_name: String,
    pub dob: Dob,
    pub business_name: Option<String>,
    pub url: Option<String>,
    pub product_description: Option<String>,
    pub mcc: Option<String>,
    pub routing_number: String,
    pub account_number: String,
    pub ip: String,
    pub user_agent: Option<String>,
}

impl OnboardingDetails {
    /// Stripe's test identity and test bank account, for flows without a browser.
    pub fn test_defaults() -> OnboardingDetails {
        OnboardingDetails {
            first_name: "Jenny".into(),
            last_name: "Rosen".into(),
            dob: Dob {
                day: 1,
                month: 1,
                year: 1901,
            },
            business_name: None,
            url: Some("https://example.com".into()),
            product_description: None,
            mcc: Some("5734".into()),
            routing_number: "110000000".into(),
            account_number: "000123456789".into(),
            ip: "127.0.0.1".into(),
            user_agent: None,
        }
    }
}

/// The usual default currency of a country.
pub(crate) fn default_currency(country: &str) -> &'static str {
    match country {
        "US" => "usd",
        "GB" | "GI" => "gbp",
        "CA" => "cad",
        "AU" => "aud",
        "NZ" => "nzd",
        "JP" => "jpy",
        "CH" | "LI" => "chf",
        "SE" => "sek",
        "NO" => "nok",
        "DK" => "dkk",
        "PL" => "pln",
        "CZ" => "czk",
        "HU" => "huf",
        "RO" => "ron",
        "BG" => "bgn",
        "SG" => "sgd",
        "HK" => "hkd",
        "MX" => "mxn",
        "BR" => "brl",
        "IN" => "inr",
        "MY" => "myr",
        "TH" => "thb",
        "AE" => "aed",
        _ => "eur",
    }
}

impl Account {
    /// A fresh connected account, nothing submitted yet.
    pub fn new(id: String, created: i64, country: String, controller: Controller) -> Account {
        Account {
            id,
            created,
            kind: controller.legacy_type().to_owned(),
            default_currency: default_currency(&country).to_owned(),
            controller,
            country,
            email: None,
            business_type: None,
            profile: BusinessProfile::default(),
            statement_descriptor: None,
            payouts: PayoutSchedule::default(),
            metadata: BTreeMap::new(),
            capabilities: ["card_payments", "transfers"]
                .into_iter()
                .map(String::from)
                .collect(),
            individual: None,
            company_name: None,
            bank: None,
            tos: None,
            status: None,
            oauth: false,
            revoked: false,
        }
    }

    /// An existing, already verified Standard account connected through OAuth.
    pub fn connected_standard(
        id: String,
        created: i64,
        country: String,
        email: Option<String>,
        business_name: Option<String>,
        person_id: String,
        bank_id: String,
    ) -> Account {
        let mut account = Account::new(id, created, country, Controller::standard(false));
        account.oauth = true;
        account.email = email;
        let mut details = OnboardingDetails::test_defaults();
        details.business_name = business_name.or_else(|| Some("Sandbox Standard Account".into()));
        account.submit(
            details,
            VerificationOutcome::Verified,
            created,
            person_id,
            bank_id,
        );
        account
    }

    /// The name customers see on Checkout, receipts and invoices: the public business name
    /// (`business_profile.name`, "Public business name" in Stripe's settings), else the
    /// company's legal name, else the person's for an individual, else the account id. Never
    /// the person's name while the account has a business name.
    pub fn public_name(&self) -> String {
        let person = self.individual.as_ref().and_then(|p| {
            match (p.first_name.as_deref(), p.last_name.as_deref()) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (Some(n), None) | (None, Some(n)) => Some(n.to_owned()),
                (None, None) => None,
            }
        });
        [self.profile.name.clone(), self.company_name.clone(), person]
            .into_iter()
            .flatten()
            .map(|n| n.trim().to_owned())
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| self.id.clone())
    }

    pub fn is_company(&self) -> bool {
        matches!(
            self.business_type.as_deref(),
            Some("company" | "non_profit" | "government_entity")
        )
    }

    pub fn details_submitted(&self) -> bool {
        self.status.is_some()
    }

    pub fn charges_enabled(&self) -> bool {
        matches!(
            self.status,
            Some(VerificationOutcome::Verified)
                | Some(VerificationOutcome::MoreInfo {
                    past_due: false,
                    ..
                })
        )
    }

    pub fn payouts_enabled(&self) -> bool {
        matches!(self.status, Some(VerificationOutcome::Verified))
    }

    /// Status of every requested capability.
    pub fn capability_status(&self) -> &'static str {
        match &self.status {
            Some(VerificationOutcome::Verified) => "active",
            Some(VerificationOutcome::MoreInfo { past_due, .. }) if !past_due => "active",
            Some(VerificationOutcome::Pending) => "pending",
            _ => "inactive",
        }
    }

    /// Person verification status shown on `individual.verification.status`.
    pub fn person_verification(&self) -> &'static str {
        match &self.status {
            Some(VerificationOutcome::Verified) => "verified",
            Some(VerificationOutcome::Pending) => "pending",
            _ => "unverified",
        }
    }

    /// Fields an account that has not been through onboarding still owes.
    fn unsubmitted_due(&self) -> Vec<String> {
        let mut due: Vec<String> = Vec::new();
        if self.profile.mcc.is_none() {
            due.push("business_profile.mcc".into());
        }
        if self.profile.url.is_none() && self.profile.product_description.is_none() {
            due.push("business_profile.url".into());
        }
        if self.business_type.is_none() {
            due.push("business_type".into());
        }
        if self.bank.is_none() {
            due.push("external_account".into());
        }
        if self.is_company() {
            due.extend(
                COMPANY_DUE
                    .iter()
                    .filter(|f| !(**f == "company.name" && self.company_name.is_some()))
                    .map(|f| (*f).to_owned()),
            );
        } else {
            let person = self.individual.as_ref();
            let provided = |field: &str| -> bool {
                let Some(p) = person else { return false };
                match field {
                    "individual.first_name" => p.first_name.is_some(),
                    "individual.last_name" => p.last_name.is_some(),
                    "individual.email" => p.email.is_some(),
                    f if f.starts_with("individual.dob.") => p.dob.is_some(),
                    _ => false,
                }
            };
            due.extend(
                INDIVIDUAL_DUE
                    .iter()
                    .filter(|f| !provided(f))
                    .map(|f| (*f).to_owned()),
            );
            if self.country == "US" {
                due.push("individual.ssn_last_4".into());
            }
        }
        if self.tos.is_none() {
            due.push("tos_acceptance.date".into());
            due.push("tos_acceptance.ip".into());
        }
        due.sort();
        due
    }

    fn identity_document(&self) -> &'static str {
        if self.is_company() {
            "representative.verification.document"
        } else {
            "individual.verification.document"
        }
    }

    /// The `requirements` hash, derived from what was submitted and the verification outcome.
    pub fn requirements(&self) -> Requirements {
        match &self.status {
            None => {
                let due = self.unsubmitted_due();
                if due.is_empty() {
                    // Everything given through the API: Stripe is checking it.
                    Requirements {
                        pending_verification: vec![self.identity_document().to_owned()],
                        disabled_reason: Some("requirements.pending_verification".into()),
                        ..Requirements::default()
                    }
                } else {
                    Requirements {
                        currently_due: due.clone(),
                        eventually_due: due.clone(),
                        past_due: due,
                        disabled_reason: Some("requirements.past_due".into()),
                        ..Requirements::default()
                    }
                }
            }
            Some(VerificationOutcome::Verified) => Requirements::default(),
            Some(VerificationOutcome::Pending) => {
                let mut pending = vec![self.identity_document().to_owned()];
                if self.is_company() {
                    pending.push("company.tax_id".into());
                }
                pending.sort();
                Requirements {
                    pending_verification: pending,
                    disabled_reason: Some("requirements.pending_verification".into()),
                    ..Requirements::default()
                }
            }
            Some(VerificationOutcome::MoreInfo {
                requirement,
                deadline,
                past_due,
                error_code,
            }) => {
                let code = error_code.clone().unwrap_or_else(|| {
                    if requirement.contains("verification.document") {
                        "verification_document_failed_other".into()
                    } else {
                        "information_missing".into()
                    }
                });
                let reason = if requirement.contains("verification.document") {
                    "The document could not be verified. Upload a clear, unexpired government-issued photo ID."
                } else {
                    "Additional information is required to keep this account enabled."
                };
                Requirements {
                    currently_due: vec![requirement.clone()],
                    eventually_due: vec![requirement.clone()],
                    past_due: if *past_due {
                        vec![requirement.clone()]
                    } else {
                        Vec::new()
                    },
                    current_deadline: *deadline,
                    disabled_reason: past_due.then(|| "requirements.past_due".to_owned()),
                    errors: vec![RequirementError {
                        code,
                        reason: reason.into(),
                        requirement: requirement.clone(),
                    }],
                    ..Requirements::default()
                }
            }
            Some(
                VerificationOutcome::Rejected { reason } | VerificationOutcome::Disabled { reason },
            ) => Requirements {
                disabled_reason: Some(reason.clone()),
                ..Requirements::default()
            },
        }
    }

    /// Applies a hosted-onboarding submission: identity, business, bank, terms, outcome.
    pub fn submit(
        &mut self,
        details: OnboardingDetails,
        outcome: VerificationOutcome,
        now: i64,
        person_id: String,
        bank_id: String,
    ) {
        if self.business_type.is_none() {
            self.business_type = Some("individual".into());
        }
        if self.is_company() {
            if let Some(name) = &details.business_name {
                self.company_name = Some(name.clone());
            }
        } else {
            let person = self.individual.get_or_insert(Individual {
                id: person_id,
                created: now,
                first_name: None,
                last_name: None,
                email: None,
                dob: None,
            });
            person.first_name = Some(details.first_name.clone());
            person.last_name = Some(details.last_name.clone());
            person.dob = Some(details.dob);
            if person.email.is_none() {
                person.email = self.email.clone();
            }
        }
        let p = &mut self.profile;
        if details.business_name.is_some() {
            p.name = details.business_name;
        }
        if details.url.is_some() {
            p.url = details.url;
        }
        if details.product_description.is_some() {
            p.product_description = details.product_description;
        }
        if details.mcc.is_some() {
            p.mcc = details.mcc;
        }
        let digits = &details.account_number;
        self.bank = Some(Bank {
            id: self.bank.as_ref().map(|b| b.id.clone()).unwrap_or(bank_id),
            country: self.country.clone(),
            currency: self.default_currency.clone(),
            routing_number: details.routing_number.clone(),
            last4: last4(digits),
            holder_name: Some(format!("{} {}", details.first_name, details.last_name)),
            fingerprint: fingerprint(&details.routing_number, digits),
        });
        self.tos = Some(Tos {
            date: now,
            ip: details.ip,
            user_agent: details.user_agent,
        });
        self.status = Some(outcome);
    }
}

/// The last four characters of an account number.
fn last4(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// A stable, opaque fingerprint of a bank account (same numbers, same fingerprint).
fn fingerprint(routing: &str, account: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{routing}:{account}").as_bytes());
    hex::encode(&digest[..8])
}

/// A product of a catalog (platform or connected account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Product {
    pub id: String,
    pub created: i64,
    pub updated: i64,
    pub name: String,
    pub active: bool,
    pub description: Option<String>,
    pub default_price: Option<String>,
    pub images: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub shippable: Option<bool>,
    pub statement_descriptor: Option<String>,
    pub unit_label: Option<String>,
    pub url: Option<String>,
    pub tax_code: Option<String>,
    /// `service` or `good`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Recurring {
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    pub interval_count: u32,
    /// `recurring[trial_period_days]`: the default trial of subscriptions to this price.
    #[serde(default)]
    pub trial_period_days: Option<u32>,
}

impl Recurring {
    /// The end of one billing period that starts at `start` (Unix seconds, UTC): months and
    /// years keep the day of the month where they can (Jan 31 + 1 month = Feb 28/29), as
    /// Stripe's billing cycle anchor does.
    pub fn period_end(&self, start: i64) -> i64 {
        use chrono::{Days, Months};
        let Some(at) = chrono::DateTime::from_timestamp(start, 0) else {
            return start;
        };
        let n = self.interval_count.max(1);
        let end = match self.interval.as_str() {
            "day" => at.checked_add_days(Days::new(u64::from(n))),
            "week" => at.checked_add_days(Days::new(7 * u64::from(n))),
            "year" => at.checked_add_months(Months::new(12 * n)),
            _ => at.checked_add_months(Months::new(n)),
        };
        end.map_or(start, |e| e.timestamp())
    }
}

/// A price of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Price {
    pub id: String,
    pub created: i64,
    pub product: String,
    pub currency: String,
    pub unit_amount: i64,
    pub recurring: Option<Recurring>,
    pub active: bool,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// `inclusive`, `exclusive` or `unspecified`.
    pub tax_behavior: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Account {
        Account::new("acct_1".into(), 1, "US".into(), Controller::standard(true))
    }

    fn submitted(outcome: VerificationOutcome) -> Account {
        let mut a = fresh();
        a.submit(
            OnboardingDetails::test_defaults(),
            outcome,
            10,
            "person_1".into(),
            "ba_1".into(),
        );
        a
    }

    #[test]
    fn a_new_account_owes_the_usual_fields() {
        let a = fresh();
        let r = a.requirements();
        assert!(!a.details_submitted() && !a.charges_enabled() && !a.payouts_enabled());
        for f in [
            "external_account",
            "individual.first_name",
            "tos_acceptance.date",
            "tos_acceptance.ip",
            "business_profile.url",
            "individual.ssn_last_4",
        ] {
            assert!(r.currently_due.iter().any(|d| d == f), "{f} due");
        }
        assert_eq!(r.eventually_due, r.currently_due);
        assert_eq!(r.disabled_reason.as_deref(), Some("requirements.past_due"));
        assert_eq!(a.payouts.delay_days, 7);
        assert_eq!(a.payouts.interval, "daily");
        assert_eq!(a.kind, "standard");
    }

    #[test]
    fn provided_fields_leave_the_due_list() {
        let mut a = fresh();
        a.business_type = Some("company".into());
        a.company_name = Some("Acme".into());
        a.profile.url = Some("https://acme.test".into());
        let due = a.requirements().currently_due;
        assert!(due.iter().any(|d| d == "company.tax_id"));
        assert!(
            !due.iter()
                .any(|d| d == "company.name" || d == "business_profile.url")
        );
        assert!(!due.iter().any(|d| d.starts_with("individual.")));
    }

    #[test]
    fn verified_enables_everything() {
        let a = submitted(VerificationOutcome::Verified);
        assert!(a.details_submitted() && a.charges_enabled() && a.payouts_enabled());
        assert_eq!(a.requirements(), Requirements::default());
        assert_eq!(a.capability_status(), "active");
        assert_eq!(a.bank.as_ref().unwrap().last4, "6789");
        assert_eq!(
            a.individual.as_ref().unwrap().first_name.as_deref(),
            Some("Jenny")
        );
    }

    #[test]
    fn pending_waits_for_verification() {
        let a = submitted(VerificationOutcome::Pending);
        let r = a.requirements();
        assert!(a.details_submitted() && !a.charges_enabled() && !a.payouts_enabled());
        assert_eq!(
            r.pending_verification,
            vec!["individual.verification.document"]
        );
        assert_eq!(
            r.disabled_reason.as_deref(),
            Some("requirements.pending_verification")
        );
        assert!(r.currently_due.is_empty());
    }

    #[test]
    fn more_info_keeps_charges_until_past_due() {
        let mut a = submitted(VerificationOutcome::MoreInfo {
            requirement: "individual.verification.document".into(),
            deadline: Some(1_000),
            past_due: false,
            error_code: None,
        });
        let r = a.requirements();
        assert!(a.charges_enabled() && !a.payouts_enabled());
        assert_eq!(r.currently_due, vec!["individual.verification.document"]);
        assert_eq!(r.current_deadline, Some(1_000));
        assert!(r.past_due.is_empty() && r.disabled_reason.is_none());
        assert_eq!(r.errors[0].code, "verification_document_failed_other");

        a.status = Some(VerificationOutcome::MoreInfo {
            requirement: "business_profile.url".into(),
            deadline: Some(1_000),
            past_due: true,
            error_code: Some("invalid_url_website_inaccessible".into()),
        });
        let r = a.requirements();
        assert!(!a.charges_enabled());
        assert_eq!(r.past_due, vec!["business_profile.url"]);
        assert_eq!(r.disabled_reason.as_deref(), Some("requirements.past_due"));
        assert_eq!(r.errors[0].code, "invalid_url_website_inaccessible");
    }

    #[test]
    fn rejected_and_disabled_carry_their_reason() {
        for reason in REJECT_REASONS {
            let outcome = VerificationOutcome::Rejected {
                reason: (*reason).into(),
            };
            assert!(outcome.validate().is_ok());
            let a = submitted(outcome);
            assert!(!a.charges_enabled() && !a.payouts_enabled());
            assert_eq!(a.requirements().disabled_reason.as_deref(), Some(*reason));
        }
        assert!(
            VerificationOutcome::Rejected {
                reason: "under_review".into()
            }
            .validate()
            .is_err()
        );
        let a = submitted(VerificationOutcome::Disabled {
            reason: "under_review".into(),
        });
        assert_eq!(
            a.requirements().disabled_reason.as_deref(),
            Some("under_review")
        );
    }

    #[test]
    fn outcome_json_is_tagged() {
        let o: VerificationOutcome = serde_json::from_str(
            r#"{"outcome":"more_info","requirement":"business_profile.url","past_due":true}"#,
        )
        .unwrap();
        assert!(matches!(
            o,
            VerificationOutcome::MoreInfo { past_due: true, .. }
        ));
        let o: VerificationOutcome = serde_json::from_str(r#"{"outcome":"more_info"}"#).unwrap();
        assert!(
            matches!(o, VerificationOutcome::MoreInfo { ref requirement, .. } if requirement == "individual.verification.document")
        );
        assert!(serde_json::from_str::<VerificationOutcome>(r#"{"outcome":"nope"}"#).is_err());
    }

    #[test]
    fn the_public_name_is_the_business_name_first() {
        let mut a = submitted(VerificationOutcome::Verified);
        a.profile.name = Some("Bright Yoga".into());
        assert_eq!(a.public_name(), "Bright Yoga");
        a.profile.name = None;
        assert_eq!(a.public_name(), "Jenny Rosen", "an individual's legal name");
        a.business_type = Some("company".into());
        a.company_name = Some("Bright Yoga LLC".into());
        assert_eq!(a.public_name(), "Bright Yoga LLC");
        a.profile.name = Some("  ".into());
        assert_eq!(
            a.public_name(),
            "Bright Yoga LLC",
            "a blank name is no name"
        );
        assert_eq!(fresh().public_name(), "acct_1");
    }

    #[test]
    fn controller_maps_to_legacy_type() {
        assert_eq!(Controller::standard(true).legacy_type(), "standard");
        assert_eq!(Controller::express().legacy_type(), "express");
        assert_eq!(Controller::custom().legacy_type(), "custom");
        let mut odd = Controller::custom();
        odd.dashboard = "full".into();
        assert_eq!(odd.legacy_type(), "none");
    }

    #[test]
    fn dob_parses_real_dates_only() {
        assert_eq!(
            Dob::parse("1990-02-28"),
            Some(Dob {
                day: 28,
                month: 2,
                year: 1990
            })
        );
        assert!(Dob::parse("1990-02-30").is_none());
        assert!(Dob::parse("yesterday").is_none());
    }
}
