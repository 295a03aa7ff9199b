//! When a failed delivery is tried again.
//!
//! Cloud Elements retried attempt x after 4^x seconds, 9 attempts in all. Here the
//! unit is configurable (`base`, one second by default, so tests run in
//! milliseconds), each delay gets ±20 % jitter so a receiver that comes back is not
//! hit by every queued event in the same instant, a `Retry-After` answer pushes the
//! next attempt later (never earlier), and every delay is capped (an hour).

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The delay unit: after x failed attempts the next waits about `base * 4^x`.
    pub base: Duration,
    /// Attempts in all; after the last failure the event stays queued as `failed`.
    pub max_attempts: u32,
    /// No delay is longer, whatever the schedule or `Retry-After` says.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::from_secs(1), max_attempts: 9, max_delay: Duration::from_secs(3600) }
    }
}

/// Share of the nominal delay that jitter may add or remove.
pub const JITTER: f64 = 0.2;

impl RetryPolicy {
    /// The delay after `failed` failed attempts (from 1) before jitter: `base * 4^failed`, capped.
    pub fn nominal_delay(&self, failed: u32) -> Duration {
        let factor = 4f64.powi(failed.min(40) as i32);
        let secs = (self.base.as_secs_f64() * factor).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    /// The delay actually used: the nominal one scaled by `1 ± JITTER` (`unit` in
    /// [0, 1) picks where), at least `retry_after`, at most `max_delay`.
    pub fn delay(&self, failed: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let scale = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
        let jittered = Duration::from_secs_f64(self.nominal_delay(failed).as_secs_f64() * scale);
        jittered.max(retry_after.unwrap_or_default()).min(self.max_delay)
    }

    /// Whether no attempt is left after `failed` failures.
    pub fn exhausted(&self, failed: u32) -> bool {
        failed >= self.max_attempts
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cloud_elements_schedule() {
        let p = RetryPolicy::default();
        let nominal: Vec<u64> = (1..9).map(|x| p.nominal_delay(x).as_secs()).collect();
        assert_eq!(nominal, [4, 16, 64, 256, 1024, 3600, 3600, 3600]);
        assert!(!p.exhausted(8) && p.exhausted(9));
        // Jitter stays within ±20 % and never passes the cap.
        assert_eq!(p.delay(2, None, 0.0), Duration::from_secs_f64(16.0 * 0.8));
        assert_eq!(p.delay(2, None, 1.0), Duration::from_secs_f64(16.0 * 1.2));
        assert_eq!(p.delay(7, None, 1.0), Duration::from_secs(3600));
    }

    #[test]
    fn retry_after_only_postpones_and_is_capped() {
        let p = RetryPolicy { base: Duration::from_millis(10), ..RetryPolicy::default() };
        assert_eq!(p.delay(1, Some(Duration::from_secs(5)), 0.5), Duration::from_secs(5));
        assert_eq!(p.delay(1, Some(Duration::from_millis(1)), 0.5), Duration::from_millis(40));
        assert_eq!(p.delay(1, Some(Duration::from_secs(99_999)), 0.5), Duration::from_secs(3600));
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 01 Jan 2025 00:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Tue, 31 Dec 2024 00:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
