//! What the go-live checklist needs, gathered for the pure flow (`Call::CheckLive`): the live
//! connection's account read again from Stripe with the live key (a stored snapshot may be
//! days old), the stored live catalog, whether the webhook ledger holds a signed live event
//! about that account, and whether a live key is configured. The flow's `checklist` decides
//! what passes; this only reads.

use chatpay_core::domain::{Mode, ProjectId};
use chatpay_core::flows::{CallError, LiveFacts};
use chatpay_store::DynStore;
use chatpay_stripe::Gateway;

pub(super) async fn check(
    store: &DynStore,
    gateway: &dyn Gateway,
    project: &ProjectId,
) -> Result<LiveFacts, CallError> {
    let storage = |e: chatpay_store::StoreError| {
        tracing::error!(error = %e, "reading the go-live checklist's rows failed");
        CallError {
            message: "the stored data couldn't be read".to_owned(),
            code: None,
        }
    };
    let connection = store
        .connection(project, Mode::Live)
        .await
        .map_err(storage)?;
    let account = match &connection {
        None => None,
        Some(c) => Some(
            gateway
                .retrieve_account(Mode::Live, &c.account_id)
                .await
                .map_err(|e| {
                    tracing::warn!(account = %c.account_id, error = %e, "go-live: reading the live account failed");
                    e.user_message()
                }),
        ),
    };
    let catalog = super::catalog_sync::read(store, project, Mode::Live, None).await?;
    let catalog = catalog.synced_at.map(|_| (catalog.total, catalog.sellable));
    let signed_live_event = match &connection {
        Some(c) => store
            .has_event_for(&c.account_id, true)
            .await
            .map_err(storage)?,
        None => false,
    };
    Ok(LiveFacts {
        account,
        catalog,
        signed_live_event,
        live_key: gateway.has_key(Mode::Live),
    })
}
