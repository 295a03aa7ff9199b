//! Java `SimpleDateFormat` patterns, as real poller configurations write them
//! (`EEE, dd MMM yyyy HH:mm:ss Z`, `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`), translated to
//! chrono's strftime items for formatting and parsing.
//!
//! Written by hand because no maintained crate translates Java patterns: chrono
//! speaks strftime, and the Java-pattern crates found were unmaintained or
//! formatting-only. The translator covers the letters poller configurations use
//! and refuses the others by name rather than guessing.

use chrono::format::{parse, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveTime, Offset, TimeZone, Utc};
pub use switchyard_elements::Zone;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateFormatError {
    #[error("date pattern '{pattern}': letter '{letter}' is not supported")]
    Unsupported { pattern: String, letter: char },
    #[error("date pattern '{0}' has an unclosed quote")]
    UnclosedQuote(String),
    #[error("'{text}' does not match the date pattern '{pattern}'")]
    NoMatch { text: String, pattern: String },
    #[error("unknown time zone '{0}' (use an IANA name such as America/New_York, GMT, UTC or an offset such as +02:00)")]
    Zone(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(String),
    /// A chrono strftime specifier.
    Spec(&'static str),
    /// Java `XXX`/`XX`: an ISO offset, `Z` for UTC.
    IsoOffset { colon: bool },
}

/// A compiled Java date pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaDateFormat {
    pattern: String,
    items: Vec<Item>,
}

impl JavaDateFormat {
    pub fn new(pattern: &str) -> Result<JavaDateFormat, DateFormatError> {
        let unsupported = |letter| DateFormatError::Unsupported { pattern: pattern.to_owned(), letter };
        let chars: Vec<char> = pattern.chars().collect();
        let mut items = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // '' is a quote; 'text' is literal text.
                if chars.get(i + 1) == Some(&'\'') {
                    literal.push('\'');
                    i += 2;
                    continue;
                }
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(DateFormatError::UnclosedQuote(pattern.to_owned())),
                        Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                            literal.push('\'');
                            j += 2;
                        }
                        Some('\'') => break,
                        Some(&other) => {
                            literal.push(other);
                            j += 1;
                        }
                    }
                }
                i = j + 1;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                literal.push(c);
                i += 1;
                continue;
            }
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            i += n;
            let item = match (c, n) {
                ('y', 2) => Item::Spec("%y"),
                ('y', _) => Item::Spec("%Y"),
                ('M' | 'L', 1) => Item::Spec("%-m"),
                ('M' | 'L', 2) => Item::Spec("%m"),
                ('M' | 'L', 3) => Item::Spec("%b"),
                ('M' | 'L', _) => Item::Spec("%B"),
                ('d', 1) => Item::Spec("%-d"),
                ('d', _) => Item::Spec("%d"),
                ('D', _) => Item::Spec("%j"),
                ('E', 1..=3) => Item::Spec("%a"),
                ('E', _) => Item::Spec("%A"),
                ('u', _) => Item::Spec("%u"),
                ('a', _) => Item::Spec("%p"),
                ('H', 1) => Item::Spec("%-H"),
                ('H', _) => Item::Spec("%H"),
                ('h', 1) => Item::Spec("%-I"),
                ('h', _) => Item::Spec("%I"),
                ('m', 1) => Item::Spec("%-M"),
                ('m', _) => Item::Spec("%M"),
                ('s', 1) => Item::Spec("%-S"),
                ('s', _) => Item::Spec("%S"),
                ('S', 3) => Item::Spec("%3f"),
                ('Z', _) => Item::Spec("%z"),
                ('X', 2) => Item::IsoOffset { colon: false },
                ('X', 3) => Item::IsoOffset { colon: true },
                ('G', _) => {
                    literal.push_str("AD");
                    continue;
                }
                (other, _) => return Err(unsupported(other)),
            };
            if !literal.is_empty() {
                items.push(Item::Literal(std::mem::take(&mut literal)));
            }
            items.push(item);
        }
        if !literal.is_empty() {
            items.push(Item::Literal(literal));
        }
        Ok(JavaDateFormat { pattern: pattern.to_owned(), items })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The time as the pattern writes it, in the time's own zone.
    pub fn format<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Literal(s) => out.push_str(s),
                Item::Spec(spec) => out.push_str(&t.format(spec).to_string()),
                Item::IsoOffset { colon } => {
                    let secs = t.offset().fix().local_minus_utc();
                    if secs == 0 {
                        out.push('Z');
                    } else {
                        out.push_str(&t.format(if *colon { "%:z" } else { "%z" }).to_string());
                    }
                }
            }
        }
        out
    }

    /// Reads a date written in this pattern. Without a zone in the pattern the text
    /// is read in `zone`; without a time of day, midnight.
    pub fn parse(&self, text: &str, zone: Zone) -> Result<DateTime<Utc>, DateFormatError> {
        self.parse_with_offset(text, zone).map(|t| t.with_timezone(&Utc))
    }

    /// As [`parse`](Self::parse), keeping the offset: the text's own when the
    /// pattern has one, else the offset `zone` had at that instant.
    pub fn parse_with_offset(&self, text: &str, zone: Zone) -> Result<DateTime<FixedOffset>, DateFormatError> {
        let no_match = || DateFormatError::NoMatch { text: text.to_owned(), pattern: self.pattern.clone() };
        let mut strftime = String::new();
        let mut text = text.trim().to_owned();
        for item in &self.items {
            match item {
                Item::Literal(s) => strftime.push_str(&s.replace('%', "%%")),
                Item::Spec(spec) => strftime.push_str(spec),
                Item::IsoOffset { .. } => {
                    // chrono reads no `Z` for an offset: spell it out when it ends the text.
                    if text.ends_with('Z') {
                        text.pop();
                        text.push_str("+00:00");
                    }
                    strftime.push_str("%#z");
                }
            }
        }
        let mut parsed = Parsed::new();
        parse(&mut parsed, &text, StrftimeItems::new(&strftime)).map_err(|_| no_match())?;
        let date = parsed.to_naive_date().map_err(|_| no_match())?;
        let time = if parsed.hour_div_12.is_some() || parsed.hour_mod_12.is_some() {
            parsed.to_naive_time().map_err(|_| no_match())?
        } else {
            NaiveTime::MIN
        };
        let local = date.and_time(time);
        match parsed.offset {
            Some(secs) => {
                let offset = FixedOffset::east_opt(secs).ok_or_else(no_match)?;
                offset.from_local_datetime(&local).single().ok_or_else(no_match)
            }
            // Daylight saving time as the zone follows it (skipped and repeated local
            // times: `Zone::instant`).
            None => Ok(zone.at(zone.instant(local))),
        }
    }
}

