//! The sandbox's state: one store per mode (test and live never see each other), ordered
//! collections with Stripe's cursor paging, and the transaction context that records events.
//!
//! All of it sits behind one `std::sync::Mutex`: every operation is a short, synchronous
//! critical section, and nothing awaits while holding it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::SandboxConfig;
use super::error::{ApiError, ApiResult};
use super::faults::{Faults, RateLimiter};
use super::form::Params;
use super::model::{Account, Price, Product};
use super::webhooks::{DeliveryAttempt, DeliveryState, Webhooks};
use crate::Mode;

/// Everything the server tasks share; handed around as [`App`].
pub(crate) struct Shared {
    pub config: SandboxConfig,
    /// `http://127.0.0.1:PORT/`
    pub base_url: String,
    pub state: Mutex<State>,
    /// Seconds added to the wall clock (test control), for expiring links without waiting.
    pub clock_offset: AtomicI64,
    /// API requests answered so far (as the Dashboard's request log would count them).
    pub api_requests: AtomicU64,
    pub faults: Mutex<Faults>,
    pub limiter: Option<Mutex<RateLimiter>>,
    pub webhooks: Webhooks,
    /// Wakes the state-file writer after a mutation.
    pub dirty: Notify,
    /// Mutations so far: each one counts one more, after it is applied.
    pub changed: AtomicU64,
    /// The count the state file holds, on disk and synced (with a state file).
    pub durable: watch::Sender<u64>,
    pub shutdown: watch::Receiver<bool>,
}

tokio::task_local! {
    /// The highest mutation count a request reached, so that its answer waits until the state
    /// file holds it (`persist::durable_answers`).
    pub(crate) static WROTE: std::cell::Cell<u64>;
}

pub(crate) type App = Arc<Shared>;

impl Shared {
    /// Locks the state. A panic while holding the lock cannot leave it half-updated in a way
    /// that matters to a sandbox, so a poisoned lock is simply taken over.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the state changed (call it after the change): the state file will be
    /// written again, and the request that made the change answers once it is on disk.
    pub fn mark_changed(&self) {
        let count = self.changed.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = WROTE.try_with(|w| w.set(w.get().max(count)));
        self.dirty.notify_one();
    }

    /// Waits until the state file holds every change up to `count` (at once without a state
    /// file).
    pub async fn wait_durable(&self, count: u64) {
        if self.config.state_file.is_none() {
            return;
        }
        let mut durable = self.durable.subscribe();
        let _ = durable.wait_for(|d| *d >= count).await;
    }

    /// The sandbox clock, Unix seconds.
    pub fn now(&self) -> i64 {
        chrono::Utc::now()
            .timestamp()
            .saturating_add(self.clock_offset.load(Ordering::Relaxed))
    }

    /// Runs `f` as one transaction, then schedules the events it recorded for delivery and
    /// marks the state for saving.
    pub fn transact<T>(
        self: &Arc<Self>,
        mode: Mode,
        request: Option<RequestInfo>,
        f: impl FnOnce(&mut Tx<'_>) -> T,
    ) -> T {
        let now = self.now();
        let out_events = {
            let mut guard = self.lock();
            let mut tx = Tx {
                st: &mut guard,
                mode,
                now,
                request,
                events: Vec::new(),
                read_only: false,
                event_time: None,
            };
            let out = f(&mut tx);
            (out, tx.events, tx.read_only)
        };
        let (out, events, read_only) = out_events;
        if !read_only {
            self.mark_changed();
        }
        if !events.is_empty() {
            super::webhooks::schedule(self, events);
        }
        out
    }
}

/// The request that caused a mutation, for `event.request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestInfo {
    pub id: String,
    pub idempotency_key: Option<String>,
}

/// Something with a Stripe id, kept in a [`Collection`].
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

/// Implements [`Keyed`] for types whose key is their `id` field.
macro_rules! keyed_by_id {
    ($($t:ty),*) => {$(
        impl $crate::state::Keyed for $t {
            fn key(&self) -> &str {
                &self.id
            }
        }
    )*};
}
pub(crate) use keyed_by_id;

keyed_by_id!(Account, Product, Price, EventRecord);

