//! `/v1/accounts` and `/v1/account_links`, plus the account transitions the hosted onboarding
//! page, OAuth and the test controls share.

use serde_json::Value;

use super::api::Call;
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::model::{
    Account, Bank, Controller, Dob, Individual, OnboardingDetails, Tos, VerificationOutcome,
};
use super::rules;
use super::shapes;
use super::state::{AccountLink, LinkState, PageRequest, Tx, previous_attributes};

const CREATE_PARAMS: &[&str] = &[
    "account_token",
    "bank_account",
    "business_profile",
    "business_type",
    "capabilities",
    "company",
    "controller",
    "country",
    "default_currency",
    "documents",
    "email",
    "expand",
    "external_account",
    "groups",
    "individual",
    "metadata",
    "settings",
    "tos_acceptance",
    "type",
];

const UPDATE_PARAMS: &[&str] = &[
    "account_token",
    "business_profile",
    "business_type",
    "capabilities",
    "company",
    "default_currency",
    "documents",
    "email",
    "expand",
    "external_account",
    "groups",
    "individual",
    "metadata",
    "settings",
    "tos_acceptance",
];

pub(crate) fn create(tx: &mut Tx<'_>, _call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(CREATE_PARAMS)?;
    let controller = match (p.str("type")?, controller_param(p)?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You may not specify both `type` and `controller`; `controller` describes the \
                 account's properties directly.",
            )
            .code("parameters_exclusive"));
        }
        (Some(kind), None) => {
            match rules::one_of("type", kind, &["standard", "express", "custom"])? {
                "express" => Controller::express(),
                "custom" => Controller::custom(),
                _ => Controller::standard(true),
            }
        }
        (None, Some(controller)) => controller,
        (None, None) => Controller::standard(true),
    };
    let country = match p.str("country")? {
        Some(c) => rules::country("country", c)?,
        None => "US".to_owned(),
    };
    let mut account = Account::new(ids::account(), tx.now, country, controller);
    apply(&mut account, p, tx.now)?;
    let seq = tx.st.seq();
    let out = shapes::account(&account);
    tx.ms().accounts.insert(seq, account);
    Ok(out)
}

/// `controller[...]` -> properties; Stripe's defaults are those of a Standard account.
fn controller_param(p: &Params<'_>) -> ApiResult<Option<Controller>> {
    let Some(c) = p.map(
        "controller",
        &[
            "fees",
            "losses",
            "requirement_collection",
            "stripe_dashboard",
        ],
    )?
    else {
        return Ok(None);
    };
    let mut out = Controller::standard(true);
    if let Some(fees) = c.map("fees", &["payer"])?
        && let Some(payer) = fees.str("payer")?
    {
        out.fees_payer = rules::one_of(
            "controller[fees][payer]",
            payer,
            &["account", "application"],
        )?
        .into();
    }
    if let Some(losses) = c.map("losses", &["payments"])?
        && let Some(payments) = losses.str("payments")?
    {
        out.losses_payments = rules::one_of(
            "controller[losses][payments]",
            payments,
            &["application", "stripe"],
        )?
        .into();
    }
    if let Some(rc) = c.str("requirement_collection")? {
        out.requirement_collection = rules::one_of(
            "controller[requirement_collection]",
            rc,
            &["application", "stripe"],
        )?
        .into();
    }
    if let Some(dashboard) = c.map("stripe_dashboard", &["type"])?
        && let Some(kind) = dashboard.str("type")?
    {
        out.dashboard = rules::one_of(
            "controller[stripe_dashboard][type]",
            kind,
            &["express", "full", "none"],
        )?
        .into();
    }
    if out.requirement_collection == "application"
        && (out.dashboard != "none" || out.losses_payments != "application")
    {
        return Err(ApiError::invalid(
            "When `controller[requirement_collection]` is `application`, \
             `controller[stripe_dashboard][type]` must be `none` and \
             `controller[losses][payments]` must be `application`.",
        ));
    }
    Ok(Some(out))
}

