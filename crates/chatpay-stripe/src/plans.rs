//! The billing portal (its configuration and sessions) and plan changes (the invoice preview,
//! a subscription's price updated now, or a subscription schedule for the period's end), from
//! chatpay's plain values to Stripe's requests.

use stripe_billing::billing_portal_configuration::{
    CreateBillingPortalConfiguration, CreateBillingPortalConfigurationFeatures,
    CreateBillingPortalConfigurationFeaturesSubscriptionCancel,
    CreateBillingPortalConfigurationFeaturesSubscriptionCancelMode as CancelModeParam,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdate,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateDefaultAllowedUpdates as Allowed,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateProrationBehavior as PortalProration,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEnd as AtEnd,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEndConditions as Condition,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEndConditionsType as ConditionType,
    InvoiceListParam, PaymentMethodUpdateParam, SubscriptionUpdateProductParam,
};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::invoice::{
    CreatePreviewInvoice, CreatePreviewInvoiceSubscriptionDetails,
    CreatePreviewInvoiceSubscriptionDetailsItems,
    CreatePreviewInvoiceSubscriptionDetailsProrationBehavior,
};
use stripe_billing::subscription::{
    UpdateSubscription, UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
};
use stripe_billing::subscription_schedule::{
    CreateSubscriptionSchedule, UpdateSubscriptionSchedule, UpdateSubscriptionSchedulePhases,
    UpdateSubscriptionSchedulePhasesEndDate, UpdateSubscriptionSchedulePhasesItems,
    UpdateSubscriptionSchedulePhasesStartDate,
};

use chatpay_core::domain::{Currency, Mode, Money};
use chatpay_core::plans::{CancelMode, PlanChange, PlanPreview, PlanTiming, PortalConfig};

use super::GatewayError;
use super::client::StripeGateway;

impl StripeGateway {
    pub(crate) async fn create_portal_configuration_now(
        &self,
        mode: Mode,
        account: &str,
        config: &PortalConfig,
        key: &str,
    ) -> Result<String, GatewayError> {
        let mut features = CreateBillingPortalConfigurationFeatures::new();
        features.invoice_history = Some(InvoiceListParam::new(true));
        features.payment_method_update = Some(PaymentMethodUpdateParam {
            enabled: true,
            payment_method_configuration: None,
        });
        let mut cancel = CreateBillingPortalConfigurationFeaturesSubscriptionCancel::new(true);
        cancel.mode = Some(match config.cancel_mode {
            CancelMode::AtPeriodEnd => CancelModeParam::AtPeriodEnd,
            CancelMode::Immediately => CancelModeParam::Immediately,
        });
        features.subscription_cancel = Some(cancel);
        let mut update = CreateBillingPortalConfigurationFeaturesSubscriptionUpdate::new(
            !config.products.is_empty(),
        );
        if !config.products.is_empty() {
            update.default_allowed_updates = Some(vec![Allowed::Price]);
            update.products = Some(
                config
                    .products
                    .iter()
                    .map(|p| SubscriptionUpdateProductParam {
                        adjustable_quantity: None,
                        prices: p.prices.clone(),
                        product: p.product.clone(),
                    })
                    .collect(),
            );
            update.proration_behavior = Some(PortalProration::AlwaysInvoice);
            // A shorter interval waits for the end of the period already paid for, as
            // chatpay's own plan changes do. Not `decreasing_item_amount`: Stripe counts a
            // yearly price that is cheaper per day than the monthly one as a decrease, and a
            // subscriber moving to yearly should be moved (and charged) now.
            update.schedule_at_period_end = Some(AtEnd {
                conditions: Some(vec![Condition::new(ConditionType::ShorteningInterval)]),
            });
        }
        features.subscription_update = Some(update);
        let req = CreateBillingPortalConfiguration::new(features);
        let c = self.post_as(mode, account, &req, key).await?;
        Ok(c.id.to_string())
    }