/// Objects in creation order (a global sequence number), indexed by id. Lists run newest first.
#[derive(Debug, Clone)]
pub(crate) struct Collection<T> {
    items: BTreeMap<u64, T>,
    index: HashMap<String, u64>,
}

impl<T> Default for Collection<T> {
    fn default() -> Self {
        Collection {
            items: BTreeMap::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: Serialize> Serialize for Collection<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(s)
    }
}

impl<'de, T: DeserializeOwned + Keyed> Deserialize<'de> for Collection<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = BTreeMap::<u64, T>::deserialize(d)?;
        let index = items
            .iter()
            .map(|(seq, item)| (item.key().to_owned(), *seq))
            .collect();
        Ok(Collection { items, index })
    }
}

/// `limit`, `starting_after`, `ending_before`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cursor {
    StartingAfter(String),
    EndingBefore(String),
}

impl PageRequest {
    pub fn parse(p: &Params<'_>) -> ApiResult<PageRequest> {
        let limit = match p.int("limit")? {
            None => 10,
            Some(n @ 1..=100) => n as usize,
            Some(_) => {
                return Err(ApiError::bad_param(
                    "limit",
                    "Invalid integer: limit must be between 1 and 100.",
                ));
            }
        };
        let after = p.str("starting_after")?.filter(|s| !s.is_empty());
        let before = p.str("ending_before")?.filter(|s| !s.is_empty());
        let cursor = match (after, before) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "You may only specify one of these parameters: ending_before, starting_after.",
                )
                .code("parameters_exclusive"));
            }
            (Some(a), None) => Some(Cursor::StartingAfter(a.to_owned())),
            (None, Some(b)) => Some(Cursor::EndingBefore(b.to_owned())),
            (None, None) => None,
        };
        Ok(PageRequest { limit, cursor })
    }
}

/// One page, newest first.
#[derive(Debug)]
pub(crate) struct Page<'a, T> {
    pub items: Vec<&'a T>,
    pub has_more: bool,
}

impl<T: Keyed> Collection<T> {
    pub fn insert(&mut self, seq: u64, item: T) {
        self.index.insert(item.key().to_owned(), seq);
        self.items.insert(seq, item);
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.index.get(id).and_then(|seq| self.items.get(seq))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let seq = self.index.get(id)?;
        self.items.get_mut(seq)
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        let seq = self.index.remove(id)?;
        self.items.remove(&seq)
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.values()
    }

    /// Oldest first, with the global sequence number each item was created at.
    pub fn iter_seq(&self) -> impl Iterator<Item = (u64, &T)> {
        self.items.iter().map(|(seq, item)| (*seq, item))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items.values_mut()
    }

    /// A page of the items `keep` accepts, newest first. The cursor must name an object of
    /// this collection (it need not pass the filter).
    pub fn page(
        &self,
        req: &PageRequest,
        what: &str,
        keep: impl Fn(&T) -> bool,
    ) -> ApiResult<Page<'_, T>> {
        let seq_of = |id: &str, param: &str| {
            self.index
                .get(id)
                .copied()
                .ok_or_else(|| ApiError::no_such(what, id, param).status(http_bad_request()))
        };
        match &req.cursor {
            None => Ok(Self::take(self.items.values().rev(), req.limit, &keep)),
            Some(Cursor::StartingAfter(id)) => {
                let seq = seq_of(id, "starting_after")?;
                Ok(Self::take(
                    self.items.range(..seq).rev().map(|(_, v)| v),
                    req.limit,
                    &keep,
                ))
            }
            Some(Cursor::EndingBefore(id)) => {
                let seq = seq_of(id, "ending_before")?;
                let mut page = Self::take(
                    self.items.range(seq + 1..).map(|(_, v)| v),
                    req.limit,
                    &keep,
                );
                page.items.reverse();
                Ok(page)
            }
        }
    }

    fn take<'a>(
        iter: impl Iterator<Item = &'a T>,
        limit: usize,
        keep: &impl Fn(&T) -> bool,
    ) -> Page<'a, T> {
        let mut items = Vec::with_capacity(limit.min(100));
        let mut has_more = false;
        for item in iter.filter(|i| keep(i)) {
            if items.len() == limit {
                has_more = true;
                break;
            }
            items.push(item);
        }
        Page { items, has_more }
    }
}