/// The parameters create and update share. Works on a copy: an error leaves nothing behind.
fn apply(a: &mut Account, p: &Params<'_>, now: i64) -> ApiResult<()> {
    p.patch_text("email")?
        .try_map(|e| rules::email("email", &e))?
        .apply(&mut a.email);
    if let Some(bt) = p.str("business_type")? {
        a.business_type = Some(
            rules::one_of(
                "business_type",
                bt,
                &["company", "government_entity", "individual", "non_profit"],
            )?
            .to_owned(),
        );
    }
    if let Some(currency) = p.str("default_currency")? {
        a.default_currency = rules::currency("default_currency", currency)?;
    }
    if let Some(bp) = p.map(
        "business_profile",
        &[
            "annual_revenue",
            "estimated_worker_count",
            "mcc",
            "minority_owned_business_designation",
            "monthly_estimated_revenue",
            "name",
            "product_description",
            "specified_commercial_transactions_act_url",
            "support_address",
            "support_email",
            "support_phone",
            "support_url",
            "url",
        ],
    )? {
        let prof = &mut a.profile;
        bp.patch_text("name")?.apply(&mut prof.name);
        bp.patch_text("product_description")?
            .apply(&mut prof.product_description);
        bp.patch_text("support_phone")?
            .apply(&mut prof.support_phone);
        bp.patch_text("mcc")?
            .try_map(|m| {
                if m.len() == 4 && m.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(m)
                } else {
                    Err(ApiError::bad_param(
                        "business_profile[mcc]",
                        format!("Invalid mcc: {m} is not a 4-digit merchant category code"),
                    ))
                }
            })?
            .apply(&mut prof.mcc);
        bp.patch_text("url")?
            .try_map(|u| rules::url("business_profile[url]", &u))?
            .apply(&mut prof.url);
        bp.patch_text("support_url")?
            .try_map(|u| rules::url("business_profile[support_url]", &u))?
            .apply(&mut prof.support_url);
        bp.patch_text("support_email")?
            .try_map(|e| rules::email("business_profile[support_email]", &e))?
            .apply(&mut prof.support_email);
    }
    if let Some(settings) = p.map(
        "settings",
        &[
            "bacs_debit_payments",
            "branding",
            "card_issuing",
            "card_payments",
            "invoices",
            "payments",
            "payouts",
            "paypay_payments",
            "sepa_debit_payments",
            "treasury",
        ],
    )? {
        apply_settings(a, &settings)?;
    }
    if let Some(metadata) = p.metadata("metadata")? {
        metadata.apply(&mut a.metadata, "metadata")?;
    }
    for (name, cap) in p.entries("capabilities")? {
        cap.only(&["requested"])?;
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ApiError::unknown_param(&format!("capabilities[{name}]")));
        }
        match cap.bool("requested")? {
            Some(true) => {
                a.capabilities.insert(name.to_owned());
            }
            Some(false) => {
                a.capabilities.remove(name);
            }
            None => {
                return Err(ApiError::missing(&format!(
                    "capabilities[{name}][requested]"
                )));
            }
        }
    }
    if let Some(tos) = p.map(
        "tos_acceptance",
        &["date", "ip", "service_agreement", "user_agent"],
    )? {
        if a.controller.requirement_collection == "stripe" {
            return Err(ApiError::bad_param(
                "tos_acceptance",
                "You cannot accept the Terms of Service on behalf of accounts where \
                 `controller[requirement_collection]` is `stripe`; Stripe collects it during \
                 onboarding.",
            ));
        }
        let date = tos.int("date")?;
        let ip = tos.text("ip")?;
        if let (Some(date), Some(ip)) = (date, ip) {
            a.tos = Some(Tos {
                date,
                ip,
                user_agent: tos.text("user_agent")?,
            });
        }
    }
    if let Some(ind) = p.map(
        "individual",
        &[
            "address",
            "address_kana",
            "address_kanji",
            "dob",
            "email",
            "first_name",
            "first_name_kana",
            "first_name_kanji",
            "full_name_aliases",
            "gender",
            "id_number",
            "id_number_secondary",
            "last_name",
            "last_name_kana",
            "last_name_kanji",
            "maiden_name",
            "metadata",
            "phone",
            "political_exposure",
            "registered_address",
            "relationship",
            "verification",
        ],
    )? {
        let email = ind
            .text("email")?
            .map(|e| rules::email("individual[email]", &e))
            .transpose()?;
        let dob = match ind.map("dob", &["day", "month", "year"])? {
            None => None,
            Some(d) => {
                let part = |k: &str| -> ApiResult<i64> {
                    d.int(k)?
                        .ok_or_else(|| ApiError::missing(&format!("individual[dob][{k}]")))
                };
                let text = format!(
                    "{:04}-{:02}-{:02}",
                    part("year")?,
                    part("month")?,
                    part("day")?
                );
                Some(Dob::parse(&text).ok_or_else(|| {
                    ApiError::bad_param("individual[dob]", "Invalid date of birth")
                })?)
            }
        };
        let person = a.individual.get_or_insert_with(|| Individual {
            id: ids::person(),
            created: now,
            first_name: None,
            last_name: None,
            email: None,
            dob: None,
        });
        ind.patch_text("first_name")?.apply(&mut person.first_name);
        ind.patch_text("last_name")?.apply(&mut person.last_name);
        if email.is_some() {
            person.email = email;
        }
        if dob.is_some() {
            person.dob = dob;
        }
    }
    if let Some(company) = p.map(
        "company",
        &[
            "address",
            "address_kana",
            "address_kanji",
            "directors_provided",
            "directorship_declaration",
            "executives_provided",
            "export_license_id",
            "export_purpose_code",
            "name",
            "name_kana",
            "name_kanji",
            "owners_provided",
            "ownership_declaration",
            "ownership_exemption_reason",
            "phone",
            "principal_place_of_business",
            "registration_date",
            "registration_number",
            "representative_declaration",
            "structure",
            "tax_id",
            "tax_id_registrar",
            "vat_id",
            "verification",
        ],
    )? {
        company.patch_text("name")?.apply(&mut a.company_name);
    }
    if let Some(token) = p.str("external_account")? {
        // Test bank account tokens (`btok_us_verified`, ...) attach Stripe's test account.
        if !token.starts_with("btok_") {
            return Err(ApiError::no_such_param("token", token, "external_account"));
        }
        let holder = a.individual.as_ref().and_then(|i| {
            Some(format!(
                "{} {}",
                i.first_name.as_ref()?,
                i.last_name.as_ref()?
            ))
        });
        a.bank = Some(Bank {
            id: ids::bank_account(),
            country: a.country.clone(),
            currency: a.default_currency.clone(),
            routing_number: "110000000".into(),
            last4: "6789".into(),
            holder_name: holder.or_else(|| a.company_name.clone()),
            fingerprint: ids::random(16),
        });
    }
    Ok(())
}

