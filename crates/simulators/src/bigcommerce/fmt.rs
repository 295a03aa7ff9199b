//! The vendor's value formats: money as four-decimal strings, dates as RFC 2822, and
//! the date formats its filters accept (RFC 2822, ISO 8601, plain dates, epoch seconds).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// `336.32` -> `"336.3200"`.
pub(crate) fn money(v: f64) -> String {
    let v = (v * 10_000.0).round() / 10_000.0;
    let v = if v == 0.0 { 0.0 } else { v };
    format!("{v:.4}")
}

/// Parses a money value as the vendor accepts it: a JSON number or a decimal string.
pub(crate) fn parse_money(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Epoch seconds -> `Wed, 10 Jan 2018 21:05:30 +0000`.
pub(crate) fn rfc2822(ts: i64) -> String {
    DateTime::<Utc>::from_timestamp(ts, 0).unwrap_or_default().to_rfc2822()
}

/// Epoch seconds -> `2018-01-10T21:05:30Z`.
pub(crate) fn iso8601(ts: i64) -> String {
    DateTime::<Utc>::from_timestamp(ts, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn now() -> i64 {
    Utc::now().timestamp()
}

/// Parses a date filter value into epoch seconds.
///
/// Accepts RFC 2822 (`Thu, 20 Apr 2017 11:32:00 -0400`), ISO 8601 / RFC 3339
/// (`2017-04-20T11:32:00.000-04:00`, `2017-04-20T11:32:00Z`, `2017-04-20T11:32:00`),
/// a plain date (`2017-04-20`, midnight UTC) and epoch seconds. A `+` that arrived
/// unencoded in a query string (and so was decoded to a space) is tolerated.
pub(crate) fn parse_date(raw: &str) -> Option<i64> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) && s.len() >= 9 {
        return s.parse().ok();
    }
    if let Some(t) = try_parse(s) {
        return Some(t);
    }
    // `... 11:32:00 0400` or `2017-04-20T11:32:00 04:00`: a decoded `+`.
    if let Some(pos) = s.rfind(' ') {
        let (head, tail) = s.split_at(pos);
        if tail[1..].bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            let fixed = if head.starts_with(|c: char| c.is_ascii_digit()) {
                format!("{head}+{}", &tail[1..])
            } else {
                format!("{head} +{}", &tail[1..])
            };
            return try_parse(&fixed);
        }
    }
    None
}

fn try_parse(s: &str) -> Option<i64> {
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.timestamp());
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc().timestamp());
        }
    }
    if let Ok(d) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z") {
        return Some(d.timestamp());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(money(336.32), "336.3200");
        assert_eq!(money(0.0), "0.0000");
        assert_eq!(money(-0.00001), "0.0000");
        assert_eq!(rfc2822(1_515_618_330), "Wed, 10 Jan 2018 21:05:30 +0000");
        assert_eq!(iso8601(1_515_618_330), "2018-01-10T21:05:30Z");
    }

    #[test]
    fn parses_the_vendor_date_forms() {
        let t = 1_492_702_320; // 2017-04-20T15:32:00Z
        assert_eq!(parse_date("Thu, 20 Apr 2017 11:32:00 -0400"), Some(t));
        assert_eq!(parse_date("Thu, 20 Apr 2017 15:32:00 +0000"), Some(t));
        assert_eq!(parse_date("Thu, 20 Apr 2017 15:32:00 0000"), Some(t));
        assert_eq!(parse_date("2017-04-20T11:32:00.000-04:00"), Some(t));
        assert_eq!(parse_date("2017-04-20T15:32:00Z"), Some(t));
        assert_eq!(parse_date("2017-04-20T15:32:00 00:00"), Some(t));
        assert_eq!(parse_date("2017-04-20T15:32:00"), Some(t));
        assert_eq!(parse_date("2017-04-20"), Some(t - 15 * 3600 - 32 * 60));
        assert_eq!(parse_date("1492702320"), Some(t));
        assert_eq!(parse_date("yesterday"), None);
    }
}