fn http_bad_request() -> axum::http::StatusCode {
    axum::http::StatusCode::BAD_REQUEST
}

/// A stored event: the object as it was when the event happened, and its deliveries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventRecord {
    pub id: String,
    pub created: i64,
    /// `type`, e.g. `account.updated`.
    pub kind: String,
    /// The connected account the event belongs to.
    pub account: Option<String>,
    pub object: Value,
    pub previous_attributes: Option<Value>,
    pub request: Option<RequestInfo>,
    pub delivery: DeliveryState,
    pub attempts: Vec<DeliveryAttempt>,
}

/// A catalog: the products, prices, coupons and promotion codes of the platform or of one
/// connected account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Catalog {
    pub products: Collection<Product>,
    pub prices: Collection<Price>,
    #[serde(default)]
    pub coupons: Collection<super::discounts::Coupon>,
    #[serde(default)]
    pub promotion_codes: Collection<super::discounts::PromotionCode>,
}

/// Everything of one mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ModeState {
    pub accounts: Collection<Account>,
    /// Keyed by connected account id, or [`PLATFORM`].
    pub catalogs: BTreeMap<String, Catalog>,
    pub events: Collection<EventRecord>,
    /// Checkout Sessions, payments, refunds, invoices.
    #[serde(default)]
    pub sales: super::sales::Sales,
    /// Customers, subscriptions, test clocks.
    #[serde(default)]
    pub billing: super::billing::Billing,
    /// Payouts and payout controls.
    #[serde(default)]
    pub payouts: super::payouts::Payouts,
}

/// The catalog key of the platform's own products.
pub(crate) const PLATFORM: &str = "platform";

/// An account link: single use, short-lived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccountLink {
    pub token: String,
    pub mode: Mode,
    pub account: String,
    /// `account_onboarding` or `account_update`.
    pub kind: String,
    pub refresh_url: String,
    pub return_url: String,
    pub created: i64,
    pub expires_at: i64,
    pub state: LinkState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum LinkState {
    Fresh,
    /// Opened once; the form it served carries `session`.
    Visited {
        session: String,
    },
    Completed,
}

/// An OAuth authorization code and the account the person connected.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OAuthGrant {
    pub code: String,
    pub created: i64,
    pub scope: String,
    pub account: Account,
    pub used: bool,
}

/// An OAuth access or refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenGrant {
    pub mode: Mode,
    pub account: String,
    pub scope: String,
}

/// A stored response to replay for a repeated `Idempotency-Key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdempotencyRecord {
    pub fingerprint: String,
    pub created: i64,
    pub status: u16,
    pub body: String,
    pub request_id: String,
}

/// The whole sandbox state; what the state file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub test: ModeState,
    pub live: ModeState,
    pub links: HashMap<String, AccountLink>,
    pub oauth_codes: HashMap<String, OAuthGrant>,
    pub access_tokens: HashMap<String, TokenGrant>,
    pub refresh_tokens: HashMap<String, TokenGrant>,
    pub idempotency: HashMap<String, IdempotencyRecord>,
    pub next_seq: u64,
    /// Receipt emails "sent", oldest first.
    #[serde(default)]
    pub outbox: Vec<super::sales::SentEmail>,
    /// Where the sandbox listened, so that with `keep_address` it listens there again and the
    /// URLs it gave out (checkout pages, invoices) still work after a restart.
    #[serde(default)]
    pub address: Option<std::net::SocketAddr>,
}

impl State {
    pub fn mode(&self, mode: Mode) -> &ModeState {
        match mode {
            Mode::Test => &self.test,
            Mode::Live => &self.live,
        }
    }

    pub fn mode_mut(&mut self, mode: Mode) -> &mut ModeState {
        match mode {
            Mode::Test => &mut self.test,
            Mode::Live => &mut self.live,
        }
    }

    pub fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Finds an account in either mode.
    pub fn find_account(&self, id: &str) -> Option<(Mode, &Account)> {
        [Mode::Test, Mode::Live]
            .into_iter()
            .find_map(|m| self.mode(m).accounts.get(id).map(|a| (m, a)))
    }

