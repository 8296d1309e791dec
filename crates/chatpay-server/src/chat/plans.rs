//! The billing portal and plan changes, for the chat and the HTTP API alike.
//!
//! - The portal's configuration is one per project, mode and connected account, made from the
//!   stored catalog's recurring prices and the project's cancellation setting
//!   (`chatpay_core::plans::portal_config`). Before each portal session it is compared with
//!   what it should be now; when the catalog or the setting changed (or the account did), a
//!   new one is made, numbered by the row's `version`: a stored operation keyed
//!   `chatpay:{project}:portal_config:{mode}:v{version}`, so a crash between Stripe's answer
//!   and the row makes the same request again and Stripe answers the same configuration.
//! - A portal session is a stored operation too, keyed by the caller (the chat's call, or the
//!   API's `Idempotency-Key`).
//! - A plan change is checked by `rules::plan_change`, previewed with Stripe's invoice preview
//!   (a read), and made as a stored operation; the subscription's change reaches the store and
//!   the chat through Stripe's events and the re-read ("Plan changed").

use chatpay_core::billing::Subscription;
use chatpay_core::domain::{Mode, ProjectId, now_millis, random_hex};
use chatpay_core::flows::{CallError, PlanOffer, PortalAnswer};
use chatpay_core::plans::{
    CancelMode, PlanChange, PlanTiming, PlanWanted, PortalConfig, portal_config, wanted_plan,
};
use chatpay_core::rules;
use chatpay_store::{ExtraWrite, PortalSettingsRecord, ProjectRecord, SubscriptionFilter};

use super::billing::subscription_of;
use super::operations::StripeWrite;
use super::orders::gateway_error;
use super::{ChatError, Engine, catalog_sync};

/// A chat call's failure, said as the API would say it.
pub(super) fn call_error(e: ChatError) -> CallError {
    match &e {
        ChatError::Rejected { code, message } | ChatError::Conflict { code, message } => {
            CallError {
                message: message.clone(),
                code: Some((*code).to_owned()),
            }
        }
        ChatError::NotFound(m) => CallError {
            message: m.clone(),
            code: Some("not_found".to_owned()),
        },
        other => {
            tracing::warn!(error = %other, "a billing portal or plan call failed");
            CallError {
                message: "Stripe or the database didn't answer just now; please ask again."
                    .to_owned(),
                code: None,
            }
        }
    }
}

fn cancel_mode(r: &PortalSettingsRecord) -> CancelMode {
    CancelMode::parse(&r.cancel_mode).unwrap_or_default()
}

impl Engine {
    /// The project's portal settings in `mode`, made (cancelling at the period's end, a new
    /// proof secret) if there are none yet.
    pub(crate) async fn portal_settings(
        &self,
        project: &ProjectId,
        mode: Mode,
    ) -> Result<PortalSettingsRecord, ChatError> {
        let store = &self.inner.store;
        if let Some(r) = store.portal_settings(project, mode).await? {
            return Ok(r);
        }
        store
            .write(vec![ExtraWrite::PutPortalSettings {
                project_id: project.clone(),
                mode,
                cancel_mode: None,
                proof_secret: format!("cps_{}", random_hex(24)),
            }])
            .await?;
        store
            .portal_settings(project, mode)
            .await?
            .ok_or_else(|| ChatError::Internal(anyhow::anyhow!("portal settings not stored")))
    }

    /// Sets how members cancel in the portal (`set`), or reads it; with the number of plans
    /// the portal offers now.
    pub(crate) async fn portal_answer(
        &self,
        project: &ProjectId,
        mode: Mode,
        set: Option<CancelMode>,
    ) -> Result<PortalAnswer, ChatError> {
        let before = self.portal_settings(project, mode).await?;
        let changed = set.is_some_and(|m| m != cancel_mode(&before));
        if let Some(m) = set.filter(|_| changed) {
            self.inner
                .store
                .write(vec![ExtraWrite::PutPortalSettings {
                    project_id: project.clone(),
                    mode,
                    cancel_mode: Some(m.as_str().to_owned()),
                    proof_secret: before.proof_secret.clone(),
                }])
                .await?;
        }
        let config = self
            .wanted_portal(project, mode, set.unwrap_or(cancel_mode(&before)))
            .await?;
        Ok(PortalAnswer {
            cancel_mode: config.cancel_mode,
            changed,
            plans: config.products.iter().map(|p| p.prices.len()).sum(),
        })
    }

    async fn wanted_portal(
        &self,
        project: &ProjectId,
        mode: Mode,
        cancel: CancelMode,
    ) -> Result<PortalConfig, ChatError> {
        let catalog = catalog_sync::read(&self.inner.store, project, mode, None)
            .await
            .map_err(|e| ChatError::Internal(anyhow::anyhow!(e.message)))?;
        Ok(portal_config(&catalog.shown, cancel))
    }

