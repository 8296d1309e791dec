//! Projects, their Stripe connection and incoming Stripe events, as the HTTP layer asks for
//! them: the handlers translate, these decide (and only these touch the store for them).

use crate::auth::Principal;
use chatpay_core::account::AccountSnapshot;
use chatpay_core::domain::{Mode, ProjectId, now_millis};
use chatpay_core::flows::{Entry, Outside};
use chatpay_core::rules;
use chatpay_store::{ConnectionRecord, ProjectRecord, Recorded, WebhookEventRecord};
use chatpay_stripe::webhook::EventEnvelope;

use super::{ChatError, Engine, FlowView};

/// What became of a delivered Stripe event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Seen and handled before: acknowledged, nothing done again.
    Duplicate,
    /// Recorded and handled now, with what happened.
    Handled(String),
}

impl Engine {
    /// Payments need a project created with the backend (`chatpay_core::rules`, asked by the
    /// flows too).
    pub fn require_backend(project: &ProjectRecord) -> Result<(), ChatError> {
        Ok(rules::payments_allowed(project.backend)?)
    }

    /// Creates a project (test mode); with `connect_stripe`, the Stripe connection flow starts
    /// in its chat (the new-project screen's "+ -> Connect Stripe Account").
    pub async fn create_project(
        &self,
        who: &Principal,
        name: String,
        backend: bool,
        connect_stripe: bool,
    ) -> Result<(ProjectRecord, Option<FlowView>), ChatError> {
        if who.project.is_some() {
            return Err(ChatError::Forbidden {
                code: "scoped_token",
                message: "This token is for one project only; it cannot create projects."
                    .to_owned(),
            });
        }
        let project = ProjectRecord {
            id: ProjectId::generate(),
            workspace_id: who.workspace.clone(),
            token_id: who.credential.clone(),
            name,
            backend,
            mode: Mode::Test,
            created_at: now_millis(),
        };
        if connect_stripe {
            Self::require_backend(&project)?;
        }
        self.inner.store.insert_project(&project).await?;
        let view = if connect_stripe {
            Some(self.start_connect(&project, Entry::ProjectCreation).await?)
        } else {
            None
        };
        Ok((project, view))
    }

    /// Where the connected account's products are managed (Stripe's Dashboard or the
    /// sandbox's page).
    pub fn stripe_dashboard_url(&self, project: &ProjectRecord, account: &str) -> String {
        self.inner.gateway.dashboard_url(project.mode, account)
    }

    /// Whether any API token exists (a fresh database has none).
    pub async fn has_tokens(&self) -> Result<bool, ChatError> {
        Ok(self.inner.store.has_tokens().await?)
    }

    /// A new API token named `name`, returned once (stored hashed).
    pub async fn create_token(&self, name: &str) -> Result<String, ChatError> {
        Ok(crate::auth::create_token(&*self.inner.store, name).await?)
    }

    /// The projects the principal reaches: its workspace's, or a scoped token's one.
    pub async fn projects(&self, who: &Principal) -> Result<Vec<ProjectRecord>, ChatError> {
        let mut all = self.inner.store.projects_of(&who.workspace).await?;
        all.retain(|p| who.reaches(&p.workspace_id, &p.id));
        Ok(all)
    }

    pub async fn rename_project(
        &self,
        project: &ProjectRecord,
        name: &str,
    ) -> Result<(), ChatError> {
        Ok(self.inner.store.rename_project(&project.id, name).await?)
    }

    /// The project's Stripe connection in its mode, with the account as last read.
    pub async fn stripe_connection(
        &self,
        project: &ProjectRecord,
    ) -> Result<Option<(ConnectionRecord, AccountSnapshot)>, ChatError> {
        self.stripe_connection_in(project, project.mode).await
    }

    /// The project's connection in `mode` (a live account is connected while the project is
    /// still in test mode, before it goes live).
    pub async fn stripe_connection_in(
        &self,
        project: &ProjectRecord,
        mode: chatpay_core::domain::Mode,
    ) -> Result<Option<(ConnectionRecord, AccountSnapshot)>, ChatError> {
        match self.inner.store.connection(&project.id, mode).await? {
            Some(c) => {
                let account = serde_json::from_str(&c.snapshot).map_err(anyhow::Error::new)?;
                Ok(Some((c, account)))
            }
            None => Ok(None),
        }
    }

    /// The Integrations panel's Sync: starts `catalog_sync` (or joins the running one).
    pub async fn start_sync(&self, project: &ProjectRecord) -> Result<FlowView, ChatError> {
        Self::require_backend(project)?;
        if self.stripe_connection(project).await?.is_none() {
            return Err(ChatError::Conflict {
                code: "stripe_not_connected",
                message:
                    "Connect Stripe first: the catalog comes from the connected Stripe account."
                        .to_owned(),
            });
        }
        self.outside(project, Outside::StartSync).await
    }

    /// A verified Stripe event: deduplicated by id, then recorded in the ledger with its first
    /// effect, in one group-committed transaction, before this returns (so a 2xx means it is
    /// stored). One recorded but not yet applied (a crash in between) is applied now.
    pub async fn receive_event(
        &self,
        event: &EventEnvelope,
        payload: &[u8],
    ) -> Result<Received, ChatError> {
        let received = self.receive_event_once(event, payload).await;
        let outcome = match &received {
            Ok(Received::Duplicate) => "duplicate",
            Ok(Received::Handled(_)) => "applied",
            Err(_) => "failed",
        };
        metrics::counter!("chatpay_webhooks_total", "outcome" => outcome).increment(1);
        if received.is_ok() && event.created > 0 {
            let lag = (now_millis() / 1000 - event.created).max(0);
            #[allow(clippy::cast_precision_loss)] // seconds of lag: far below 2^52
            metrics::histogram!("chatpay_webhook_lag_seconds").record(lag as f64);
        }
        received
    }

    async fn receive_event_once(
        &self,
        event: &EventEnvelope,
        payload: &[u8],
    ) -> Result<Received, ChatError> {
        let store = &self.inner.store;
        let stored = store.event(&event.id).await?;
        if stored.as_ref().is_some_and(|e| e.processed_at.is_some()) {
            return Ok(Received::Duplicate);
        }
        let record = stored.is_none().then(|| WebhookEventRecord {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            account: event.account.clone(),
            livemode: event.livemode,
            created: event.created,
            payload: String::from_utf8_lossy(payload).into_owned(),
            received_at: now_millis(),
            processed_at: None,
            outcome: None,
        });
        let (outcome, recorded) = self.handle_event(event, record).await?;
        Ok(if recorded == Recorded::Duplicate && stored.is_none() {
            // A concurrent delivery recorded it first and handles it.
            Received::Duplicate
        } else {
            Received::Handled(outcome)
        })
    }

    /// Whether the database answers (and, on PostgreSQL, the listener that follows other
    /// instances' commits is connected), and which backend it is.
    pub async fn ready(&self) -> Result<&'static str, ChatError> {
        let store = &self.inner.store;
        store.ping().await?;
        if store.listener_connected() == Some(false) {
            return Err(ChatError::Internal(anyhow::anyhow!(
                "the change listener is not connected to PostgreSQL"
            )));
        }
        Ok(store.backend())
    }
}