    /// Finds an event in either mode.
    pub fn find_event(&self, id: &str) -> Option<(Mode, &EventRecord)> {
        [Mode::Test, Mode::Live]
            .into_iter()
            .find_map(|m| self.mode(m).events.get(id).map(|e| (m, e)))
    }

    pub fn find_event_mut(&mut self, id: &str) -> Option<&mut EventRecord> {
        if self.test.events.get(id).is_some() {
            self.test.events.get_mut(id)
        } else {
            self.live.events.get_mut(id)
        }
    }

    /// Drops idempotency records older than 24 hours.
    pub fn expire_idempotency(&mut self, now: i64) {
        self.idempotency
            .retain(|_, r| now.saturating_sub(r.created) < 24 * 3600);
    }

    /// Ids of events that wait for an endpoint, oldest first.
    pub fn undelivered(&self) -> Vec<String> {
        let mut pending: Vec<(u64, String)> = [&self.test, &self.live]
            .into_iter()
            .flat_map(|m| m.events.iter_seq())
            .filter(|(_, e)| matches!(e.delivery, DeliveryState::Pending))
            .map(|(seq, e)| (seq, e.id.clone()))
            .collect();
        pending.sort();
        pending.into_iter().map(|(_, id)| id).collect()
    }

    /// After a restart nothing is in flight any more.
    pub fn reset_in_flight(&mut self) {
        for m in [&mut self.test, &mut self.live] {
            for e in m.events.iter_mut() {
                if e.delivery == DeliveryState::Retrying {
                    e.delivery = DeliveryState::Pending;
                }
            }
        }
    }
}

/// One transaction over the state in one mode; collects the events it emits.
pub(crate) struct Tx<'a> {
    pub st: &'a mut State,
    pub mode: Mode,
    pub now: i64,
    pub request: Option<RequestInfo>,
    /// Ids of the events emitted, in order.
    pub events: Vec<String>,
    /// Set by reads: nothing to save afterwards.
    pub read_only: bool,
    /// When set, events get this `created` instead of `now` (a test clock's objects live at
    /// its frozen time, their events at the sandbox's).
    pub event_time: Option<i64>,
}

impl Tx<'_> {
    pub fn ms(&mut self) -> &mut ModeState {
        self.st.mode_mut(self.mode)
    }

    pub fn livemode(&self) -> bool {
        self.mode.is_live()
    }

    /// The catalog of the platform (`None`) or of a connected account.
    pub fn catalog(&mut self, scope: Option<&str>) -> &mut Catalog {
        self.ms()
            .catalogs
            .entry(scope.unwrap_or(PLATFORM).to_owned())
            .or_default()
    }

    /// Records an event; it is delivered once the transaction commits.
    pub fn emit(
        &mut self,
        kind: &str,
        account: Option<&str>,
        object: Value,
        previous_attributes: Option<Value>,
    ) -> String {
        let id = super::ids::event();
        let seq = self.st.seq();
        let record = EventRecord {
            id: id.clone(),
            created: self.event_time.unwrap_or(self.now),
            kind: kind.to_owned(),
            account: account.map(str::to_owned),
            object,
            previous_attributes,
            request: self.request.clone(),
            delivery: DeliveryState::Pending,
            attempts: Vec::new(),
        };
        self.ms().events.insert(seq, record);
        self.events.push(id.clone());
        id
    }
}