    /// The portal configuration to use on `account`: the stored one if it was made on that
    /// account from what the catalog and setting say now, else a new one (a stored operation).
    async fn portal_configuration(
        &self,
        p: &ProjectRecord,
        account: &str,
    ) -> Result<String, ChatError> {
        let row = self.portal_settings(&p.id, p.mode).await?;
        let wanted = self.wanted_portal(&p.id, p.mode, cancel_mode(&row)).await?;
        let json = serde_json::to_string(&wanted).map_err(anyhow::Error::new)?;
        if let Some(id) = &row.configuration_id
            && row.account_id.as_deref() == Some(account)
            && row.configuration.as_deref() == Some(json.as_str())
        {
            return Ok(id.clone());
        }
        let version = row.version + 1;
        let key = format!(
            "chatpay:{}:portal_config:{}:v{version}",
            p.id,
            p.mode.as_str()
        );
        let write = StripeWrite::PortalConfiguration {
            account: account.to_owned(),
            config: wanted,
            version,
        };
        let answer = self.stripe_write(p, &key, &write, Vec::new()).await?;
        answer["configuration"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ChatError::Internal(anyhow::anyhow!("no configuration in {answer}")))
    }

    /// The subscriptions of `email` in the project's mode, newest first.
    async fn subscriptions_of(
        &self,
        p: &ProjectRecord,
        email: &str,
    ) -> Result<Vec<Subscription>, ChatError> {
        self.inner
            .store
            .subscriptions(
                &p.id,
                p.mode,
                &SubscriptionFilter {
                    customer_email: Some(email.to_lowercase()),
                    limit: 100,
                    ..SubscriptionFilter::default()
                },
            )
            .await?
            .iter()
            .map(subscription_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ChatError::Internal(anyhow::anyhow!(e.message)))
    }

