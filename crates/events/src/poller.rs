//! Polling: each enabled instance's resources are listed through the element's
//! own hub list calls, and new or changed records become events.
//!
//! Per instance and resource the database keeps a high-water mark (the latest
//! vendor update date seen). A poll asks for records changed since the mark less
//! an overlap window (clocks of vendor and server disagree; vendor dates may have
//! second resolution), and the (object id, updated date) pairs already turned into
//! events inside that window are remembered, so a record is announced once per
//! change, across restarts. A poll's events, its pairs and the new mark are
//! written in one transaction: a crash before it repeats the poll, after it
//! repeats nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone, Utc};
use rand::Rng;
use serde::Deserialize;
use serde_json::Value;
use switchyard_store::{InstanceRow, NewEvent, PollCandidate};
use tokio::sync::Semaphore;

use crate::config::{EventConfig, VendorType};
use crate::datefmt::{parse_zone, JavaDateFormat, Zone};
use crate::message::{new_event_id, notified_event};
use crate::{iso_ms, now_ms, Context, EventWaker, EventsError};

/// One page of a hub list.
#[derive(Debug, Clone, Default)]
pub struct HubPage {
    pub records: Vec<Value>,
    /// The `Elements-Next-Page-Token` of the answer, when another page exists.
    pub next_page: Option<String>,
    /// When the hub path names a transformed object (a common resource), the
    /// vendor's records `records` were mapped from, in the same order: kept as
    /// the events' `providerData`. Empty otherwise (`providerData` is the record).
    pub vendor_records: Vec<Value>,
}

/// A hub list that failed: the status and message a hub caller would have seen.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the hub list answered {status}: {message}")]
pub struct HubError {
    pub status: u16,
    pub message: String,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// What [`HubLister::list_page`] returns.
pub type BoxFutureHub<'a> = BoxFuture<'a, Result<HubPage, HubError>>;

/// Hub list calls on behalf of an instance. The engine implements it (below), so
/// polling gets the element's paging, CEQL translation and rate limit handling;
/// tests stand in a vendor of their own.
pub trait HubLister: Send + Sync + 'static {
    /// One page of `GET {path}` (a hub path such as `/hubs/ecommerce/orders`) for
    /// the instance, with the query parameters a hub caller would send (`where`,
    /// `pageSize`, `nextPage`, ...), already decoded.
    fn list_page<'a>(
        &'a self,
        instance: &'a InstanceRow,
        path: &'a str,
        query: &'a [(String, String)],
    ) -> BoxFutureHub<'a>;

    /// One record, `GET /hubs/{hub}/{object}/{id}`, for the delivery worker to enrich
    /// a vendor webhook's event with; `Ok(None)` when the vendor has no such record.
    fn get_record<'a>(
        &'a self,
        organization_id: i64,
        instance_id: i64,
        object: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, HubError>>;

    /// The zone in which the instance's vendor writes dates without an offset (the
    /// account's own: Keap's), `None` when its dates carry their offset.
    fn account_zone<'a>(&'a self, _instance: &'a InstanceRow) -> BoxFuture<'a, Result<Option<Zone>, HubError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The engine lists and reads for the poller and the delivery worker, exactly as
/// a hub caller's `GET /hubs/...` would (the trait stays as the seam tests use).
impl HubLister for switchyard_engine::Engine {
    fn list_page<'a>(&'a self, instance: &'a InstanceRow, path: &'a str, query: &'a [(String, String)]) -> BoxFutureHub<'a> {
        Box::pin(async move {
            let page = switchyard_engine::Engine::list_page(self, instance, path, query).await.map_err(hub_error)?;
            Ok(HubPage { records: page.records, next_page: page.next_page, vendor_records: page.vendor_records })
        })
    }

    fn get_record<'a>(
        &'a self,
        organization_id: i64,
        instance_id: i64,
        object: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, HubError>> {
        Box::pin(async move {
            switchyard_engine::Engine::get_record(self, organization_id, instance_id, object, id).await.map_err(hub_error)
        })
    }

    fn account_zone<'a>(&'a self, instance: &'a InstanceRow) -> BoxFuture<'a, Result<Option<Zone>, HubError>> {
        Box::pin(async move { switchyard_engine::Engine::account_zone(self, instance).await.map_err(hub_error) })
    }
}

/// An engine error as the poller and the delivery worker report it.
fn hub_error(e: switchyard_engine::EngineError) -> HubError {
    HubError {
        status: e.status.as_u16(),
        message: match e.provider_message {
            Some(p) => format!("{} ({p})", e.message),
            None => e.message,
        },
    }
}

#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// How often the scheduler claims due polls, and looks at the instances it was
    /// told changed (see [`ScheduleWaker`]).
    pub tick: Duration,
    /// How often the scheduler looks at every instance that wants events for
    /// changes nobody told it of (another process on the same SQLite file): it
    /// reads each one's `updated_at`, and opens the configuration of those new or
    /// changed since its last look.
    pub sweep: Duration,
    /// Due polls claimed per statement, the earliest due first; at most this many
    /// claimed polls wait for a free slot (the rest stay due, for other nodes).
    pub claim_batch: usize,
    /// How far before the high-water mark each poll looks again.
    pub overlap: Duration,
    /// Hub page size asked for.
    pub page_size: u32,
    /// Polls running at once; each instance polls at most once at a time.
    pub concurrency: usize,
    /// Pages read per resource and poll at most: a longer listing goes on at the
    /// next poll where it stopped (kept in the database), and the mark moves only
    /// once it was read to its end.
    pub max_pages: u32,
}

