//! What an object key says about time: CloudTrail's layout puts the UTC delivery day in the
//! path (`AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/…`), which bounds a backfill.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::{BoundError, FlagError};

/// A bound given as a day (`2026-11-01`, midnight UTC) or an RFC 3339 time.
pub fn parse_bound(s: &str) -> Result<DateTime<Utc>, BoundError> {
    let err = |why: String| BoundError {
        value: s.into(),
        why,
    };
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .ok_or_else(|| err("not a day".into()));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| err(format!("expected YYYY-MM-DD or an RFC 3339 time ({e})")))
}

/// A command's optional time-bound flag (`--since`, `--until`), parsed.
pub fn parse_flag(
    flag: &'static str,
    value: &Option<String>,
) -> Result<Option<DateTime<Utc>>, FlagError> {
    value
        .as_deref()
        .map(|v| parse_bound(v).map_err(|source| FlagError { flag, source }))
        .transpose()
}

/// The last `YYYY/MM/DD` run of path segments in `key`, as a date.
pub fn key_day(key: &str) -> Option<NaiveDate> {
    let segs: Vec<&str> = key.split('/').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    segs.windows(3)
        .rev()
        .filter(|w| digits(w[0], 4) && digits(w[1], 2) && digits(w[2], 2))
        .find_map(|w| {
            NaiveDate::from_ymd_opt(w[0].parse().ok()?, w[1].parse().ok()?, w[2].parse().ok()?)
        })
}

/// Whether the day `d` overlaps `[start, end)`.
pub fn day_in(d: NaiveDate, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> bool {
    let Some(day_start) = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) else {
        return false;
    };
    let day_end = day_start + Duration::days(1);
    start.is_none_or(|s| day_end > s) && end.is_none_or(|e| day_start < e)
}

/// A prefix that ends at a trail's region folder (`…/CloudTrail/REGION/`): below it, keys
/// sort by day, so a start day can skip the listing ahead and an end day can stop it.
pub fn is_region_level(prefix: &str) -> bool {
    let Some(p) = prefix.strip_suffix('/') else {
        return false;
    };
    let segs: Vec<&str> = p.split('/').collect();
    segs.len() >= 2
        && matches!(segs[segs.len() - 2], "CloudTrail" | "CloudTrail-Insight")
        && !segs[segs.len() - 1].is_empty()
}

/// Where to start listing a region-level prefix for a start bound: just before its day.
pub fn start_after(prefix: &str, start: DateTime<Utc>) -> String {
    let d = start.date_naive();
    format!("{prefix}{:04}/{:02}/{:02}", d.year(), d.month(), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_keys() {
        let k = "AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2026/11/05/111122223333_CloudTrail_us-east-1_20261105T0010Z_abc.json.gz";
        assert_eq!(key_day(k), NaiveDate::from_ymd_opt(2026, 11, 5));
        assert_eq!(key_day("x/2026/13/05/y"), None);
        assert_eq!(key_day("no/date/here.json"), None);
    }

    #[test]
    fn bounds_and_overlap() {
        let s = parse_bound("2026-11-01").unwrap();
        let e = parse_bound("2026-11-03T12:00:00Z").unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert!(!day_in(
            NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            Some(s),
            Some(e)
        ));
        assert!(day_in(day(1), Some(s), Some(e)));
        assert!(day_in(day(3), Some(s), Some(e)));
        assert!(!day_in(day(4), Some(s), Some(e)));
        assert!(day_in(day(4), None, None));
        assert!(parse_bound("yesterday").is_err());
    }

    #[test]
    fn region_level_prefixes() {
        assert!(is_region_level(
            "AWSLogs/111122223333/CloudTrail/us-east-1/"
        ));
        assert!(!is_region_level("AWSLogs/111122223333/CloudTrail/"));
        assert!(!is_region_level(
            "AWSLogs/111122223333/CloudTrail/us-east-1"
        ));
        let p = "AWSLogs/1/CloudTrail/eu-west-1/";
        let a = start_after(p, parse_bound("2026-11-02").unwrap());
        assert!(format!("{p}2026/11/01/z.json.gz") < a);
        assert!(format!("{p}2026/11/02/a.json.gz") > a);
    }
}
