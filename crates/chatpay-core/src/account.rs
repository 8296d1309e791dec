//! A connected Stripe account as chatpay sees it, and what its state means in plain words.
//!
//! [`AccountSnapshot`] is filled from Stripe's Account object by the gateway; nothing here knows
//! async-stripe. [`AccountSnapshot::state`] sorts an account into the five states the chat shows,
//! and [`explain_disabled_reason`] / [`explain_requirement`] turn Stripe's codes into sentences a
//! non-expert understands, with what fixes them. Unknown codes get a sensible generic sentence.

use serde::{Deserialize, Serialize};

/// What we keep of a Stripe account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AccountSnapshot {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub business_name: Option<String>,
    #[serde(default)]
    pub statement_descriptor: Option<String>,
    #[serde(default)]
    pub default_currency: Option<String>,
    pub details_submitted: bool,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    #[serde(default)]
    pub requirements: Requirements,
    #[serde(default)]
    pub payout_schedule: Option<PayoutSchedule>,
    /// The platform collects requirements and the account has no Stripe Dashboard (Custom-style);
    /// only such accounts may use `account_update` links.
    #[serde(default)]
    pub platform_collects: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Requirements {
    #[serde(default)]
    pub currently_due: Vec<String>,
    #[serde(default)]
    pub eventually_due: Vec<String>,
    #[serde(default)]
    pub past_due: Vec<String>,
    #[serde(default)]
    pub pending_verification: Vec<String>,
    /// Unix seconds.
    #[serde(default)]
    pub current_deadline: Option<i64>,
    #[serde(default)]
    pub disabled_reason: Option<String>,
    #[serde(default)]
    pub errors: Vec<RequirementError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementError {
    pub requirement: String,
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutSchedule {
    pub delay_days: u32,
    /// daily, weekly, monthly or manual.
    pub interval: String,
}

/// The state the chat shows for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// Onboarding on Stripe's page is not finished.
    Onboarding,
    /// Submitted; Stripe is verifying.
    VerificationPending,
    /// Stripe needs something before charges or payouts work (or before a deadline).
    Restricted,
    /// Stripe will not work with this account.
    Rejected,
    /// Charges and payouts enabled.
    Active,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Onboarding => "onboarding",
            AccountState::VerificationPending => "verification_pending",
            AccountState::Restricted => "restricted",
            AccountState::Rejected => "rejected",
            AccountState::Active => "active",
        }
    }
}

impl AccountSnapshot {
    pub fn state(&self) -> AccountState {
        let r = &self.requirements;
        let reason = r.disabled_reason.as_deref().unwrap_or("");
        if reason.starts_with("rejected.") {
            return AccountState::Rejected;
        }
        let nothing_due = r.currently_due.is_empty() && r.past_due.is_empty();
        if self.charges_enabled && self.payouts_enabled && nothing_due && reason.is_empty() {
            return AccountState::Active;
        }
        if !self.details_submitted {
            return AccountState::Onboarding;
        }
        let verifying = reason == "requirements.pending_verification" || reason == "under_review";
        if nothing_due && (verifying || !r.pending_verification.is_empty()) {
            return AccountState::VerificationPending;
        }
        AccountState::Restricted
    }

    /// Whether a link to fix details should be `account_update` (allowed only when the platform
    /// collects requirements) rather than `account_onboarding` (which Stripe uses to collect
    /// whatever is due from accounts with a Stripe Dashboard).
    pub fn fixes_with_update_link(&self) -> bool {
        self.platform_collects && self.details_submitted
    }

    /// Requirements in plain words, most urgent first, without repeats.
    pub fn needs_in_plain_words(&self) -> Vec<&'static str> {
        let r = &self.requirements;
        let mut out: Vec<&'static str> = Vec::new();
        for field in r.past_due.iter().chain(&r.currently_due) {
            let words = explain_requirement(field);
            if !out.contains(&words) {
                out.push(words);
            }
        }
        out
    }
}

/// What a `disabled_reason` means, and what fixes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    pub sentence: &'static str,
    pub fix: Fix,
}