impl Default for PollerSettings {
    fn default() -> Self {
        PollerSettings {
            tick: Duration::from_secs(1),
            sweep: Duration::from_secs(10),
            claim_batch: 256,
            overlap: Duration::from_secs(120),
            page_size: 200,
            concurrency: 16,
            max_pages: 500,
        }
    }
}

// ---- the poller configuration ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpec {
    url: String,
    #[serde(default = "default_id_field")]
    id_field: String,
    #[serde(default)]
    dates_configuration: Option<DatesSpec>,
}

fn default_id_field() -> String {
    "id".to_owned()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DatesSpec {
    updated_date_field: String,
    updated_date_format: String,
    #[serde(default)]
    updated_date_timezone: Option<String>,
    #[serde(default)]
    created_date_field: Option<String>,
    #[serde(default)]
    created_date_format: Option<String>,
    #[serde(default)]
    created_date_timezone: Option<String>,
}

/// Where a record keeps one of its dates, and how it is written.
#[derive(Debug, Clone)]
pub struct DateField {
    pub field: String,
    pub format: JavaDateFormat,
    /// The configured zone (`updatedDateTimezone`); `None`: the account's (see
    /// [`DateField::read`]).
    pub zone: Option<Zone>,
}

impl DateField {
    fn new(field: &str, format: &str, zone: Option<&str>) -> Result<DateField, String> {
        Ok(DateField {
            field: field.to_owned(),
            format: JavaDateFormat::new(format).map_err(|e| e.to_string())?,
            zone: zone.map(parse_zone).transpose().map_err(|e| e.to_string())?,
        })
    }

    /// The record's date in epoch milliseconds. Numbers are epoch seconds or
    /// milliseconds (told apart by size). Text without an offset is read in the
    /// configured zone, else in `account` (the vendor account's own, Keap's), else UTC.
    pub fn read(&self, record: &Value, account: Option<Zone>) -> Option<i64> {
        let zone = self.zone.or(account).unwrap_or(Zone::UTC);
        match lookup(record, &self.field)? {
            Value::String(s) => self.format.parse(s, zone).ok().map(|t| t.timestamp_millis()),
            Value::Number(n) => n.as_i64().map(|v| if v < 100_000_000_000 { v * 1000 } else { v }),
            _ => None,
        }
    }
}

/// One resource of `event.poller.configuration`.
#[derive(Debug, Clone)]
pub struct ResourcePoll {
    /// The key in the configuration: the `objectType` of its events.
    pub name: String,
    /// The hub path of the `url`.
    pub path: String,
    /// The `url`'s query, decoded, placeholders not yet replaced.
    pub query: Vec<(String, String)>,
    pub id_field: String,
    pub updated: Option<DateField>,
    pub created: Option<DateField>,
    /// `updatedDateTimezone` when the configuration names one: `${date:...}` is
    /// rendered in it (else in the account's zone, else the server's).
    pub zone: Option<Zone>,
}

/// Parses `event.poller.configuration`; every problem is named (the key is the
/// caller's to add).
pub fn parse_poller_configuration(text: &str) -> Result<Vec<ResourcePoll>, String> {
    let specs: BTreeMap<String, ResourceSpec> = serde_json::from_str(text).map_err(|e| {
        format!(
            "expected {{\"<resource>\": {{\"url\": \"/hubs/...\", \"idField\": ..., \"datesConfiguration\": {{...}}}}, ...}}: {e}"
        )
    })?;
    specs
        .into_iter()
        .map(|(name, spec)| {
            let (path, query) = spec.url.split_once('?').unwrap_or((spec.url.as_str(), ""));
            if !path.starts_with("/hubs/") {
                return Err(format!("{name}: url must be a hub path (/hubs/...), not '{path}'"));
            }
            let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            // Placeholders are checked now, so a bad one fails loudly before any call.
            for (_, v) in &query {
                render_placeholders(v, Utc::now(), None).map_err(|e| format!("{name}: {e}"))?;
            }
            let zone = match spec.dates_configuration.as_ref().and_then(|d| d.updated_date_timezone.as_deref()) {
                Some(z) => Some(parse_zone(z).map_err(|e| format!("{name}: {e}"))?),
                None => None,
            };
            let (updated, created) = match &spec.dates_configuration {
                None => (None, None),
                Some(d) => {
                    let updated = DateField::new(&d.updated_date_field, &d.updated_date_format, d.updated_date_timezone.as_deref())
                        .map_err(|e| format!("{name}: {e}"))?;
                    let created = match &d.created_date_field {
                        None => None,
                        Some(field) => Some(
                            DateField::new(
                                field,
                                d.created_date_format.as_deref().unwrap_or(&d.updated_date_format),
                                d.created_date_timezone.as_deref().or(d.updated_date_timezone.as_deref()),
                            )
                            .map_err(|e| format!("{name}: {e}"))?,
                        ),
                    };
                    (Some(updated), created)
                }
            };
            Ok(ResourcePoll { name, path: path.to_owned(), query, id_field: spec.id_field, updated, created, zone })
        })
        .collect()
}

/// Replaces `${date:FORMAT}` (in `zone`: the zone the resource's dates are read in,
/// configured or the vendor account's own; else the server's local zone, as Java's
/// default), `${gmtDate:FORMAT}` (UTC), `${epoch}` (milliseconds, as Java's
/// `currentTimeMillis`), `${epoch:s}` (seconds) and `${epoch:ms}` with `since`.
/// A vendor that writes zoneless local times (Keap) is then asked for changes
/// since the same wall-clock time its records carry.
pub fn render_placeholders(text: &str, since: DateTime<Utc>, zone: Option<Zone>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed placeholder in '{text}'"))?;
        let inner = &after[..end];
        let value = match inner {
            "epoch" | "epoch:ms" => since.timestamp_millis().to_string(),
            "epoch:s" => since.timestamp().to_string(),
            _ => match inner.split_once(':') {
                Some(("date", fmt)) => {
                    let format = JavaDateFormat::new(fmt).map_err(|e| e.to_string())?;
                    match zone {
                        Some(zone) => format.format(&zone.at(since)),
                        None => format.format(&since.with_timezone(&Local)),
                    }
                }
                Some(("gmtDate", fmt)) => JavaDateFormat::new(fmt).map_err(|e| e.to_string())?.format(&since),
                _ => return Err(format!("unknown placeholder '${{{inner}}}' (known: date:FORMAT, gmtDate:FORMAT, epoch, epoch:s)")),
            },
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A value at a dotted path of a record.
fn lookup<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    record.get(path).or_else(|| path.split('.').try_fold(record, |v, k| v.get(k)))
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// ---- the poller ----

/// Where a listing cut short by [`PollerSettings::max_pages`] goes on; kept with the
/// mark (`event_poll_marks.resume`) as JSON.
#[derive(Debug, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resume {
    /// The hub's `nextPage` token of the first page not read.
    next_page: Option<String>,
    /// Epoch ms: the window's start the listing was asked with (its query is
    /// rendered from it again).
    since: i64,
    /// Epoch ms: the latest update date read so far, capped at the clock (the next
    /// mark, but no later than `started`).
    latest: i64,
    /// Epoch ms: when the listing began.
    started: i64,
    /// What was listed (the hub path, the url's query before its placeholders are
    /// rendered, the page size): a position is only good for the same listing, so
    /// one kept from before a change of the configuration or of the page size is
    /// dropped (the listing starts again from the mark).
    listing: String,
}

/// What a [`Resume`] was taken in (see [`Resume::listing`]).
fn listing_of(res: &ResourcePoll, page_size: u32) -> String {
    serde_json::json!([res.path, res.query, page_size]).to_string()
}

/// Polls instances on schedule. Cheap to clone.
#[derive(Clone)]
pub struct Poller {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Context,
    lister: Arc<dyn HubLister>,
    settings: PollerSettings,
    waker: Option<EventWaker>,
    schedule: ScheduleWaker,
}

/// Tells the poller's scheduler which instances were written (their row or
/// configuration) or deleted, so their polling schedule follows at its next tick
/// rather than at its next sweep. The server calls it after its own writes, and
/// for the writes other nodes announce. Cheap to clone; take the poller's
/// ([`Poller::schedule_waker`]): a default one tells nobody.
#[derive(Clone, Default)]
pub struct ScheduleWaker(Arc<ScheduleNews>);

#[derive(Default)]
struct ScheduleNews {
    changed: std::sync::Mutex<HashSet<i64>>,
    everything: AtomicBool,
}

impl ScheduleWaker {
    /// The instance was written or deleted.
    pub fn changed(&self, instance_id: i64) {
        self.0.changed.lock().unwrap_or_else(|e| e.into_inner()).insert(instance_id);
    }

    /// Any instance may have changed (another node's announcements were missed):
    /// every configuration is opened again at the next tick.
    pub fn changed_all(&self) {
        self.0.everything.store(true, Ordering::Release);
    }

    /// What was told since the last call: the instances, and whether it was all.
    fn take(&self) -> (HashSet<i64>, bool) {
        let changed = std::mem::take(&mut *self.0.changed.lock().unwrap_or_else(|e| e.into_inner()));
        (changed, self.0.everything.swap(false, Ordering::AcqRel))
    }
}

/// Configurations opened per look at most; the rest wait for the next tick, so
/// due polls are claimed meanwhile when many instances are new at once (a start,
/// a bulk import).
const OPENS_PER_LOOK: usize = 500;

/// What the scheduler knows of the instances that want events, as of its last
/// look; when a poll is due is the database's (see [`Poller::run`]).
#[derive(Default)]
struct Schedule {
    known: HashMap<i64, Known>,
    /// Instances that cannot poll, with the reason last recorded on them (so it is
    /// written when it changes, not at every look). They are opened again at
    /// every sweep.
    cannot_poll: HashMap<i64, String>,
    /// Instances told of, not opened since.
    told: HashSet<i64>,
    /// Whether the last look left configurations to open (the next tick goes on).
    unfinished: bool,
    /// Whether every instance has been opened once (the first time, the turns and
    /// marks of instances no longer polling are forgotten).
    complete: bool,
}

struct Known {
    /// The instance's `updated_at` when its configuration was opened; empty: to
    /// be opened again.
    updated_at: String,
    /// Whether it polls (its marks and turn are kept).
    polling: bool,
}

/// What opening one instance's configuration made of its schedule.
enum Scheduled {
    Polling,
    /// Events by vendor webhook: nothing to poll.
    NotPolling,
    /// Its configuration cannot be read or polling cannot start (recorded on it).
    CannotPoll,
    /// The schedule could not be written: try again at the next look.
    Retry,
}

/// The instances this node is polling (or about to); an id leaves when its
/// task ends, however it ends.
type Running = Arc<std::sync::Mutex<HashSet<i64>>>;

struct RunningGuard(Running, i64);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.1);
    }
}