    /// A billing portal session for `email` (a subscriber of the project in its mode, as
    /// Stripe's customer of their newest subscription); answers its URL.
    pub(crate) async fn portal_link(
        &self,
        p: &ProjectRecord,
        account: &str,
        email: &str,
        return_url: Option<&str>,
        key: &str,
    ) -> Result<String, ChatError> {
        let subs = self.subscriptions_of(p, email).await?;
        let customer = rules::portal_customer(email, &subs)?;
        let configuration = self.portal_configuration(p, account).await?;
        let write = StripeWrite::PortalSession {
            account: account.to_owned(),
            customer,
            configuration,
            return_url: return_url.map(str::to_owned),
        };
        let answer = self.stripe_write(p, key, &write, Vec::new()).await?;
        answer["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ChatError::Internal(anyhow::anyhow!("no url in {answer}")))
    }

    /// The change to `wanted` for `email`'s newest live subscription (or subscription `id`),
    /// checked by `rules::plan_change`, with Stripe's preview of a change made now.
    pub(crate) async fn plan_offer(
        &self,
        p: &ProjectRecord,
        account: &str,
        sub: &Subscription,
        wanted: &PlanWanted,
    ) -> Result<PlanOffer, ChatError> {
        let who = sub.email_or_customer().to_owned();
        let catalog = catalog_sync::read(&self.inner.store, &p.id, p.mode, None)
            .await
            .map_err(|e| ChatError::Internal(anyhow::anyhow!(e.message)))?;
        let Some(to) = wanted_plan(&catalog.shown, sub, wanted) else {
            let what = match (&wanted.product, &wanted.interval) {
                (Some(n), Some(i)) => {
                    format!("{} plan of {n}", chatpay_core::billing::every(i, 1))
                }
                (Some(n), None) => format!("plan called {n}"),
                (None, Some(i)) => format!(
                    "{} price of {}",
                    chatpay_core::billing::every(i, 1),
                    sub.items.first().map(|i| i.label()).unwrap_or_default()
                ),
                (None, None) => "such plan".to_owned(),
            };
            return Err(ChatError::Rejected {
                code: "no_such_plan",
                message: format!(
                    "Your catalog has no {what} (in {}) to move {who} to. Add the price in Stripe (it reaches the catalog by itself, or say \"sync my products\"), then ask again.",
                    sub.currency.as_str().to_uppercase()
                ),
            });
        };
        let change = rules::plan_change(sub, &to)?;
        let preview = match change.timing {
            PlanTiming::Now => Some(
                self.inner
                    .gateway
                    .preview_plan_change(p.mode, account, &change, now_millis() / 1000)
                    .await
                    .map_err(gateway_error)?,
            ),
            PlanTiming::AtPeriodEnd => None,
        };
        Ok(PlanOffer {
            customer: who,
            change,
            preview,
        })
    }

    /// The newest subscription of `email` that a plan change could apply to (else the newest).
    pub(crate) async fn subscription_for_plan(
        &self,
        p: &ProjectRecord,
        email: &str,
    ) -> Result<Subscription, ChatError> {
        let subs = self.subscriptions_of(p, email).await?;
        subs.iter()
            .find(|s| !s.status.is_final())
            .or(subs.first())
            .cloned()
            .ok_or_else(|| {
                ChatError::NotFound(format!("{email} has no subscription in this project."))
            })
    }

    /// Makes a confirmed plan change (a stored operation under `key`).
    pub(crate) async fn change_plan(
        &self,
        p: &ProjectRecord,
        account: &str,
        change: &PlanChange,
        proration_date: Option<i64>,
        key: &str,
    ) -> Result<(), ChatError> {
        let write = StripeWrite::PlanChange {
            account: account.to_owned(),
            change: change.clone(),
            proration_date,
        };
        self.stripe_write(p, key, &write, Vec::new()).await?;
        Ok(())
    }

    /// The project as a call made in `mode` sees it.
    pub(super) async fn project_in(
        &self,
        project: &ProjectId,
        mode: Mode,
    ) -> Result<ProjectRecord, ChatError> {
        let p = self
            .inner
            .store
            .project(project)
            .await?
            .ok_or_else(|| ChatError::NotFound(format!("no project {project}")))?;
        Ok(ProjectRecord { mode, ..p })
    }
}

/// The longest a customer proof may be valid for, in seconds (30 days).
pub const PROOF_MAX_AGE: i64 = 30 * 86_400;

/// What a builder's server signs to let a static page ask for a customer's portal link:
/// hex(HMAC-SHA256(proof secret, "{expires}.{project}.{email}")), `email` lowercase.
pub fn customer_proof(secret: &str, project: &str, email: &str, expires: i64) -> String {
    let payload = format!("{project}.{}", email.to_lowercase());
    let header = chatpay_stripe::webhook::sign(payload.as_bytes(), secret, expires);
    header
        .split_once(",v1=")
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

impl Engine {
    /// A portal link asked for over HTTP: with an API token (`proof` `None`), or with the
    /// publishable key and a customer proof `(proof, expires)` the builder's server signed.
    pub(crate) async fn portal_session(
        &self,
        p: &ProjectRecord,
        email: &str,
        return_url: Option<&str>,
        proof: Option<(&str, i64)>,
        key: Option<&str>,
    ) -> Result<String, ChatError> {
        if let Some((proof, expires)) = proof {
            let now = now_millis() / 1000;
            let forbidden = |message: &str| ChatError::Forbidden {
                code: "bad_customer_proof",
                message: message.to_owned(),
            };
            if expires <= now {
                return Err(forbidden("the customer proof has expired: sign a new one"));
            }
            if expires > now + PROOF_MAX_AGE {
                return Err(forbidden(
                    "the customer proof's `expires` is more than 30 days away",
                ));
            }
            let secret = self.portal_settings(&p.id, p.mode).await?.proof_secret;
            let want = customer_proof(&secret, p.id.as_str(), email, expires);
            let same = want.len() == proof.len()
                && want
                    .bytes()
                    .zip(proof.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            if !same {
                return Err(forbidden(
                    "the customer proof does not match this project, email and expiry",
                ));
            }
        }
        let account = self.billing_account(p).await?;
        let email = email.to_lowercase();
        let key = match key {
            Some(k) => format!("chatpay:{}:portal_session:{email}:key:{k}", p.id),
            None => format!("chatpay:{}:portal_session:{email}:{}", p.id, random_hex(8)),
        };
        self.portal_link(p, &account, &email, return_url, &key)
            .await
    }

    /// What moving subscription `id` to `wanted` would do and cost now (HTTP).
    pub(crate) async fn plan_preview(
        &self,
        p: &ProjectRecord,
        id: &str,
        wanted: &PlanWanted,
    ) -> Result<PlanOffer, ChatError> {
        let sub = self.subscription(p, id).await?;
        let account = self.billing_account(p).await?;
        self.plan_offer(p, &account, &sub, wanted).await
    }

    /// Moves subscription `id` to `wanted` (HTTP): checked again by the rule, made as a stored
    /// operation keyed by the caller's `Idempotency-Key`, or by the subscription's stored
    /// version and the new price. `proration_date`: the preview's, so Stripe charges what it
    /// showed.
    pub(crate) async fn change_plan_http(
        &self,
        p: &ProjectRecord,
        id: &str,
        wanted: &PlanWanted,
        proration_date: Option<i64>,
        key: Option<&str>,
    ) -> Result<PlanChange, ChatError> {
        let record = self.subscription_record(p, id).await?;
        let record_version = record.version;
        let sub = subscription_of(&record)
            .map_err(|e| ChatError::Internal(anyhow::anyhow!(e.message)))?;
        let account = self.billing_account(p).await?;
        let catalog = catalog_sync::read(&self.inner.store, &p.id, p.mode, None)
            .await
            .map_err(|e| ChatError::Internal(anyhow::anyhow!(e.message)))?;
        let to = wanted_plan(&catalog.shown, &sub, wanted).ok_or_else(|| ChatError::Rejected {
            code: "no_such_plan",
            message: "the catalog has no such plan in the subscription's currency".to_owned(),
        })?;
        let change = rules::plan_change(&sub, &to)?;
        let key = match key {
            Some(k) => format!("chatpay:{}:plan:{id}:{}:key:{k}", p.id, to.price),
            None => format!("chatpay:{}:plan:{id}:{}:v{record_version}", p.id, to.price),
        };
        self.change_plan(p, &account, &change, proration_date, &key)
            .await?;
        Ok(change)
    }
}