/// `previous_attributes` of an update: for every changed field, its old value; nested hashes
/// recurse, anything else (arrays included) is reported whole. `None` when nothing changed.
pub(crate) fn previous_attributes(old: &Value, new: &Value, ignore: &[&str]) -> Option<Value> {
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return (old != new).then(|| old.clone());
    };
    let mut changed = serde_json::Map::new();
    let keys: HashSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        if ignore.contains(&key.as_str()) {
            continue;
        }
        let before = old.get(key).unwrap_or(&Value::Null);
        let after = new.get(key).unwrap_or(&Value::Null);
        if before == after {
            continue;
        }
        let diff = match (before, after) {
            (Value::Object(_), Value::Object(_)) => previous_attributes(before, after, &[]),
            _ => Some(before.clone()),
        };
        if let Some(d) = diff {
            changed.insert(key.clone(), d);
        }
    }
    (!changed.is_empty()).then_some(Value::Object(changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::Form;
    use serde_json::json;

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct Item(String);
    impl Keyed for Item {
        fn key(&self) -> &str {
            &self.0
        }
    }

    fn collection(n: u64) -> Collection<Item> {
        let mut c = Collection::default();
        for i in 1..=n {
            c.insert(i, Item(format!("it_{i}")));
        }
        c
    }

    fn page_ids(c: &Collection<Item>, query: &str) -> (Vec<String>, bool) {
        let form = Form::parse(query.as_bytes()).unwrap();
        let req = PageRequest::parse(&form.params()).unwrap();
        let page = c.page(&req, "item", |i| i.0 != "it_5").unwrap();
        (
            page.items.iter().map(|i| i.0.clone()).collect(),
            page.has_more,
        )
    }

    #[test]
    fn pages_run_newest_first_with_cursors() {
        let c = collection(12);
        let (ids, more) = page_ids(&c, "limit=3");
        assert_eq!(ids, ["it_12", "it_11", "it_10"]);
        assert!(more);
        let (ids, more) = page_ids(&c, "limit=3&starting_after=it_7");
        // it_5 is filtered out; the page skips it without losing its place.
        assert_eq!(ids, ["it_6", "it_4", "it_3"]);
        assert!(more);
        let (ids, more) = page_ids(&c, "limit=5&starting_after=it_3");
        assert_eq!(ids, ["it_2", "it_1"]);
        assert!(!more);
        let (ids, more) = page_ids(&c, "limit=2&ending_before=it_9");
        assert_eq!(ids, ["it_11", "it_10"]);
        assert!(more);
        let (ids, more) = page_ids(&c, "limit=10&ending_before=it_9");
        assert_eq!(ids, ["it_12", "it_11", "it_10"]);
        assert!(!more);
    }

    #[test]
    fn walking_all_pages_sees_every_item_once() {
        let c = collection(57);
        let mut seen = Vec::new();
        let mut query = "limit=10".to_owned();
        loop {
            let (ids, more) = page_ids(&c, &query);
            seen.extend(ids.iter().cloned());
            if !more {
                break;
            }
            query = format!("limit=10&starting_after={}", ids.last().unwrap());
        }
        assert_eq!(seen.len(), 56);
        assert_eq!(seen.first().unwrap(), "it_57");
    }

    #[test]
    fn page_requests_are_validated() {
        let parse = |q: &str| PageRequest::parse(&Form::parse(q.as_bytes()).unwrap().params());
        assert_eq!(parse("").unwrap().limit, 10);
        assert!(parse("limit=0").is_err());
        assert!(parse("limit=101").is_err());
        assert_eq!(
            parse("starting_after=a&ending_before=b").unwrap_err().code,
            Some("parameters_exclusive")
        );
        let c = collection(2);
        let req = parse("starting_after=it_404").unwrap();
        let err = c.page(&req, "item", |_| true).unwrap_err();
        assert_eq!(err.code, Some("resource_missing"));
    }

    #[test]
    fn collections_survive_a_round_trip() {
        let c = collection(3);
        let text = serde_json::to_string(&c).unwrap();
        let back: Collection<Item> = serde_json::from_str(&text).unwrap();
        assert_eq!(back.get("it_2"), Some(&Item("it_2".into())));
        assert_eq!(back.iter().count(), 3);
    }

    #[test]
    fn previous_attributes_lists_old_values_of_changed_fields() {
        let old = json!({"name": "a", "active": true, "meta": {"x": "1", "y": "2"}, "list": [1]});
        let new = json!({"name": "b", "active": true, "meta": {"x": "1", "y": "3"}, "list": [1, 2], "updated": 5});
        let prev = previous_attributes(&old, &new, &["updated"]).unwrap();
        assert_eq!(prev, json!({"name": "a", "meta": {"y": "2"}, "list": [1]}));
        assert!(previous_attributes(&old, &old, &[]).is_none());
    }
}