    pub(crate) async fn create_portal_session_now(
        &self,
        mode: Mode,
        account: &str,
        customer: &str,
        configuration: &str,
        return_url: Option<&str>,
        key: &str,
    ) -> Result<String, GatewayError> {
        let mut req = CreateBillingPortalSession::new()
            .customer(customer)
            .configuration(configuration);
        if let Some(u) = return_url {
            req = req.return_url(u);
        }
        let s = self.post_as(mode, account, &req, key).await?;
        Ok(s.url)
    }

    pub(crate) async fn preview_plan_change_now(
        &self,
        mode: Mode,
        account: &str,
        change: &PlanChange,
        proration_date: i64,
    ) -> Result<PlanPreview, GatewayError> {
        let mut item = CreatePreviewInvoiceSubscriptionDetailsItems::new();
        item.id = Some(change.item.clone());
        item.price = Some(change.to.price.clone());
        let mut details = CreatePreviewInvoiceSubscriptionDetails::new();
        details.items = Some(vec![item]);
        details.proration_behavior =
            Some(CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::AlwaysInvoice);
        details.proration_date = Some(proration_date);
        let req = CreatePreviewInvoice::new()
            .subscription(change.subscription.as_str())
            .subscription_details(details);
        // A preview writes nothing: a POST without an idempotency key.
        let invoice = self.send_as(mode, account, &req).await?;
        let code = invoice.currency.to_string();
        let currency = Currency::parse(&code)
            .ok_or_else(|| GatewayError::Protocol(format!("unknown currency {code:?}")))?;
        let renews_on = invoice
            .lines
            .data
            .iter()
            .map(|l| l.period.end)
            .max()
            .unwrap_or(change.period_end);
        Ok(PlanPreview {
            charged_now: Money::new(invoice.amount_due, currency),
            renews_on,
            proration_date,
        })
    }

    /// Now: the item's price updated, prorated from `proration_date` and invoiced at once. At
    /// the period's end: a schedule from the subscription, then its phases (the current price
    /// until the period's end, the new one after). Keys `{key}`, or `{key}:schedule` and
    /// `{key}:phases`.
    pub(crate) async fn change_plan_now(
        &self,
        mode: Mode,
        account: &str,
        change: &PlanChange,
        proration_date: Option<i64>,
        key: &str,
    ) -> Result<(), GatewayError> {
        let quantity = u64::try_from(change.quantity.max(1)).unwrap_or(1);
        match change.timing {
            PlanTiming::Now => {
                let mut item = UpdateSubscriptionItems::new();
                item.id = Some(change.item.clone());
                item.price = Some(change.to.price.clone());
                let mut req = UpdateSubscription::new(change.subscription.as_str())
                    .items(vec![item])
                    .proration_behavior(UpdateSubscriptionProrationBehavior::AlwaysInvoice);
                if let Some(d) = proration_date {
                    req = req.proration_date(d);
                }
                self.post_as(mode, account, &req, key).await?;
            }
            PlanTiming::AtPeriodEnd => {
                let create = CreateSubscriptionSchedule::new()
                    .from_subscription(change.subscription.as_str());
                let schedule = self
                    .post_as(mode, account, &create, &format!("{key}:schedule"))
                    .await?;
                let start = schedule
                    .phases
                    .first()
                    .map_or(change.period_start, |p| p.start_date);
                let item = |price: &str| {
                    let mut i = UpdateSubscriptionSchedulePhasesItems::new();
                    i.price = Some(price.to_owned());
                    i.quantity = Some(quantity);
                    i
                };
                let mut now = UpdateSubscriptionSchedulePhases::new(vec![item(&change.from.price)]);
                now.start_date = Some(UpdateSubscriptionSchedulePhasesStartDate::Timestamp(start));
                now.end_date = Some(UpdateSubscriptionSchedulePhasesEndDate::Timestamp(
                    change.period_end,
                ));
                let next = UpdateSubscriptionSchedulePhases::new(vec![item(&change.to.price)]);
                let req = UpdateSubscriptionSchedule::new(schedule.id.as_str())
                    .phases(vec![now, next])
                    .end_behavior(stripe_shared::SubscriptionScheduleEndBehavior::Release);
                self.post_as(mode, account, &req, &format!("{key}:phases"))
                    .await?;
            }
        }
        Ok(())
    }
}