fn apply_settings(a: &mut Account, settings: &Params<'_>) -> ApiResult<()> {
    if let Some(payments) = settings.map(
        "payments",
        &[
            "statement_descriptor",
            "statement_descriptor_kana",
            "statement_descriptor_kanji",
        ],
    )? {
        payments
            .patch_text("statement_descriptor")?
            .try_map(|s| {
                rules::statement_descriptor("settings[payments][statement_descriptor]", &s)
            })?
            .apply(&mut a.statement_descriptor);
    }
    let Some(payouts) = settings.map(
        "payouts",
        &[
            "debit_negative_balances",
            "schedule",
            "statement_descriptor",
        ],
    )?
    else {
        return Ok(());
    };
    let Some(schedule) = payouts.map(
        "schedule",
        &[
            "delay_days",
            "interval",
            "monthly_anchor",
            "monthly_payout_days",
            "weekly_anchor",
            "weekly_payout_days",
        ],
    )?
    else {
        return Ok(());
    };
    let mut next = a.payouts.clone();
    if let Some(interval) = schedule.str("interval")? {
        next.interval = rules::one_of(
            "settings[payouts][schedule][interval]",
            interval,
            &["daily", "manual", "monthly", "weekly"],
        )?
        .to_owned();
    }
    match schedule.str("delay_days")? {
        None => {}
        Some("minimum") => next.delay_days = 7,
        Some(_) => {
            let days = schedule.int("delay_days")?.unwrap_or(7);
            if !(7..=365).contains(&days) {
                return Err(ApiError::bad_param(
                    "settings[payouts][schedule][delay_days]",
                    "The payout delay must be at least the account's minimum of 7 days and at \
                     most 365.",
                ));
            }
            next.delay_days = u32::try_from(days).unwrap_or(7);
        }
    }
    if let Some(anchor) = schedule.str("weekly_anchor")? {
        next.weekly_anchor = Some(
            rules::one_of(
                "settings[payouts][schedule][weekly_anchor]",
                anchor,
                &[
                    "friday",
                    "monday",
                    "saturday",
                    "sunday",
                    "thursday",
                    "tuesday",
                    "wednesday",
                ],
            )?
            .to_owned(),
        );
    }
    if let Some(day) = schedule.int("monthly_anchor")? {
        next.monthly_anchor = Some(
            u8::try_from(day)
                .ok()
                .filter(|d| (1..=31).contains(d))
                .ok_or_else(|| {
                    ApiError::bad_param(
                        "settings[payouts][schedule][monthly_anchor]",
                        "monthly_anchor must be between 1 and 31",
                    )
                })?,
        );
    }
    match next.interval.as_str() {
        "weekly" if next.weekly_anchor.is_none() => next.weekly_anchor = Some("monday".into()),
        "monthly" if next.monthly_anchor.is_none() => next.monthly_anchor = Some(1),
        _ => {}
    }
    if next.interval != "weekly" {
        next.weekly_anchor = None;
    }
    if next.interval != "monthly" {
        next.monthly_anchor = None;
    }
    a.payouts = next;
    Ok(())
}

