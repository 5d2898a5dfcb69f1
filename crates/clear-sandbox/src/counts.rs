//! Call counters: how many token requests a secret made, per UTC day and per answered
//! status, so tests can assert "exactly one mint" or "nothing was called".

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

/// Counts of token-endpoint calls made with one client secret (or without any).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCounts {
    pub total: u64,
    /// Keyed by the HTTP status the caller received.
    pub by_status: BTreeMap<u16, u64>,
    /// Keyed by the UTC day of the simulator clock.
    pub by_day: BTreeMap<NaiveDate, u64>,
}

impl CallCounts {
    pub(crate) fn record(&mut self, day: NaiveDate, status: u16) {
        self.total += 1;
        *self.by_status.entry(status).or_default() += 1;
        *self.by_day.entry(day).or_default() += 1;
    }

    /// Calls answered with `status`.
    pub fn with_status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// Calls made on the UTC day `day`.
    pub fn on_day(&self, day: NaiveDate) -> u64 {
        self.by_day.get(&day).copied().unwrap_or(0)
    }

    pub(crate) fn merge(&mut self, other: &CallCounts) {
        self.total += other.total;
        for (status, n) in &other.by_status {
            *self.by_status.entry(*status).or_default() += n;
        }
        for (day, n) in &other.by_day {
            *self.by_day.entry(*day).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_by_status_and_day() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let next = day.succ_opt().unwrap();
        let mut counts = CallCounts::default();
        counts.record(day, 200);
        counts.record(day, 429);
        counts.record(next, 200);
        assert_eq!(counts.total, 3);
        assert_eq!(counts.with_status(200), 2);
        assert_eq!(counts.with_status(500), 0);
        assert_eq!(counts.on_day(day), 2);
        assert_eq!(counts.on_day(next), 1);
    }
}