impl Poller {
    /// `waker` is told when a poll stored events (the delivery worker's).
    pub fn new(ctx: Context, lister: Arc<dyn HubLister>, settings: PollerSettings, waker: Option<EventWaker>) -> Poller {
        Poller { inner: Arc::new(Inner { ctx, lister, settings, waker, schedule: ScheduleWaker::default() }) }
    }

    /// What tells this poller's scheduler of instance writes.
    pub fn schedule_waker(&self) -> ScheduleWaker {
        self.inner.schedule.clone()
    }

    /// Polls every configured resource of one instance now, starting the marks it
    /// lacks (whatever its event settings: a tool for tests and operators, not the
    /// schedule's path). Returns the events stored.
    /// One failing resource does not stop the others; the first error is returned
    /// after all were tried. The outcome is recorded on the instance (see
    /// [`Poller::record`]).
    pub async fn poll_instance(&self, instance: &InstanceRow) -> Result<usize, EventsError> {
        let result = self.poll_all(instance).await;
        self.record(instance.id, &instance.element_key, result.as_ref().err().map(EventsError::reason)).await;
        result
    }

    /// The poll of a claimed turn. An instance whose configuration no longer polls
    /// (webhook events) is taken off the schedule instead.
    async fn poll_due(&self, instance: &InstanceRow) {
        let ctx = &self.inner.ctx;
        let def = ctx.catalog.get(&instance.element_key).cloned();
        let result = match EventConfig::load(ctx, def.as_deref(), instance.id).await {
            Ok(cfg) if cfg.vendor_type != VendorType::Polling => {
                if let Err(e) = ctx.store.forget_polls(&[instance.id]).await {
                    tracing::warn!(instance = instance.id, error = %e, "taking an instance that no longer polls off the schedule failed");
                }
                // Its configuration may have turned back to polling since it was
                // read: the next look opens it again and reschedules it if so.
                self.inner.schedule.changed(instance.id);
                return;
            }
            Ok(cfg) => self.poll_configured(instance, &cfg).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::debug!(instance = instance.id, error = %e, "poll ended with an error");
        }
        self.record(instance.id, &instance.element_key, result.as_ref().err().map(EventsError::reason)).await;
    }

