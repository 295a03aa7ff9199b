//! When to retry a vendor call and how long to wait first.
//!
//! Pure functions of the method, the outcome, the attempt number and the vendor's
//! headers, so the schedule can be tested without a clock. Backoff is exponential
//! with *full jitter* (a uniform draw in `[0, min(cap, base * 2^n)]`), which spreads
//! the retries of many callers instead of synchronising them; a wait the vendor asks
//! for is a floor.
//!
//! What the vendor asks for is read with the element's throttle dialect
//! ([`Throttle`]: its "slow down" statuses and the headers naming waits, in seconds,
//! milliseconds, epoch or HTTP dates): [`throttle_pause`] makes one wait of whatever
//! an answer says, falling back to the vendor's documented window.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method};
use switchyard_elements::{Throttle, WaitHeader, WaitUnit};

use crate::client::{VendorError, VendorResponse};

/// How a vendor call is retried. Every field is configurable so tests can be fast.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The backoff scale: the n-th retry draws from `[0, base_delay * 2^n]`.
    pub base_delay: Duration,
    /// Upper bound of the drawn backoff.
    pub max_backoff: Duration,
    /// The longest wait the vendor may ask for before a retry; when it asks for more, the
    /// call gives up at once and answers (retrying sooner would only be refused again).
    /// Also the longest a call waits for its instance's pause to end before it starts.
    pub max_vendor_wait: Duration,
    /// Time one platform request may spend on vendor calls, waits and retries included;
    /// a wait that would pass it is not made and the last answer stands.
    pub call_budget: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 250 ms base, backoff up to 8 s, vendor waits up to 30 s (BigCommerce's
    /// whole quota window, so a throttled store is waited out, not failed), 60 s per request.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_vendor_wait: Duration::from_secs(30),
            call_budget: Duration::from_secs(60),
        }
    }
}

/// Statuses worth another attempt for an idempotent call.
const RETRY_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// GET, HEAD, PUT and DELETE: sending them twice does what sending them once does.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS)
}

/// Whether `outcome` of a call with `method` should be tried again (attempts aside).
///
/// Idempotent calls: 429, 502, 503, 504 and connection failures (nothing was sent or
/// the connection broke). Other methods only on 429, the one answer that says the
/// vendor did not process the request.
pub fn should_retry(method: &Method, outcome: &Result<VendorResponse, VendorError>) -> bool {
    let idempotent = is_idempotent(method);
    match outcome {
        Ok(r) if r.status == 429 => true,
        Ok(r) => idempotent && RETRY_STATUSES.contains(&r.status),
        Err(VendorError::Connect(_)) | Err(VendorError::Protocol(_)) => idempotent,
        // A timeout already used the whole per-request allowance; a refusal, a body too
        // large or an exhausted quota will not change on a second try.
        Err(_) => false,
    }
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

/// Longest wait read from a header; anything beyond is a vendor bug, not a plan.
const HEADER_WAIT_LIMIT: f64 = 24.0 * 3600.0;

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.min(HEADER_WAIT_LIMIT))
}

/// The wait one header names, read in its unit from `now`; `None` when the header is
/// absent or does not read in that unit. An instant already past is a zero wait.
pub fn header_wait(headers: &HeaderMap, wait: &WaitHeader, now: SystemTime) -> Option<Duration> {
    let until_epoch = |since_epoch: f64| {
        let ends = SystemTime::UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(since_epoch).ok()?)?;
        Some(seconds(ends.duration_since(now).unwrap_or_default().as_secs_f64()))
    };
    match wait.unit {
        WaitUnit::Seconds => header_number(headers, &wait.header).map(seconds),
        WaitUnit::Milliseconds => header_number(headers, &wait.header).map(|ms| seconds(ms / 1000.0)),
        WaitUnit::EpochSeconds => until_epoch(header_number(headers, &wait.header)?),
        WaitUnit::EpochMilliseconds => until_epoch(header_number(headers, &wait.header)? / 1000.0),
        WaitUnit::HttpDate => {
            let ends = httpdate::parse_http_date(headers.get(wait.header.as_str())?.to_str().ok()?.trim()).ok()?;
            Some(seconds(ends.duration_since(now).unwrap_or_default().as_secs_f64()))
        }
    }
}

