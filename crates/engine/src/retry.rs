//! When to retry a vendor call and how long to wait first.
//!
//! Pure functions of the method, the outcome, the attempt number and the vendor's
//! headers, so the schedule can be tested without a clock. Backoff is exponential
//! with *full jitter* (a uniform draw in `[0, min(cap, base * 2^n)]`), which spreads
//! the retries of many callers instead of synchronising them; a wait the vendor asks
//! for (`X-Retry-After`, `Retry-After`, `X-Rate-Limit-Time-Reset-Ms`) is a floor.

use std::time::Duration;

use http::{HeaderMap, Method};

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
    /// Upper bound of a wait the vendor asks for; a longer request is clamped to this.
    pub max_vendor_wait: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 250 ms base, backoff up to 8 s, vendor waits up to 30 s (BigCommerce's
    /// whole quota window, so a throttled store is waited out, not failed).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_vendor_wait: Duration::from_secs(30),
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

/// The wait the vendor asks for, if any: the longer of `X-Retry-After` / `Retry-After`
/// (seconds; an HTTP date is not honoured and falls back to backoff) and
/// `X-Rate-Limit-Time-Reset-Ms`, clamped to `max`.
pub fn vendor_wait(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let seconds = ["x-retry-after", "retry-after"]
        .iter()
        .filter_map(|n| header_number(headers, n))
        .map(|s| Duration::from_secs_f64(s.min(max.as_secs_f64())))
        .max();
    let reset = header_number(headers, "x-rate-limit-time-reset-ms")
        .map(|ms| Duration::from_secs_f64((ms / 1000.0).min(max.as_secs_f64())));
    seconds.into_iter().chain(reset).max().map(|d| d.min(max))
}

/// When the answer says the quota is used up (`X-Rate-Limit-Requests-Left: 0`), how long
/// until it refills (`X-Rate-Limit-Time-Reset-Ms`, clamped to `max`). `None` while
/// requests are left or the vendor sends no such headers.
pub fn quota_reset(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let left = header_number(headers, "x-rate-limit-requests-left")?;
    if left > 0.0 {
        return None;
    }
    let ms = header_number(headers, "x-rate-limit-time-reset-ms")?;
    Some(Duration::from_secs_f64((ms / 1000.0).min(max.as_secs_f64())))
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
    /// the vendor asked for in `headers` (clamped to `max_vendor_wait`).
    pub fn delay(&self, retry: u32, unit: f64, headers: Option<&HeaderMap>) -> Duration {
        let backoff = self.backoff(retry, unit);
        match headers.and_then(|h| vendor_wait(h, self.max_vendor_wait)) {
            Some(asked) => asked.max(backoff),
            None => backoff,
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
    fn the_vendor_wait_is_the_longer_header_and_is_clamped() {
        let max = Duration::from_secs(30);
        assert_eq!(vendor_wait(&headers(&[("x-retry-after", "2")]), max), Some(Duration::from_secs(2)));
        assert_eq!(
            vendor_wait(&headers(&[("x-retry-after", "1"), ("x-rate-limit-time-reset-ms", "1500")]), max),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            vendor_wait(&headers(&[("x-retry-after", "3"), ("x-rate-limit-time-reset-ms", "1500")]), max),
            Some(Duration::from_secs(3))
        );
        assert_eq!(vendor_wait(&headers(&[("retry-after", "4")]), max), Some(Duration::from_secs(4)));
        assert_eq!(vendor_wait(&headers(&[("x-retry-after", "86400")]), max), Some(max));
        assert_eq!(vendor_wait(&headers(&[("x-rate-limit-time-reset-ms", "999999999")]), max), Some(max));
        for junk in ["-1", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "NaN", "inf"] {
            assert_eq!(vendor_wait(&headers(&[("x-retry-after", junk)]), max), None, "{junk}");
        }
        assert_eq!(vendor_wait(&HeaderMap::new(), max), None);
    }

    #[test]
    fn delay_is_at_least_what_the_vendor_asked() {
        let p = RetryPolicy::default();
        let h = headers(&[("x-retry-after", "1"), ("x-rate-limit-time-reset-ms", "2500")]);
        assert_eq!(p.delay(0, 0.99, Some(&h)), Duration::from_millis(2500));
        // A backoff longer than the asked wait wins.
        let p = RetryPolicy { base_delay: Duration::from_secs(4), ..RetryPolicy::default() };
        assert_eq!(p.delay(1, 1.0, Some(&h)), Duration::from_secs(8));
        assert_eq!(p.delay(1, 0.5, None), Duration::from_secs(4));
    }

    #[test]
    fn quota_reset_only_when_nothing_is_left() {
        let max = Duration::from_secs(30);
        let h = headers(&[("x-rate-limit-requests-left", "0"), ("x-rate-limit-time-reset-ms", "740")]);
        assert_eq!(quota_reset(&h, max), Some(Duration::from_millis(740)));
        let h = headers(&[("x-rate-limit-requests-left", "3"), ("x-rate-limit-time-reset-ms", "740")]);
        assert_eq!(quota_reset(&h, max), None);
        assert_eq!(quota_reset(&headers(&[("x-rate-limit-requests-left", "0")]), max), None);
        let h = headers(&[("x-rate-limit-requests-left", "0"), ("x-rate-limit-time-reset-ms", "90000")]);
        assert_eq!(quota_reset(&h, max), Some(max));
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
