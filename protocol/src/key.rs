//! The stable identity of an emission record across revisions.

use std::fmt;

use crate::emission::Subject;

/// What identifies "the same emission record" across revisions:
/// account, region, subject (resource ARN, or group of service + resource
/// type + team) and the exact interval `[start, end)`.
///
/// Not part of the key: energies, emissions, factors, quality, bounds,
/// methodology version and revision. A re-estimate (new data, new
/// methodology) is sent with the same key and a higher revision; the
/// aggregator keeps the highest revision per key. Intervals are fixed
/// buckets: a record over a different interval (e.g. a day instead of an
/// hour) is a different record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    /// AWS account id (from the batch envelope).
    pub account_id: String,
    /// AWS region (from the batch envelope).
    pub region: String,
    /// Resource or group.
    pub subject: Subject,
    /// Interval start, Unix seconds.
    pub interval_start_unix_s: i64,
    /// Interval end, Unix seconds.
    pub interval_end_unix_s: i64,
}

impl fmt::Display for RecordKey {
    /// For logs only (ARNs contain `/` and `:`, so this is not parseable):
    /// `account/region/subject@start..end`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}@{}..{}",
            self.account_id,
            self.region,
            self.subject,
            self.interval_start_unix_s,
            self.interval_end_unix_s
        )
    }
}