    /// The outcome of a poll of `instance` (`failure`: why it failed), as the user
    /// and the operator see it: on the instance (`GET /instances/{id}` shows the
    /// latest) and in `switchyard_event_polls_total{element,outcome}`.
    async fn record(&self, instance_id: i64, element_key: &str, failure: Option<String>) {
        let outcome = if failure.is_some() { "failed" } else { "ok" };
        metrics::counter!("switchyard_event_polls_total", "element" => element_key.to_owned(), "outcome" => outcome).increment(1);
        if let Err(e) = self.inner.ctx.store.record_poll(instance_id, now_ms(), failure.is_none(), failure.as_deref()).await {
            tracing::warn!(instance = instance_id, error = %e, "recording the poll outcome failed");
        }
    }

    /// Polls every configured resource, first starting the marks not started yet
    /// (asked for directly, not by the schedule, which starts them itself).
    async fn poll_all(&self, instance: &InstanceRow) -> Result<usize, EventsError> {
        let ctx = &self.inner.ctx;
        let def = ctx.catalog.get(&instance.element_key).cloned();
        let cfg = EventConfig::load(ctx, def.as_deref(), instance.id).await?;
        self.start_marks(instance.id, &cfg).await?;
        self.poll_configured(instance, &cfg).await
    }

    async fn poll_configured(&self, instance: &InstanceRow, cfg: &EventConfig) -> Result<usize, EventsError> {
        let resources = self.resources(instance.id, cfg)?;
        // A vendor that writes zoneless local times (Keap) is asked, and read, in its
        // account's zone wherever the configuration names none: read once per poll.
        let account = match resources.iter().find(|r| r.zone.is_none()) {
            Some(res) => self
                .inner
                .lister
                .account_zone(instance)
                .await
                .map_err(|source| EventsError::Hub { resource: res.name.clone(), source })?,
            None => None,
        };
        let mut stored = 0;
        let mut first_error = None;
        for res in &resources {
            match self.poll_resource(instance, res, account).await {
                Ok(n) => stored += n,
                Err(e) => {
                    tracing::warn!(instance = instance.id, resource = %res.name, error = %e, "poll failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        if stored > 0 {
            if let Some(w) = &self.inner.waker {
                w.wake();
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(stored),
        }
    }

    /// Records and logs, once per reason (not at every tick), that `instance`
    /// cannot poll.
    async fn cannot_poll(&self, recorded: &mut HashMap<i64, String>, instance_id: i64, element_key: &str, what: &str, e: EventsError) {
        let reason = e.reason();
        if recorded.get(&instance_id) != Some(&reason) {
            tracing::warn!(instance = instance_id, error = %e, "{what}");
            self.record(instance_id, element_key, Some(reason.clone())).await;
            recorded.insert(instance_id, reason);
        }
    }

    fn resources(&self, instance_id: i64, cfg: &EventConfig) -> Result<Vec<ResourcePoll>, EventsError> {
        let text = cfg.poller_configuration.as_deref().ok_or_else(|| EventsError::Config {
            instance: instance_id,
            message: "no event.poller.configuration (and the element has no default)".into(),
        })?;
        let mut resources = parse_poller_configuration(text).map_err(|e| EventsError::Config {
            instance: instance_id,
            message: format!("configuration '{}' is not valid: {e}", crate::config::POLLER_CONFIGURATION),
        })?;
        if let Some(objects) = &cfg.objects {
            resources.retain(|r| objects.contains(&r.name));
        }
        Ok(resources)
    }

    /// Starts the marks of a newly seen instance at now, so it announces changes
    /// from the moment events were turned on (marks kept from before a restart stay).
    async fn start_marks(&self, instance_id: i64, cfg: &EventConfig) -> Result<(), EventsError> {
        let now = now_ms();
        for res in self.resources(instance_id, cfg)? {
            self.inner.ctx.store.poll_mark(instance_id, &res.name, now).await?;
        }
        Ok(())
    }

    /// One poll of one resource; `account` is the zone the vendor writes zoneless
    /// dates in (see [`HubLister::account_zone`]), used where `res` names none.
    /// A resource whose mark is not started is not polled (0): its polling was turned
    /// off meanwhile (the marks were forgotten, and must stay so), or it is new in
    /// the configuration and the schedule starts it when it sees the change.
    pub async fn poll_resource(&self, instance: &InstanceRow, res: &ResourcePoll, account: Option<Zone>) -> Result<usize, EventsError> {
        let store = &self.inner.ctx.store;
        let settings = &self.inner.settings;
        let now = now_ms();
        let Some(position) = store.started_poll_position(instance.id, &res.name).await? else {
            // The next look opens the instance again: it starts the marks if it still
            // polls (a forget on another node that raced its scheduling here), and
            // leaves it if not.
            self.inner.schedule.changed(instance.id);
            return Ok(0);
        };
        // The mark never passes our clock: a record dated in the future (a vendor
        // clock ahead, or a zone read wrongly) would otherwise hide every change
        // until that time (it stays in the window, and is not announced twice).
        let high_water = position.high_water.min(now);
        // A listing the last poll cut short goes on, with the window it began with.
        // Only the same listing goes on: a position taken under another url, query or
        // page size would skip or repeat pages of this one (and the mark would pass
        // what it skipped).
        let this_listing = listing_of(res, settings.page_size);
        let resumed = position
            .resume
            .as_deref()
            .and_then(|text| serde_json::from_str::<Resume>(text).ok())
            .filter(|r| r.listing == this_listing);
        let goes_on = resumed.is_some();
        let mut listing = resumed.unwrap_or(Resume {
            next_page: None,
            since: high_water - settings.overlap.as_millis() as i64,
            latest: high_water,
            started: now,
            listing: this_listing,
        });
        let since = listing.since;
        let since_time = Utc.timestamp_millis_opt(since).single().unwrap_or_default();
        let mut query = Vec::with_capacity(res.query.len() + 2);
        for (k, v) in &res.query {
            let v = render_placeholders(v, since_time, res.zone.or(account))
                .map_err(|message| EventsError::Config { instance: instance.id, message })?;
            query.push((k.clone(), v));
        }
        query.push(("pageSize".to_owned(), settings.page_size.to_string()));
        let seen: HashSet<String> = store.poll_seen_ids(instance.id, &res.name).await?.into_iter().collect();

        let mut candidates = Vec::new();
        let mut unfinished = false;
        for page_number in 1..=settings.max_pages.max(1) {
            let mut q = query.clone();
            if let Some(token) = listing.next_page.take() {
                q.push(("nextPage".to_owned(), token));
            }
            let page = match self.inner.lister.list_page(instance, &res.path, &q).await {
                Ok(page) => page,
                Err(source) => {
                    // A position the vendor no longer takes (a cursor expired): the next
                    // poll lists again from the mark; the pairs remembered keep it from
                    // announcing twice. Vendor trouble (5xx, 429) keeps the position.
                    if goes_on && page_number == 1 && (400..500).contains(&source.status) && source.status != 429 {
                        tracing::warn!(instance = instance.id, resource = %res.name, error = %source, "an unfinished listing cannot go on; the next poll starts it again");
                        store.commit_poll(instance.id, &res.name, high_water, position.resume_version, None, since, &[], now).await?;
                    }
                    return Err(EventsError::Hub { resource: res.name.clone(), source });
                }
            };
            let mut vendor_records = page.vendor_records.into_iter();
            for record in page.records {
                let vendor_record = vendor_records.next();
                if let Some(c) = candidate(instance, res, account, (record, vendor_record), since, now, &seen) {
                    listing.latest = listing.latest.max(c.updated_at.min(now));
                    candidates.push(c);
                }
            }
            match page.next_page {
                Some(t) if page_number == settings.max_pages.max(1) => {
                    tracing::info!(instance = instance.id, resource = %res.name, "more changes than max_pages; the next poll goes on from here");
                    listing.next_page = Some(t);
                    unfinished = true;
                }
                Some(t) => listing.next_page = Some(t),
                None => break,
            }
        }
        if unfinished {
            // Unread pages may hold older dates: the mark stays until they are read.
            // (Strings and numbers always serialize; an empty text would only restart
            // the listing from the mark.)
            let resume = serde_json::to_string(&listing).unwrap_or_default();
            return Ok(store.commit_poll(instance.id, &res.name, high_water, position.resume_version, Some(&resume), since, &candidates, now).await?);
        }
        // Without dates the mark follows the clock (the url's placeholder filters):
        // the time the listing began. A listing read over several polls moves the
        // mark no further than when it began either: a record on a page read in an
        // earlier poll may have changed since, and the next listing, from then less
        // the overlap, reads it again (the pairs keep the rest from repeating).
        let mark = match (&res.updated, goes_on) {
            (None, _) => listing.started.max(high_water),
            (Some(_), true) => listing.latest.min(listing.started).max(high_water),
            (Some(_), false) => listing.latest,
        };
        Ok(store.commit_poll(instance.id, &res.name, mark, position.resume_version, None, since, &candidates, now).await?)
    }

    /// Runs the scheduler until `shutdown` completes. Polls run in their own tasks,
    /// so a slow vendor delays only itself.
    ///
    /// When an instance is due is kept in the database, for every server process
    /// on it (`event_poll_due`). Each tick claims up to
    /// [`PollerSettings::claim_batch`] due polls in one statement, the earliest due
    /// first, skipping the instances this node is still polling and any that is
    /// disabled, has events off or is gone (see `Store::claim_due_polls`); only the
    /// claimed instances are read and their configuration opened. So each
    /// interval's poll runs on one process, the instances of a process that died
    /// fall due for the others within one interval, and a tick with nothing due
    /// costs one indexed query whatever the number of instances.
    ///
    /// What is on the schedule follows the configuration: an instance is put on
    /// it, re-timed or taken off when its configuration is opened, which happens
    /// when it is new or its `updated_at` changed (every write of the instance or
    /// its configuration sets it). The scheduler looks at every instance at start
    /// and every [`PollerSettings::sweep`], and at the instances it was told of
    /// ([`ScheduleWaker`]: the server's own writes, and on PostgreSQL the writes
    /// other nodes announce) at the next tick, reading only theirs; the sweep finds
    /// the writes nobody announced (another process on the same SQLite file). A look opens at most 500 configurations
    /// and the next tick goes on, so due polls are claimed meanwhile (at start, with
    /// 10,000 instances, every one is opened within about 20 ticks). A change thus
    /// takes effect within a tick (1 s) when announced, within a sweep (10 s)
    /// otherwise; a claimed instance whose configuration no longer polls is taken
    /// off the schedule at once, and disabling, deleting or turning events off
    /// stops its claims at once. A configuration that cannot be read is tried
    /// again at every sweep.
    /// Instances start at a random point of their first interval (which spreads
    /// many instances out), and a new interval starts within one interval from
    /// the change; a restart keeps every turn.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let settings = &self.inner.settings;
        let mut schedule = Schedule::default();
        let running: Running = Arc::default();
        let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut swept: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(settings.tick) => {}
                _ = &mut shutdown => break,
            }
            while tasks.try_join_next().is_some() {}
            let (changed, everything) = self.inner.schedule.take();
            schedule.told.extend(changed);
            if everything {
                for known in schedule.known.values_mut() {
                    known.updated_at.clear();
                }
                schedule.complete = false;
            }
            let sweep = swept.is_none_or(|at| at.elapsed() >= settings.sweep);
            if sweep || everything || schedule.unfinished {
                let started = tokio::time::Instant::now();
                if self.look(&mut schedule, sweep, false).await && sweep {
                    swept = Some(started);
                }
            } else if !schedule.told.is_empty() {
                // Only what was told of: a trickle of writes (token refreshes, on
                // any node) costs a read of those instances, not of all of them.
                self.look(&mut schedule, false, true).await;
            }
            self.claim_due(&running, &permits, &mut tasks).await;
        }
        // Unfinished polls are dropped: nothing of theirs was committed, and the next
        // start polls again from the stored marks.
        tasks.shutdown().await;
    }

    /// Looks at the instances that want events: opens the configuration of those
    /// new or changed since the last look, or told of (and at a `sweep`, of those
    /// that could not poll), at most [`OPENS_PER_LOOK`] of them, and puts them on
    /// the schedule, re-times them or takes them off; takes the ones gone (disabled,
    /// events off, deleted) off. With `told_only`, it looks at the instances told
    /// of and no others. False when the instances could not be read.
    async fn look(&self, schedule: &mut Schedule, sweep: bool, told_only: bool) -> bool {
        let store = &self.inner.ctx.store;
        let scope: Option<HashSet<i64>> = told_only.then(|| schedule.told.clone());
        let read = match &scope {
            Some(told) => store.events_stamps_of(&told.iter().copied().collect::<Vec<_>>()).await,
            None => store.events_stamps().await,
        };
        let stamps = match read {
            Ok(stamps) => stamps,
            Err(e) => {
                tracing::warn!(error = %e, "reading instances for polling failed");
                return false;
            }
        };
        let mut present = HashSet::with_capacity(stamps.len());
        let mut todo = Vec::new();
        for stamp in stamps {
            present.insert(stamp.id);
            let stale = schedule.known.get(&stamp.id).is_none_or(|k| k.updated_at != stamp.updated_at);
            let retry = sweep && schedule.cannot_poll.contains_key(&stamp.id);
            if stale || retry || schedule.told.contains(&stamp.id) {
                todo.push(stamp);
            }
        }
        schedule.unfinished = todo.len() > OPENS_PER_LOOK;
        // Off the schedule: no longer polling.
        let mut forget = Vec::new();
        for stamp in todo.into_iter().take(OPENS_PER_LOOK) {
            schedule.told.remove(&stamp.id);
            let was_polling = schedule.known.get(&stamp.id).is_some_and(|k| k.polling);
            let known = match self.schedule_one(&mut schedule.cannot_poll, stamp.id, &stamp.element_key).await {
                Scheduled::Polling => Known { updated_at: stamp.updated_at, polling: true },
                Scheduled::NotPolling | Scheduled::CannotPoll => {
                    if was_polling {
                        forget.push(stamp.id);
                    }
                    Known { updated_at: stamp.updated_at, polling: false }
                }
                // Its marks stay; opened again at the next look.
                Scheduled::Retry => {
                    schedule.unfinished = true;
                    Known { updated_at: String::new(), polling: true }
                }
            };
            schedule.known.insert(stamp.id, known);
        }
        // Disabled, events off, or deleted since the last look (of those looked at).
        let gone = |id: &i64| !present.contains(id) && scope.as_ref().is_none_or(|told| told.contains(id));
        schedule.known.retain(|id, k| {
            let stays = !gone(id);
            if !stays && k.polling {
                forget.push(*id);
            }
            stays
        });
        schedule.cannot_poll.retain(|id, _| !gone(id));
        schedule.told.retain(|id| !gone(id));
        if scope.is_none() && !schedule.complete && !schedule.unfinished {
            // Every instance was opened: the turns and marks of any other (from
            // before a restart, or written by a node that has not looked yet) go.
            let keep: Vec<i64> = schedule.known.iter().filter(|(_, k)| k.polling).map(|(id, _)| *id).collect();
            match store.forget_poll_marks_except(&keep).await {
                Ok(()) => schedule.complete = true,
                Err(e) => tracing::warn!(error = %e, "forgetting poll marks failed"),
            }
        } else if let Err(e) = store.forget_polls(&forget).await {
            // A claimed turn of one of them takes it off the schedule (see `poll_due`).
            tracing::warn!(error = %e, "forgetting poll marks failed");
        }
        true
    }

    /// Opens one instance's configuration and puts it on the schedule (a new one
    /// at a random point of its first interval; a new interval within one interval
    /// from now; an unchanged one keeps its turn), or says why not.
    async fn schedule_one(&self, cannot_poll: &mut HashMap<i64, String>, instance_id: i64, element_key: &str) -> Scheduled {
        let ctx = &self.inner.ctx;
        let def = ctx.catalog.get(element_key).cloned();
        let cfg = match EventConfig::load(ctx, def.as_deref(), instance_id).await {
            Ok(c) if c.vendor_type == VendorType::Polling => c,
            Ok(_) => {
                cannot_poll.remove(&instance_id);
                return Scheduled::NotPolling;
            }
            Err(e) => {
                // Saved configuration is checked, so this is one saved before the
                // checks (or a vault that does not open it): polling stops, and the
                // instance says why.
                self.cannot_poll(cannot_poll, instance_id, element_key, "event configuration unreadable", e).await;
                return Scheduled::CannotPoll;
            }
        };
        // Marks kept from before (a restart, another node) stay.
        if let Err(e) = self.start_marks(instance_id, &cfg).await {
            self.cannot_poll(cannot_poll, instance_id, element_key, "polling cannot start", e).await;
            return Scheduled::CannotPoll;
        }
        cannot_poll.remove(&instance_id);
        let interval = cfg.refresh_interval;
        let first = now_ms() + interval.mul_f64(rand::thread_rng().gen::<f64>()).as_millis() as i64;
        match ctx.store.schedule_poll(instance_id, interval.as_millis() as i64, first).await {
            Ok(()) => Scheduled::Polling,
            Err(e) => {
                tracing::warn!(instance = instance_id, error = %e, "scheduling polls failed; trying again at the next look");
                Scheduled::Retry
            }
        }
    }

    /// Claims due polls, a batch at a time, and starts them. At most a batch of
    /// claimed polls waits for a free slot; the others stay due for other nodes.
    async fn claim_due(&self, running: &Running, permits: &Arc<Semaphore>, tasks: &mut tokio::task::JoinSet<()>) {
        let store = &self.inner.ctx.store;
        let batch = self.inner.settings.claim_batch.max(1);
        let most = self.inner.settings.concurrency.max(1) + batch;
        loop {
            let busy: Vec<i64> = running.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
            let limit = most.saturating_sub(busy.len()).min(batch);
            if limit == 0 {
                return;
            }
            let claimed = match store.claim_due_polls(now_ms(), limit, &busy).await {
                Ok(claimed) if claimed.is_empty() => return,
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due polls failed");
                    return;
                }
            };
            for &id in &claimed {
                running.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
                let guard = RunningGuard(running.clone(), id);
                let (this, permits) = (self.clone(), permits.clone());
                tasks.spawn(async move {
                    let _guard = guard;
                    let Ok(_permit) = permits.acquire().await else { return };
                    // A claimed poll may wait for a slot behind slow vendors: the
                    // instance is read when its slot comes, so one disabled, with
                    // events off or deleted meanwhile is not polled.
                    match this.inner.ctx.store.instance_by_id(id).await {
                        Ok(Some(instance)) if !instance.disabled && instance.events_enabled => this.poll_due(&instance).await,
                        Ok(_) => {}
                        Err(e) => tracing::warn!(instance = id, error = %e, "reading a claimed instance failed; its poll waits for the next turn"),
                    }
                });
            }
            if claimed.len() < limit {
                return;
            }
        }
    }
}

