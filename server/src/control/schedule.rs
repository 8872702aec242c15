//! Daily schedules, pure: given a window, a time zone and instants, what state
//! is due and which transitions lie between two instants.
//!
//! A window `on`–`off` is in local time. When `off` is earlier than `on` the
//! window crosses midnight (on at 17:00, off at 01:00). Around daylight-saving
//! changes a local time can happen twice (the earlier instant counts) or not
//! at all (the first instant after the gap counts), so every day has exactly
//! one "on" and one "off" transition.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily window of one outlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub on: NaiveTime,
    pub off: NaiveTime,
}

/// A moment at which an outlet's schedule switches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub on: bool,
}

/// Parses "HH:MM" or "HH:MM:SS" (24-hour clock).
///
/// # Errors
/// Anything else, as a message that shows the expected form.
pub fn parse_time(text: &str) -> Result<NaiveTime, String> {
    let fail = || format!("{text:?} is not a time like \"07:30\" or \"07:30:15\" (24-hour clock)");
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return Err(fail());
    }
    let mut numbers = [0u32; 3];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail());
        }
        *slot = part.parse().map_err(|_| fail())?;
    }
    NaiveTime::from_hms_opt(numbers[0], numbers[1], numbers[2]).ok_or_else(fail)
}

/// Writes a time the way [`parse_time`] reads it: seconds only when not zero.
pub fn format_time(time: NaiveTime) -> String {
    use chrono::Timelike;
    if time.second() == 0 {
        time.format("%H:%M").to_string()
    } else {
        time.format("%H:%M:%S").to_string()
    }
}

impl Window {
    /// # Errors
    /// A time that does not parse, or on and off at the same time.
    pub fn parse(on: &str, off: &str) -> Result<Self, String> {
        let window = Self {
            on: parse_time(on)?,
            off: parse_time(off)?,
        };
        if window.on == window.off {
            return Err(format!(
                "on and off are both {on}; give two different times"
            ));
        }
        Ok(window)
    }