/// The way out of a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// Update details on Stripe's page (an `account_update` link).
    UpdateDetails,
    /// Nothing to do but wait for Stripe.
    Wait,
    /// Only Stripe's support can help.
    ContactStripe,
    /// Only the platform (the app builder's chatpay operator) can help.
    ContactPlatform,
}

/// Every `disabled_reason` Stripe documents (API version 2026-09-30), in plain words.
pub fn explain_disabled_reason(reason: &str) -> Explanation {
    use Fix::*;
    let (sentence, fix) = match reason {
        "requirements.past_due" => (
            "Stripe needs more information from you and the deadline has passed, so payments or payouts are paused until you provide it.",
            UpdateDetails,
        ),
        "requirements.pending_verification" => (
            "Stripe is checking the information you gave. This is usually quick, and can take up to 1-7 business days.",
            Wait,
        ),
        "action_required.requested_capabilities" => (
            "Some of the payment features requested for your account need more information before Stripe can turn them on.",
            UpdateDetails,
        ),
        "listed" => (
            "Stripe is reviewing the account because it may match a list of restricted persons or businesses.",
            ContactStripe,
        ),
        "under_review" => (
            "Stripe is reviewing the account. Watch your email for questions from Stripe.",
            Wait,
        ),
        "platform_paused" => (
            "The platform has paused this account. Contact the platform's support to resume it.",
            ContactPlatform,
        ),
        "other" => (
            "Stripe has limited the account. The Stripe Dashboard shows the details.",
            ContactStripe,
        ),
        "rejected.fraud" => (
            "Stripe rejected the account because it suspects fraudulent activity.",
            ContactStripe,
        ),
        "rejected.terms_of_service" => (
            "Stripe rejected the account because the business appears to break Stripe's terms of service, for example by selling restricted products or services.",
            ContactStripe,
        ),
        "rejected.listed" => (
            "Stripe rejected the account because it matches a list of restricted persons or businesses.",
            ContactStripe,
        ),
        "rejected.incomplete_verification" => (
            "Stripe rejected the account because verification was not completed in time.",
            UpdateDetails,
        ),
        "rejected.other" => ("Stripe rejected the account.", ContactStripe),
        "rejected.platform_fraud" => (
            "The platform rejected the account because it suspects fraudulent activity.",
            ContactPlatform,
        ),
        "rejected.platform_terms_of_service" => (
            "The platform rejected the account because the business appears to break the platform's terms of service.",
            ContactPlatform,
        ),
        "rejected.platform_other" => ("The platform rejected the account.", ContactPlatform),
        other if other.starts_with("rejected.") => ("Stripe rejected the account.", ContactStripe),
        _ => (
            "Stripe has limited the account. Updating your details usually resolves it.",
            UpdateDetails,
        ),
    };
    Explanation { sentence, fix }
}

/// The usual reasons an account is rejected, and what to do about them.
pub const USUAL_REJECTION_CAUSES: &[&str] = &[
    "incomplete or mismatched personal information (legal name, date of birth, address, ID number)",
    "an unclear business description: say plainly what you sell and to whom",
    "an empty or inaccessible website link: it must load and show your products and prices",
    "restricted products or services (Stripe lists them in its restricted businesses policy)",
];

