//! The VRRP timer formulas.

use std::time::Duration;

/// Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 (RFC 5798; keepalived uses the
/// same formula for v2, which equals RFC 3768's `(256 - Priority) / 256` s at `advert_int 1`).
pub fn skew_time(priority: u8, master_adver_interval: Duration) -> Duration {
    master_adver_interval * (256 - u32::from(priority)) / 256
}

/// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
pub fn master_down_interval(priority: u8, master_adver_interval: Duration) -> Duration {
    master_adver_interval * 3 + skew_time(priority, master_adver_interval)
}