/// The account for the caller, or the right error.
fn get<'t>(tx: &'t mut Tx<'_>, call: &Call<'_>, id: &str) -> ApiResult<&'t mut Account> {
    match tx.ms().accounts.get_mut(id) {
        None => Err(ApiError::no_such("account", id, "account")),
        Some(a) if a.revoked => Err(ApiError::no_access(call.key_hint, id)),
        Some(a) => Ok(a),
    }
}

pub(crate) fn retrieve(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    Ok(shapes::account(get(tx, call, id)?))
}

pub(crate) fn update(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(UPDATE_PARAMS)?;
    let now = tx.now;
    let current = get(tx, call, id)?.clone();
    let mut next = current.clone();
    apply(&mut next, p, now)?;
    Ok(replace_account(tx, current, next))
}

/// Stores `next` in place of `current`; emits `account.updated` if the API shape changed.
pub(crate) fn replace_account(tx: &mut Tx<'_>, current: Account, next: Account) -> Value {
    let before = shapes::account(&current);
    let after = shapes::account(&next);
    if let Some(prev) = previous_attributes(&before, &after, &[]) {
        if let Some(slot) = tx.ms().accounts.get_mut(&next.id) {
            *slot = next.clone();
        }
        tx.emit("account.updated", Some(&next.id), after.clone(), Some(prev));
    }
    after
}

pub(crate) fn delete(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[])?;
    let live = tx.livemode();
    let account = get(tx, call, id)?;
    if live && account.controller.requirement_collection == "stripe" {
        return Err(ApiError::invalid(
            "Live-mode accounts where Stripe collects requirements cannot be deleted by the \
             platform.",
        ));
    }
    let id = id.to_owned();
    tx.ms().accounts.remove(&id);
    tx.ms().catalogs.remove(&id);
    Ok(shapes::deleted(&id, "account"))
}

pub(crate) fn list(tx: &mut Tx<'_>, _call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "created",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
    ])?;
    let req = PageRequest::parse(p)?;
    let page = tx.ms().accounts.page(&req, "account", |a| !a.revoked)?;
    let data = page.items.iter().map(|a| shapes::account(a)).collect();
    Ok(shapes::list("/v1/accounts", data, page.has_more))
}

pub(crate) fn create_link(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "account",
        "collect",
        "collection_options",
        "expand",
        "refresh_url",
        "return_url",
        "type",
    ])?;
    let account_id = p.required("account")?;
    let kind = rules::one_of(
        "type",
        p.required("type")?,
        &["account_onboarding", "account_update"],
    )?;
    let refresh_url = rules::url("refresh_url", p.required("refresh_url")?)?;
    let return_url = rules::url("return_url", p.required("return_url")?)?;
    let account = tx
        .ms()
        .accounts
        .get(account_id)
        .filter(|a| !a.revoked)
        .ok_or_else(|| ApiError::no_such_param("account", account_id, "account"))?;
    if kind == "account_update"
        && (account.controller.requirement_collection != "application"
            || account.controller.dashboard != "none")
    {
        return Err(ApiError::bad_param(
            "type",
            "You can create Account Links of type `account_update` only for connected accounts \
             where your platform is responsible for collecting requirements. Use \
             `account_onboarding` for accounts with access to a Stripe-hosted Dashboard.",
        ));
    }
    let ttl = i64::try_from(call.app.config.link_ttl.as_secs()).unwrap_or(300);
    let link = AccountLink {
        token: ids::link_token(),
        mode: tx.mode,
        account: account_id.to_owned(),
        kind: kind.to_owned(),
        refresh_url,
        return_url,
        created: tx.now,
        expires_at: tx.now.saturating_add(ttl),
        state: LinkState::Fresh,
    };
    let out = shapes::account_link(&link, &call.app.base_url);
    tx.st.links.insert(link.token.clone(), link);
    Ok(out)
}

/// Applies a verification outcome (hosted page submission or test control) to an account.
pub(crate) fn set_outcome(
    tx: &mut Tx<'_>,
    id: &str,
    outcome: VerificationOutcome,
    details: Option<OnboardingDetails>,
) -> Option<Value> {
    let current = tx.ms().accounts.get(id)?.clone();
    let mut next = current.clone();
    match details {
        Some(details) => next.submit(details, outcome, tx.now, ids::person(), ids::bank_account()),
        None => {
            if next.status.is_none() {
                // Deciding before the person submitted anything: act as if they had.
                next.submit(
                    OnboardingDetails::test_defaults(),
                    outcome,
                    tx.now,
                    ids::person(),
                    ids::bank_account(),
                );
            } else {
                next.status = Some(outcome);
            }
        }
    }
    Some(replace_account(tx, current, next))
}
