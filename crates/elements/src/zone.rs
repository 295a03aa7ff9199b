//! Time zones of vendors that write dates without one. A Keap account writes every
//! date as its own local wall-clock time (`2026-03-08T01:30:00`, no offset), in the
//! zone its `Application/timezone` setting names; a poller configuration may name a
//! zone for a resource's dates (`updatedDateTimezone`).
//!
//! Conversions follow the zone's rules, daylight saving included (the IANA
//! database through `chrono-tz`). A local time the clocks skipped (02:30 on the
//! spring-forward night) is read with the offset in force before the gap, so it
//! lands just past it, as `java.time` does; a local time that happened twice (the
//! autumn hour) is read as the earlier instant.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// A zone for local times: an IANA zone or a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Fixed(FixedOffset),
    Named(Tz),
}

impl Default for Zone {
    fn default() -> Self {
        Zone::UTC
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Zone::Named(tz) => f.write_str(tz.name()),
            Zone::Fixed(o) if o.local_minus_utc() == 0 => f.write_str("UTC"),
            Zone::Fixed(o) => write!(f, "{o}"),
        }
    }
}

impl Zone {
    pub const UTC: Zone = Zone::Fixed(match FixedOffset::east_opt(0) {
        Some(o) => o,
        None => unreachable!(),
    });

    /// `GMT`, `UTC`, `Z`, an offset (`+02:00`, `-0500`, `GMT+02:00`, `-03`), or an
    /// IANA name (`America/New_York`). `None` for anything else.
    pub fn parse(text: &str) -> Option<Zone> {
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        if let Some(offset) = parse_offset(t) {
            return Some(Zone::Fixed(offset));
        }
        t.parse::<Tz>().ok().map(Zone::Named)
    }

    /// The wall-clock time of `instant` in this zone.
    pub fn local(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Fixed(o) => instant.with_timezone(o).naive_local(),
            Zone::Named(tz) => instant.with_timezone(tz).naive_local(),
        }
    }

    /// `instant` in this zone, with the offset in force then (for formatting).
    pub fn at(&self, instant: DateTime<Utc>) -> DateTime<FixedOffset> {
        match self {
            Zone::Fixed(o) => instant.with_timezone(o),
            Zone::Named(tz) => instant.with_timezone(tz).fixed_offset(),
        }
    }

    /// The instant a wall-clock time of this zone names (see the module docs for
    /// skipped and repeated local times).
    pub fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self {
            Zone::Fixed(o) => local.and_utc() - chrono::TimeDelta::seconds(i64::from(o.local_minus_utc())),
            Zone::Named(tz) => match tz.from_local_datetime(&local).earliest() {
                Some(t) => t.with_timezone(&Utc),
                None => {
                    // In a gap: the offset of a moment before it (gaps are hours long).
                    let before = local - chrono::TimeDelta::days(1);
                    let offset = tz.offset_from_utc_datetime(&before).fix().local_minus_utc();
                    local.and_utc() - chrono::TimeDelta::seconds(i64::from(offset))
                }
            },
        }
    }
}

/// `GMT`/`UTC` with an optional offset, `Z`, or a bare offset.
fn parse_offset(t: &str) -> Option<FixedOffset> {
    let rest = t.strip_prefix("GMT").or_else(|| t.strip_prefix("UTC")).unwrap_or(t);
    if rest.is_empty() || rest == "Z" {
        return Some(Utc.fix());
    }
    let sign = match rest.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        4 => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
        _ => return None,
    };
    if m >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn names_and_offsets() {
        assert_eq!(Zone::parse("UTC"), Some(Zone::UTC));
        assert_eq!(Zone::parse("GMT"), Some(Zone::UTC));
        assert_eq!(Zone::parse("Z"), Some(Zone::UTC));
        assert_eq!(Zone::parse("GMT-05:00"), Some(Zone::Fixed(FixedOffset::west_opt(5 * 3600).unwrap())));
        assert_eq!(Zone::parse("+05:30"), Some(Zone::Fixed(FixedOffset::east_opt(5 * 3600 + 1800).unwrap())));
        assert_eq!(Zone::parse("-03"), Some(Zone::Fixed(FixedOffset::west_opt(3 * 3600).unwrap())));
        assert_eq!(Zone::parse("America/New_York"), Some(Zone::Named(Tz::America__New_York)));
        assert_eq!(Zone::parse("America/New_York").unwrap().to_string(), "America/New_York");
        for bad in ["", "Mars/Olympus", "+5:7x", "GMT+1:75", "EST5EDT6", "+123"] {
            assert_eq!(Zone::parse(bad), None, "{bad}");
        }
    }

    /// New York: EST (-05:00) in winter, EDT (-04:00) in summer; in 2024 the clocks
    /// went forward at 02:00 on 10 March and back at 02:00 on 3 November (IANA tzdb).
    #[test]
    fn daylight_saving_time_is_followed() {
        let ny = Zone::parse("America/New_York").unwrap();
        assert_eq!(ny.local(utc("2024-01-15T12:00:00Z")), naive("2024-01-15T07:00:00"));
        assert_eq!(ny.local(utc("2024-07-01T12:00:00Z")), naive("2024-07-01T08:00:00"));
        assert_eq!(ny.instant(naive("2024-01-15T07:00:00")), utc("2024-01-15T12:00:00Z"));
        assert_eq!(ny.instant(naive("2024-07-01T08:00:00")), utc("2024-07-01T12:00:00Z"));
        // Skipped: 02:30 does not exist on 10 March; read as 03:30 EDT.
        assert_eq!(ny.instant(naive("2024-03-10T02:30:00")), utc("2024-03-10T07:30:00Z"));
        assert_eq!(ny.local(ny.instant(naive("2024-03-10T02:30:00"))), naive("2024-03-10T03:30:00"));
        // Repeated: 01:30 on 3 November happened at 05:30Z (EDT) and 06:30Z (EST).
        assert_eq!(ny.instant(naive("2024-11-03T01:30:00")), utc("2024-11-03T05:30:00Z"));
        assert_eq!(ny.at(utc("2024-11-03T06:30:00Z")).to_rfc3339(), "2024-11-03T01:30:00-05:00");
    }

    #[test]
    fn fixed_offsets_round_trip() {
        let z = Zone::parse("GMT+02:00").unwrap();
        assert_eq!(z.local(utc("2024-01-15T12:00:00Z")), naive("2024-01-15T14:00:00"));
        assert_eq!(z.instant(naive("2024-01-15T14:00:00")), utc("2024-01-15T12:00:00Z"));
        assert_eq!(Zone::UTC.instant(naive("2024-01-15T14:00:00")), utc("2024-01-15T14:00:00Z"));
    }
}
