//! FILE_CHECK: keepalived's `track_file` applied to a real server.
//!
//! The file holds one integer `v` (missing, unreadable or non-numeric reads as 0).
//! With `weight 0`: `v != 0` is down (with `reverse`, `v == 0` is down). Otherwise the
//! offset `v * weight` (negated with `reverse`) is added to the configured weight; an
//! offset at or below -65535 (keepalived's IPVS_WEIGHT_FAULT) is down, and the result
//! is clamped to 0..=65535.

use crate::result::CheckResult;
use crate::spec::FileSpec;

/// Largest IPVS weight.
const WEIGHT_MAX: i64 = 65535;

/// Parse the leading integer of a tracked file's content (as `strtol` would).
fn parse_value(text: &str) -> i64 {
    let t = text.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map(|v| sign * v).unwrap_or(0)
}

/// Apply the track_file rule to value `v`: `None` means down, `Some(w)` up with weight `w`
/// (`None` weight change when `weight` is 0).
pub fn file_weight(spec: &FileSpec, v: i64) -> Option<Option<u32>> {
    if spec.weight == 0 {
        let down = if spec.reverse { v == 0 } else { v != 0 };
        return if down { None } else { Some(None) };
    }
    let mult = if spec.reverse { -1 } else { 1 };
    let offset = v
        .saturating_mul(i64::from(spec.weight))
        .saturating_mul(mult);
    if offset <= -WEIGHT_MAX {
        return None;
    }
    let w = (i64::from(spec.base_weight) + offset).clamp(0, WEIGHT_MAX);
    Some(u32::try_from(w).ok())
}

pub(super) async fn run(spec: &FileSpec) -> CheckResult {
    let (v, note) = match tokio::fs::read_to_string(&spec.path).await {
        Ok(text) => (parse_value(&text), String::new()),
        Err(e) => (0, format!(" (unreadable: {e})")),
    };
    let detail = format!("{} = {v}{note}", spec.path.display());
    match file_weight(spec, v) {
        None => CheckResult::fail(detail),
        Some(None) => CheckResult::pass(detail),
        Some(Some(w)) => CheckResult::pass(detail).with_weight(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(weight: i32, reverse: bool) -> FileSpec {
        FileSpec {
            path: "/nonexistent".into(),
            weight,
            reverse,
            base_weight: 10,
        }
    }

    #[test]
    fn values() {
        assert_eq!(parse_value(" 42\n"), 42);
        assert_eq!(parse_value("-7x"), -7);
        assert_eq!(parse_value("abc"), 0);
    }

    #[test]
    fn weight_zero_means_nonzero_is_down() {
        assert_eq!(file_weight(&spec(0, false), 0), Some(None));
        assert_eq!(file_weight(&spec(0, false), 3), None);
        assert_eq!(file_weight(&spec(0, true), 0), None);
        assert_eq!(file_weight(&spec(0, true), 1), Some(None));
    }

    #[test]
    fn weighted_offsets() {
        assert_eq!(file_weight(&spec(2, false), 5), Some(Some(20)));
        assert_eq!(file_weight(&spec(2, true), 3), Some(Some(4)));
        assert_eq!(file_weight(&spec(1, false), -20), Some(Some(0)));
        assert_eq!(file_weight(&spec(1, false), -65535), None);
    }
}