/// A `...DateTimezone` value of a dates configuration: an IANA name
/// (`America/New_York`), `GMT`, `UTC`, `Z`, or an offset (`+02:00`, `-0500`, `GMT+02:00`).
pub fn parse_zone(text: &str) -> Result<Zone, DateFormatError> {
    Zone::parse(text).ok_or_else(|| DateFormatError::Zone(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_twelve_hour_clock_without_am_pm_is_no_match_not_midnight() {
        // An hour of `h` alone (or `a` alone) does not say which half of the day:
        // the text is refused rather than read as midnight.
        for (pattern, text) in [("yyyy-MM-dd hh:mm", "2025-01-02 03:04"), ("yyyy-MM-dd a", "2025-01-02 PM")] {
            let f = JavaDateFormat::new(pattern).unwrap();
            assert_eq!(f.pattern(), pattern);
            assert!(matches!(f.parse(text, Zone::UTC), Err(DateFormatError::NoMatch { .. })), "{pattern}");
        }
        let f = JavaDateFormat::new("yyyy-MM-dd hh:mm a").unwrap();
        assert_eq!(f.parse("2025-01-02 03:04 PM", Zone::UTC).unwrap(), utc("2025-01-02T15:04:00Z"));
    }

    #[test]
    fn bigcommerce_rfc_2822() {
        let f = JavaDateFormat::new("EEE, dd MMM yyyy HH:mm:ss Z").unwrap();
        let t = utc("2017-04-20T11:32:00Z");
        assert_eq!(f.format(&t), "Thu, 20 Apr 2017 11:32:00 +0000");
        assert_eq!(f.format(&t.with_timezone(&FixedOffset::west_opt(4 * 3600).unwrap())), "Thu, 20 Apr 2017 07:32:00 -0400");
        assert_eq!(f.parse("Thu, 20 Apr 2017 07:32:00 -0400", Zone::UTC).unwrap(), t);
        let kept = f.parse_with_offset("Thu, 20 Apr 2017 07:32:00 -0400", Zone::UTC).unwrap();
        assert_eq!(kept.to_rfc3339(), "2017-04-20T07:32:00-04:00");
        let local = JavaDateFormat::new("yyyy-MM-dd HH:mm").unwrap();
        let ny = parse_zone("America/New_York").unwrap();
        assert_eq!(local.parse_with_offset("2017-04-20 07:32", ny).unwrap().to_rfc3339(), "2017-04-20T07:32:00-04:00");
    }

    #[test]
    fn quoted_literals_and_milliseconds() {
        let f = JavaDateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").unwrap();
        let t = utc("2021-03-04T05:06:07.089Z");
        assert_eq!(f.format(&t), "2021-03-04T05:06:07.089Z");
        assert_eq!(f.parse("2021-03-04T05:06:07.089Z", Zone::UTC).unwrap(), t);
        // No zone in the text: read in the configured zone.
        let plus2 = parse_zone("GMT+02:00").unwrap();
        assert_eq!(f.parse("2021-03-04T07:06:07.089Z", plus2).unwrap(), t);
        let q = JavaDateFormat::new("h 'o''clock' a, d/M/yy").unwrap();
        assert_eq!(q.format(&utc("2009-07-04T12:08:56Z")), "12 o'clock PM, 4/7/09");
    }

    #[test]
    fn iso_offsets_and_dates_alone() {
        let f = JavaDateFormat::new("yyyy-MM-dd'T'HH:mm:ssXXX").unwrap();
        let t = utc("2020-01-02T03:04:05Z");
        assert_eq!(f.format(&t), "2020-01-02T03:04:05Z");
        assert_eq!(f.format(&t.with_timezone(&FixedOffset::east_opt(5400).unwrap())), "2020-01-02T04:34:05+01:30");
        assert_eq!(f.parse("2020-01-02T03:04:05Z", Zone::UTC).unwrap(), t);
        assert_eq!(f.parse("2020-01-02T04:34:05+01:30", Zone::UTC).unwrap(), t);
        let d = JavaDateFormat::new("yyyy-MM-dd").unwrap();
        assert_eq!(d.parse("2020-01-02", Zone::UTC).unwrap(), utc("2020-01-02T00:00:00Z"));
        assert!(d.parse("02/01/2020", Zone::UTC).is_err());
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert!(matches!(JavaDateFormat::new("yyyy-MM-dd HH:mm zzz"), Err(DateFormatError::Unsupported { letter: 'z', .. })));
        assert!(matches!(JavaDateFormat::new("kk:mm"), Err(DateFormatError::Unsupported { letter: 'k', .. })));
        assert!(matches!(JavaDateFormat::new("yyyy 'T"), Err(DateFormatError::UnclosedQuote(_))));
        assert!(parse_zone("Mars/Olympus_Mons").is_err());
        assert_eq!(parse_zone("Europe/Paris").unwrap().to_string(), "Europe/Paris");
        let fixed = |secs: i32| Zone::Fixed(FixedOffset::east_opt(secs).unwrap());
        assert_eq!(parse_zone("-0500").unwrap(), fixed(-5 * 3600));
        assert_eq!(parse_zone("+05:30").unwrap(), fixed(5 * 3600 + 30 * 60));
        assert_eq!(parse_zone("GMT+2").unwrap(), fixed(2 * 3600));
        assert_eq!(parse_zone("-03").unwrap(), fixed(-3 * 3600));
        assert_eq!(parse_zone("UTC").unwrap(), Zone::UTC);
    }
}