/// The waits of the dialect's limits that the answer reports used up (`remaining` 0):
/// each its `reset`, else its own window; the longest. `None` when no limit is used
/// up, or none of those names a wait.
fn used_up(throttle: &Throttle, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    throttle
        .limits
        .iter()
        .filter(|l| header_number(headers, &l.remaining).is_some_and(|left| left < 1.0))
        .filter_map(|l| {
            let reset = l.reset.as_ref().and_then(|r| header_wait(headers, r, now));
            reset.or(l.window_seconds.map(|s| seconds(s as f64)))
        })
        .max()
}

/// The longest of the dialect's `retryAfter` waits the answer sends.
pub fn retry_after_wait(throttle: &Throttle, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    throttle.retry_after.iter().filter_map(|w| header_wait(headers, w, now)).max()
}

/// The longest wait the answer's headers name in the dialect: its `retryAfter`
/// headers and every limit's `reset`, whatever remains. `None` when it names none.
pub fn named_wait(throttle: &Throttle, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let resets = throttle.limits.iter().filter_map(|l| l.reset.as_ref());
    throttle.retry_after.iter().chain(resets).filter_map(|w| header_wait(headers, w, now)).max()
}

/// How long the instance should pause after an answer with `status` and `headers`.
///
/// A throttled answer (a status of the dialect, 429 always): the longest of its
/// `retryAfter` waits and of its used-up limits' waits; if it names none, the
/// longest `reset` it sends; if none, the dialect's documented window. Never
/// `None`: a vendor that says "slow down" without saying for how long is waited
/// out for its window, not hammered after a short backoff.
///
/// Any other answer: the wait of a limit it reports used up (its `reset`, else
/// its window), `None` while every limit has calls left.
pub fn throttle_pause(throttle: &Throttle, status: u16, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let used = used_up(throttle, headers, now);
    if !throttle.is_throttle(status) {
        return used;
    }
    let asked = retry_after_wait(throttle, headers, now).into_iter().chain(used).max();
    Some(asked.or_else(|| named_wait(throttle, headers, now)).unwrap_or(seconds(throttle.window_seconds as f64)))
}

/// The wait the vendor asks for in the default dialect ([`Throttle::default`]), if
/// any: the longest of `X-Retry-After`, `Retry-After` (seconds or an HTTP date) and
/// `X-Rate-Limit-Time-Reset-Ms`.
pub fn vendor_wait(headers: &HeaderMap) -> Option<Duration> {
    named_wait(&Throttle::default(), headers, SystemTime::now())
}

/// When the answer says the quota is used up (`X-Rate-Limit-Requests-Left: 0`), how long
/// until it refills (`X-Rate-Limit-Time-Reset-Ms`). `None` while requests are left or
/// the vendor sends no such headers (the default dialect's limit has no window).
pub fn quota_reset(headers: &HeaderMap) -> Option<Duration> {
    used_up(&Throttle::default(), headers, SystemTime::now())
}