/// A requirement field (`individual.verification.document`) in plain words.
pub fn explain_requirement(field: &str) -> &'static str {
    let f = field;
    let person = |rest: &str| -> Option<&'static str> {
        Some(match rest {
            r if r.starts_with("verification.additional_document") => {
                "a document proving your address (a utility bill or bank statement)"
            }
            r if r.starts_with("verification.document") => {
                "a photo of your ID document (passport, driving licence or ID card)"
            }
            r if r.starts_with("dob") => "your date of birth",
            r if r.starts_with("first_name") || r.starts_with("last_name") => "your legal name",
            r if r.starts_with("address") => "your home address",
            r if r.starts_with("id_number") || r.starts_with("ssn_last_4") => {
                "your personal ID number (in the US, the last 4 digits of your SSN)"
            }
            r if r.starts_with("email") => "your email address",
            r if r.starts_with("phone") => "your phone number",
            r if r.starts_with("relationship") => "your role in the business",
            _ => return None,
        })
    };
    if let Some(words) = f.strip_prefix("individual.").and_then(person) {
        return words;
    }
    match f {
        "external_account" => "a bank account for payouts",
        f if f.starts_with("tos_acceptance") => "accepting Stripe's terms of service",
        "business_profile.url" => "your business website (or a description of what you sell)",
        "business_profile.product_description" => "a description of what you sell",
        "business_profile.mcc" => "your business category",
        "business_profile.support_phone" | "business_profile.support_email" => {
            "customer support contact details"
        }
        f if f.starts_with("company.tax_id") => "your company's tax ID",
        f if f.starts_with("company.address") => "your company's registered address",
        f if f.starts_with("company.name") => "your company's legal name",
        f if f.starts_with("company.verification") => "a document verifying your company",
        f if f.starts_with("company.") => "details about your company",
        f if f.starts_with("representative.") => "details about the company's representative",
        f if f.starts_with("owners")
            || f.starts_with("directors")
            || f.starts_with("executives") =>
        {
            "details about the company's owners, directors or executives"
        }
        f if f.starts_with("person_") => "details about a person linked to the business",
        f if f.starts_with("settings.payments.statement_descriptor") => {
            "a statement descriptor (the name on your customers' card statements)"
        }
        f if f.starts_with("business_type") => "your business type",
        _ => "more information Stripe asks for (see Stripe's page)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> AccountSnapshot {
        AccountSnapshot {
            id: "acct_1".into(),
            details_submitted: true,
            charges_enabled: true,
            payouts_enabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn states_follow_the_account() {
        assert_eq!(snap().state(), AccountState::Active);
        let mut s = snap();
        s.details_submitted = false;
        s.charges_enabled = false;
        s.payouts_enabled = false;
        s.requirements.currently_due = vec!["external_account".into()];
        s.requirements.disabled_reason = Some("requirements.past_due".into());
        assert_eq!(s.state(), AccountState::Onboarding);
        s.details_submitted = true;
        s.requirements.currently_due.clear();
        s.requirements.pending_verification = vec!["individual.id_number".into()];
        s.requirements.disabled_reason = Some("requirements.pending_verification".into());
        assert_eq!(s.state(), AccountState::VerificationPending);
        s.requirements.currently_due = vec!["individual.verification.document".into()];
        s.requirements.disabled_reason = None;
        s.charges_enabled = true;
        assert_eq!(s.state(), AccountState::Restricted);
        s.requirements.disabled_reason = Some("rejected.platform_fraud".into());
        assert_eq!(s.state(), AccountState::Rejected);
    }

    #[test]
    fn every_documented_reason_has_its_own_sentence_and_unknown_ones_do_not_crash() {
        let documented = [
            "requirements.past_due",
            "requirements.pending_verification",
            "listed",
            "platform_paused",
            "under_review",
            "other",
            "rejected.fraud",
            "rejected.terms_of_service",
            "rejected.listed",
            "rejected.other",
            "rejected.incomplete_verification",
            "action_required.requested_capabilities",
            "rejected.platform_fraud",
            "rejected.platform_terms_of_service",
            "rejected.platform_other",
        ];
        let generic = explain_disabled_reason("something.new").sentence;
        let mut seen = std::collections::HashSet::new();
        for r in documented {
            let e = explain_disabled_reason(r);
            assert!(seen.insert(e.sentence), "{r} shares its sentence");
            assert_ne!(e.sentence, generic, "{r}");
        }
        assert_eq!(
            explain_disabled_reason("rejected.brand_new").sentence,
            "Stripe rejected the account."
        );
    }

    #[test]
    fn requirements_read_as_plain_words_without_repeats() {
        let mut s = snap();
        s.requirements.currently_due = vec![
            "individual.dob.day".into(),
            "individual.dob.month".into(),
            "external_account".into(),
            "some.brand_new_field".into(),
        ];
        assert_eq!(
            s.needs_in_plain_words(),
            vec![
                "your date of birth",
                "a bank account for payouts",
                "more information Stripe asks for (see Stripe's page)"
            ]
        );
    }
}