/// A record as an event candidate, or `None` when it is older than the window,
/// already announced, or unreadable. With the vendor's record it was mapped from
/// (a transformed object), that is the event's `providerData`.
fn candidate(
    instance: &InstanceRow,
    res: &ResourcePoll,
    account: Option<Zone>,
    (mut record, vendor_record): (Value, Option<Value>),
    since: i64,
    now: i64,
    seen: &HashSet<String>,
) -> Option<PollCandidate> {
    let Some(id) = lookup(&record, &res.id_field).and_then(id_text) else {
        tracing::warn!(instance = instance.id, resource = %res.name, field = %res.id_field, "a polled record has no id; skipped");
        return None;
    };
    let (updated_at, event_type) = match &res.updated {
        Some(field) => {
            let Some(updated) = field.read(&record, account) else {
                tracing::warn!(instance = instance.id, resource = %res.name, field = %field.field, "a polled record's updated date is unreadable; skipped");
                return None;
            };
            if updated < since {
                return None;
            }
            // Created inside the window and never announced: CREATED (so a record
            // created and then changed between two polls is announced as created).
            let created = res.created.as_ref().and_then(|f| f.read(&record, account));
            let is_new = created.is_some_and(|c| c >= since) && !seen.contains(&id);
            (updated, if is_new { "CREATED" } else { "UPDATED" })
        }
        None => {
            if seen.contains(&id) {
                return None;
            }
            (now, "CREATED")
        }
    };
    let provider_data = vendor_record.as_ref().unwrap_or(&record).to_string();
    if let Value::Object(map) = &mut record {
        map.insert("objectType".into(), Value::String(res.name.clone()));
    }
    let events = Value::Array(vec![notified_event(event_type, &res.name, &id, &iso_ms(updated_at))]);
    Some(PollCandidate {
        object_id: id,
        updated_at,
        event: NewEvent {
            event_id: new_event_id(),
            organization_id: instance.organization_id,
            instance_id: instance.id,
            element_key: instance.element_key.clone(),
            source: "polling".into(),
            status: "NEW".into(),
            event_date: iso_ms(now),
            provider_data,
            notified_data: events.to_string(),
            raw: record.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bigcommerce_default_parses_and_renders() {
        let def = switchyard_elements::Catalog::builtin();
        let bc = def.get("bigcommerce").unwrap();
        let text = bc.parameter("event.poller.configuration").unwrap().default_value.clone().unwrap();
        let resources = parse_poller_configuration(&text).unwrap();
        let names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["customers", "orders", "products"]);
        let orders = &resources[1];
        assert_eq!(orders.path, "/hubs/ecommerce/orders");
        let since = DateTime::parse_from_rfc3339("2017-04-20T11:32:00Z").unwrap().with_timezone(&Utc);
        let (k, v) = &orders.query[0];
        assert_eq!(k, "where");
        let rendered = render_placeholders(v, since, None).unwrap();
        // ${date:...} is the server's zone; the instant is the same whatever it is.
        let inner = rendered.strip_prefix("min_date_modified='").unwrap().strip_suffix('\'').unwrap();
        assert_eq!(DateTime::parse_from_rfc2822(inner).unwrap(), since);
        let record = serde_json::json!({"id": 5, "date_modified": "Thu, 20 Apr 2017 11:32:05 +0000"});
        assert_eq!(orders.updated.as_ref().unwrap().read(&record, None), Some(since.timestamp_millis() + 5000));
    }

    /// `idField` is optional, `id` by default (crates/events/README.md).
    #[test]
    fn a_resource_without_id_field_reads_its_ids_from_id() {
        let resources = parse_poller_configuration(r#"{"orders":{"url":"/hubs/ecommerce/orders"}}"#).unwrap();
        assert_eq!(resources[0].id_field, "id");
        assert!(resources[0].updated.is_none() && resources[0].created.is_none());
    }

    /// Numeric dates are epoch seconds below 10^11 (until the year 5138) and epoch
    /// milliseconds from there (1973-03-03 on), as vendors write one or the other.
    #[test]
    fn numeric_dates_are_epoch_seconds_or_milliseconds_by_size() {
        let field = DateField::new("modified", "yyyy-MM-dd", None).unwrap();
        let read = |v: Value| field.read(&serde_json::json!({ "modified": v }), None);
        assert_eq!(read(1_600_000_000.into()), Some(1_600_000_000_000));
        assert_eq!(read(1_600_000_000_123_i64.into()), Some(1_600_000_000_123));
        assert_eq!(read(99_999_999_999_i64.into()), Some(99_999_999_999_000));
        assert_eq!(read(100_000_000_000_i64.into()), Some(100_000_000_000));
        assert_eq!(read(0.into()), Some(0));
        assert_eq!(read(1.5.into()), None, "a fraction is not an epoch");
        assert_eq!(read(Value::Bool(true)), None);
        assert_eq!(read("2020-01-02".into()), Some(1_577_923_200_000));
    }

    /// A record's id is a non-empty string or a number; anything else is no id.
    #[test]
    fn ids_are_non_empty_strings_or_numbers() {
        let id = |v: Value| id_text(&v);
        assert_eq!(id("A-1".into()), Some("A-1".to_owned()));
        assert_eq!(id(42.into()), Some("42".to_owned()));
        assert_eq!(id("".into()), None);
        assert_eq!(id(Value::Null), None);
        assert_eq!(id(serde_json::json!({"id": 1})), None);
    }

    #[test]
    fn placeholders() {
        let since = DateTime::parse_from_rfc3339("2020-01-02T03:04:05.678Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            render_placeholders("a>'${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}' and b>${epoch} and c>${epoch:s}", since, None).unwrap(),
            "a>'2020-01-02T03:04:05Z' and b>1577934245678 and c>1577934245"
        );
        // A resource whose dates are read in a zone is asked in that zone's wall-clock time.
        let eastern = crate::datefmt::parse_zone("GMT-05:00").unwrap();
        assert_eq!(
            render_placeholders("LastUpdated >= '${date:yyyy-MM-dd'T'HH:mm:ss}'", since, Some(eastern)).unwrap(),
            "LastUpdated >= '2020-01-01T22:04:05'"
        );
        // An IANA zone follows daylight saving time: New York is -05:00 in January,
        // -04:00 in July (tzdb).
        let new_york = crate::datefmt::parse_zone("America/New_York").unwrap();
        let july = DateTime::parse_from_rfc3339("2020-07-02T03:04:05Z").unwrap().with_timezone(&Utc);
        let at = |t| render_placeholders("${date:yyyy-MM-dd'T'HH:mm:ss}", t, Some(new_york)).unwrap();
        assert_eq!((at(since), at(july)), ("2020-01-01T22:04:05".to_owned(), "2020-07-01T23:04:05".to_owned()));
        assert!(render_placeholders("${nope}", since, None).is_err());
        assert!(render_placeholders("${epoch", since, None).is_err());
        assert!(parse_poller_configuration(r#"{"x":{"url":"/elsewhere"}}"#).is_err());
        assert!(parse_poller_configuration(r#"{"x":{"url":"/hubs/a/b?where=d>'${date:kk}'"}}"#).is_err());
    }
}