impl RetryPolicy {
    /// The ceiling of the n-th retry's backoff (n from 0): `min(max_backoff, base * 2^n)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.base_delay.saturating_mul(factor).min(self.max_backoff)
    }

    /// The n-th retry's backoff for a uniform draw `unit` in `[0, 1)`.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        self.backoff_ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before the n-th retry: the jittered backoff, but never less than what
    /// the vendor asked for in `headers`. `None` (give up) when the vendor asks for more
    /// than `max_vendor_wait`.
    pub fn delay(&self, retry: u32, unit: f64, headers: Option<&HeaderMap>) -> Option<Duration> {
        self.delay_for(retry, unit, headers.and_then(vendor_wait))
    }

    /// [`RetryPolicy::delay`] with the vendor's wait already read (`asked`, e.g. a
    /// [`throttle_pause`]).
    pub fn delay_for(&self, retry: u32, unit: f64, asked: Option<Duration>) -> Option<Duration> {
        let backoff = self.backoff(retry, unit);
        match asked {
            Some(asked) if asked > self.max_vendor_wait => None,
            Some(asked) => Some(asked.max(backoff)),
            None => Some(backoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn answer(status: u16) -> Result<VendorResponse, VendorError> {
        Ok(VendorResponse { status, headers: HeaderMap::new(), body: Bytes::new() })
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_inside() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_vendor_wait: Duration::from_secs(30),
            call_budget: Duration::from_secs(60),
        };
        let ceilings: Vec<u64> = (0..6).map(|n| p.backoff_ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_millis(1000), "no overflow");
        assert_eq!(p.backoff(2, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(2, 7.0), Duration::from_millis(400), "draw clamped to 1");
        for n in 0..8 {
            for i in 0..20 {
                let d = p.backoff(n, i as f64 / 20.0);
                assert!(d <= p.backoff_ceiling(n));
            }
        }
    }

    #[test]
    fn the_vendor_wait_is_the_longer_header() {
        assert_eq!(vendor_wait(&headers(&[("x-retry-after", "2")])), Some(Duration::from_secs(2)));
        assert_eq!(
            vendor_wait(&headers(&[("x-retry-after", "1"), ("x-rate-limit-time-reset-ms", "1500")])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            vendor_wait(&headers(&[("x-retry-after", "3"), ("x-rate-limit-time-reset-ms", "1500")])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(vendor_wait(&headers(&[("retry-after", "4")])), Some(Duration::from_secs(4)));
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(vendor_wait(&headers(&[("x-retry-after", "1e300")])), Some(day), "bounded");
        for junk in ["-1", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "NaN", "inf"] {
            assert_eq!(vendor_wait(&headers(&[("x-retry-after", junk)])), None, "{junk}");
        }
        assert_eq!(vendor_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn delay_is_at_least_what_the_vendor_asked() {
        let p = RetryPolicy::default();
        let h = headers(&[("x-retry-after", "1"), ("x-rate-limit-time-reset-ms", "2500")]);
        assert_eq!(p.delay(0, 0.99, Some(&h)), Some(Duration::from_millis(2500)));
        // A backoff longer than the asked wait wins.
        let p = RetryPolicy { base_delay: Duration::from_secs(4), ..RetryPolicy::default() };
        assert_eq!(p.delay(1, 1.0, Some(&h)), Some(Duration::from_secs(8)));
        assert_eq!(p.delay(1, 0.5, None), Some(Duration::from_secs(4)));
        // Asked for more than the documented maximum: give up rather than retry early.
        let h = headers(&[("x-retry-after", "31")]);
        assert_eq!(p.delay(0, 0.5, Some(&h)), None);
        let h = headers(&[("x-retry-after", "30")]);
        assert_eq!(p.delay(0, 0.0, Some(&h)), Some(Duration::from_secs(30)));
    }

    #[test]
    fn quota_reset_only_when_nothing_is_left() {
        let h = headers(&[("x-rate-limit-requests-left", "0"), ("x-rate-limit-time-reset-ms", "740")]);
        assert_eq!(quota_reset(&h), Some(Duration::from_millis(740)));
        // One call left is not used up: it may still be made.
        for left in ["3", "1"] {
            let h = headers(&[("x-rate-limit-requests-left", left), ("x-rate-limit-time-reset-ms", "740")]);
            assert_eq!(quota_reset(&h), None, "{left} left");
        }
        assert_eq!(quota_reset(&headers(&[("x-rate-limit-requests-left", "0")])), None);
        let h = headers(&[("x-rate-limit-requests-left", "0"), ("x-rate-limit-time-reset-ms", "90000")]);
        assert_eq!(quota_reset(&h), Some(Duration::from_secs(90)), "the truth, not clamped: the pause is real");
    }

    /// BigCommerce's dialect as `elements/bigcommerce.yaml` declares it.
    fn bigcommerce() -> Throttle {
        switchyard_elements::Catalog::builtin().get("bigcommerce").unwrap().throttle().clone()
    }

    fn keap() -> Throttle {
        switchyard_elements::Catalog::builtin().get("infusionsoftcrm").unwrap().throttle().clone()
    }

    #[test]
    fn waits_are_read_in_their_units() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let read = |unit, value: &str| {
            let w = WaitHeader { header: "X-Wait".into(), unit };
            header_wait(&headers(&[("x-wait", value)]), &w, now)
        };
        assert_eq!(read(WaitUnit::Seconds, "2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(read(WaitUnit::Milliseconds, "740"), Some(Duration::from_millis(740)));
        assert_eq!(read(WaitUnit::EpochSeconds, "1800000030"), Some(Duration::from_secs(30)));
        assert_eq!(read(WaitUnit::EpochMilliseconds, "1800000001500"), Some(Duration::from_millis(1500)));
        assert_eq!(read(WaitUnit::EpochSeconds, "1700000000"), Some(Duration::ZERO), "a past instant waits for nothing");
        assert_eq!(read(WaitUnit::HttpDate, "Fri, 15 Jan 2027 08:01:00 GMT"), Some(Duration::from_secs(60)));
        assert_eq!(read(WaitUnit::HttpDate, "15"), None);
        assert_eq!(read(WaitUnit::Seconds, "Fri, 15 Jan 2027 08:01:00 GMT"), None);
        assert_eq!(read(WaitUnit::EpochMilliseconds, "soon"), None);
    }

    #[test]
    fn a_throttled_answer_pauses_for_what_it_says_or_the_window() {
        let now = SystemTime::now();
        let bc = bigcommerce();
        // 429 with X-Retry-After and a reset: the longer.
        let h = headers(&[("x-retry-after", "3"), ("x-rate-limit-requests-left", "0"), ("x-rate-limit-time-reset-ms", "4500")]);
        assert_eq!(throttle_pause(&bc, 429, &h, now), Some(Duration::from_millis(4500)));
        // A legacy store's 509: no wait named, the used-up limit's window (an hour rolling by the minute).
        assert_eq!(throttle_pause(&bc, 509, &headers(&[("x-bc-apilimit-remaining", "0")]), now), Some(Duration::from_secs(60)));
        // A bare 429 or 509: the documented window, not a short backoff.
        assert_eq!(throttle_pause(&bc, 429, &HeaderMap::new(), now), Some(Duration::from_secs(30)));
        assert_eq!(throttle_pause(&bc, 509, &HeaderMap::new(), now), Some(Duration::from_secs(30)));
        // A 429 whose limits still show calls left names its reset anyway.
        let h = headers(&[("x-rate-limit-requests-left", "35"), ("x-rate-limit-time-reset-ms", "15000")]);
        assert_eq!(throttle_pause(&bc, 429, &h, now), Some(Duration::from_secs(15)));
        // A 509 is no "slow down" for an element that does not declare it.
        assert_eq!(throttle_pause(&Throttle::default(), 509, &HeaderMap::new(), now), None);
        assert_eq!(throttle_pause(&Throttle::default(), 429, &HeaderMap::new(), now), Some(Duration::from_secs(60)));
    }

    #[test]
    fn other_answers_pause_only_when_a_limit_is_used_up() {
        let now = SystemTime::now();
        let bc = bigcommerce();
        assert_eq!(throttle_pause(&bc, 200, &headers(&[("x-bc-apilimit-remaining", "17")]), now), None);
        assert_eq!(throttle_pause(&bc, 200, &headers(&[("x-bc-apilimit-remaining", "0")]), now), Some(Duration::from_secs(60)));
        let h = headers(&[("x-rate-limit-requests-left", "0"), ("x-rate-limit-time-reset-ms", "1200")]);
        assert_eq!(throttle_pause(&bc, 200, &h, now), Some(Duration::from_millis(1200)));
        // Keap: the daily quota until its expiry; the per-minute throttle for its minute.
        let k = keap();
        let expiry = (now + Duration::from_secs(3600)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis().to_string();
        let h = headers(&[("x-keap-product-quota-available", "0"), ("x-keap-product-quota-expiry-time", &expiry), ("x-keap-product-throttle-available", "1400")]);
        let pause = throttle_pause(&k, 200, &h, now).unwrap();
        assert!(pause > Duration::from_secs(3599) && pause <= Duration::from_secs(3600), "{pause:?}");
        // The quota's expiry is not a wait while calls are left: a throttle 429 waits its minute.
        let h = headers(&[("x-keap-product-quota-available", "149000"), ("x-keap-product-quota-expiry-time", &expiry), ("x-keap-product-throttle-available", "0")]);
        assert_eq!(throttle_pause(&k, 429, &h, now), Some(Duration::from_secs(60)));
        assert_eq!(throttle_pause(&k, 200, &h, now), Some(Duration::from_secs(60)));
    }

    #[test]
    fn which_outcomes_are_retried() {
        for m in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
            for s in [429, 502, 503, 504] {
                assert!(should_retry(&m, &answer(s)), "{m} {s}");
            }
            for s in [200, 204, 400, 401, 404, 409, 422, 500, 501] {
                assert!(!should_retry(&m, &answer(s)), "{m} {s}");
            }
            assert!(should_retry(&m, &Err(VendorError::Connect("refused".into()))));
            assert!(!should_retry(&m, &Err(VendorError::Timeout)));
            assert!(!should_retry(&m, &Err(VendorError::TooLarge(1))));
        }
        for m in [Method::POST, Method::PATCH] {
            assert!(should_retry(&m, &answer(429)), "{m} 429: the vendor did not process it");
            for s in [502, 503, 504, 500] {
                assert!(!should_retry(&m, &answer(s)), "{m} {s}");
            }
            assert!(!should_retry(&m, &Err(VendorError::Connect("reset".into()))));
        }
    }
}