    /// The transitions in `(from, to]`, oldest first.
    pub fn transitions(&self, tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Transition> {
        let mut found = Vec::new();
        if to <= from {
            return found;
        }
        // A local day can start up to a day away from the UTC one; look one
        // day further on each side and keep what falls in range.
        let first = from.with_timezone(&tz).date_naive() - Duration::days(1);
        let last = to.with_timezone(&tz).date_naive() + Duration::days(1);
        let mut day = first;
        while day <= last {
            for (time, on) in [(self.on, true), (self.off, false)] {
                let at = local_instant(tz, day, time);
                if at > from && at <= to {
                    found.push(Transition { at, on });
                }
            }
            day += Duration::days(1);
        }
        found.sort_by_key(|t| t.at);
        found
    }

    /// Whether the outlet should be on at `now`: the kind of the last
    /// transition at or before it.
    pub fn due(&self, tz: Tz, now: DateTime<Utc>) -> bool {
        self.transitions(tz, now - Duration::days(2), now)
            .last()
            .is_some_and(|t| t.on)
    }

    /// The first transition after `now`.
    pub fn next(&self, tz: Tz, now: DateTime<Utc>) -> Option<Transition> {
        self.transitions(tz, now, now + Duration::days(2))
            .first()
            .copied()
    }
}

/// The instant a local date and time names in `tz`.
fn local_instant(tz: Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = day.and_time(time);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap (clocks jump forward): the first local minute after it.
            // Gaps are at most a few hours, so this ends within 24 steps of 15 min.
            let mut probe = local;
            for _ in 0..24 {
                probe += Duration::minutes(15);
                let after = match tz.from_local_datetime(&probe) {
                    LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at,
                    LocalResult::None => continue,
                };
                // Step back to the exact end of the gap: the earliest instant
                // whose local time is past `local`.
                let mut at = after.with_timezone(&Utc);
                while (at - Duration::minutes(1)).with_timezone(&tz).naive_local() > local {
                    at -= Duration::minutes(1);
                }
                return at;
            }
            // No real zone has a gap this long; the UTC reading is as good as any.
            Utc.from_utc_datetime(&local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn times_parse_with_or_without_seconds() {
        assert_eq!(
            parse_time("07:30").unwrap(),
            NaiveTime::from_hms_opt(7, 30, 0).unwrap()
        );
        assert_eq!(
            parse_time("23:59:59").unwrap(),
            NaiveTime::from_hms_opt(23, 59, 59).unwrap()
        );
        for bad in [
            "7:30",
            "24:00",
            "07:60",
            "07-30",
            "",
            "07:30:00:00",
            "0a:30",
            "+7:30",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.contains("\"07:30\""), "{bad}: {err}");
        }
        assert_eq!(format_time(parse_time("07:30:00").unwrap()), "07:30");
        assert_eq!(format_time(parse_time("07:30:05").unwrap()), "07:30:05");
        assert!(Window::parse("08:00", "08:00").is_err());
    }

    #[test]
    fn a_daytime_window_in_a_time_zone() {
        let w = Window::parse("07:30", "19:00").unwrap();
        let tz = chrono_tz::Europe::Amsterdam; // UTC+1 in November
        assert!(!w.due(tz, utc("2026-11-27T06:29:59Z")));
        assert!(w.due(tz, utc("2026-11-27T06:30:00Z")));
        assert!(w.due(tz, utc("2026-11-27T17:59:59Z")));
        assert!(!w.due(tz, utc("2026-11-27T18:00:00Z")));
        assert_eq!(
            w.next(tz, utc("2026-11-27T12:00:00Z")),
            Some(Transition {
                at: utc("2026-11-27T18:00:00Z"),
                on: false
            })
        );
        assert_eq!(
            w.next(tz, utc("2026-11-27T18:00:00Z")),
            Some(Transition {
                at: utc("2026-11-28T06:30:00Z"),
                on: true
            })
        );
    }

    #[test]
    fn a_window_across_midnight() {
        let w = Window::parse("17:00", "01:00").unwrap();
        let tz = chrono_tz::UTC;
        assert!(w.due(tz, utc("2026-11-27T23:00:00Z")));
        assert!(w.due(tz, utc("2026-11-28T00:59:00Z")));
        assert!(!w.due(tz, utc("2026-11-28T01:00:00Z")));
        assert!(!w.due(tz, utc("2026-11-28T16:59:59Z")));
        assert!(w.due(tz, utc("2026-11-28T17:00:00Z")));
    }

    #[test]
    fn transitions_between_two_instants_in_order() {
        let w = Window::parse("07:00", "19:00").unwrap();
        let got = w.transitions(
            chrono_tz::UTC,
            utc("2026-11-27T12:00:00Z"),
            utc("2026-11-29T07:00:00Z"),
        );
        let want = [
            ("2026-11-27T19:00:00Z", false),
            ("2026-11-28T07:00:00Z", true),
            ("2026-11-28T19:00:00Z", false),
            ("2026-11-29T07:00:00Z", true),
        ];
        assert_eq!(
            got,
            want.map(|(at, on)| Transition { at: utc(at), on }).to_vec()
        );
        // The start is excluded, the end included.
        assert!(
            w.transitions(
                chrono_tz::UTC,
                utc("2026-11-27T19:00:00Z"),
                utc("2026-11-27T19:00:00Z")
            )
            .is_empty()
        );
    }

    #[test]
    fn daylight_saving_gaps_and_repeats() {
        let tz = chrono_tz::Europe::Amsterdam;
        // 2026-03-29: 02:00 local jumps to 03:00. An "on" at 02:30 happens at 03:00 local.
        let w = Window::parse("02:30", "05:00").unwrap();
        let on = w.next(tz, utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(
            on,
            Transition {
                at: utc("2026-03-29T01:00:00Z"),
                on: true
            }
        );
        // 2026-10-25: 03:00 local goes back to 02:00. An "on" at 02:30 counts once, the first time.
        let ons: Vec<_> = w
            .transitions(tz, utc("2026-10-24T12:00:00Z"), utc("2026-10-25T12:00:00Z"))
            .into_iter()
            .filter(|t| t.on)
            .collect();
        assert_eq!(
            ons,
            vec![Transition {
                at: utc("2026-10-25T00:30:00Z"),
                on: true
            }]
        );
    }
}
