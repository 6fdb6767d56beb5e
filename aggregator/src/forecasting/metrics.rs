//! Prometheus counters of the forecast refresh loop, rendered by the
//! aggregator's `/metrics` endpoint. No labels beyond the resolution of
//! anomaly series (two values): never a scope.

use std::sync::atomic::{AtomicU64, Ordering};

use super::refresh::RefreshReport;

/// Counters and gauges of the forecast refresher.
#[derive(Debug, Default)]
pub struct ForecastMetrics {
    /// Refreshes completed.
    pub refreshes_total: AtomicU64,
    /// Refreshes that failed (database errors); the cache keeps the last good one.
    pub refresh_failures_total: AtomicU64,
    /// Duration of the last completed refresh, milliseconds.
    pub last_refresh_ms: AtomicU64,
    /// Forecast series computed (scope × basis).
    pub series_computed_total: AtomicU64,
    /// Forecast and anomaly series skipped for too little history.
    pub series_skipped_short_history_total: AtomicU64,
    /// Series whose computation failed (the crate refused the input).
    pub series_errors_total: AtomicU64,
    /// Anomaly series scanned.
    pub anomaly_series_total: AtomicU64,
    /// Anomaly episodes open after the last refresh.
    pub open_anomalies: AtomicU64,
}

impl ForecastMetrics {
    /// Records a completed refresh.
    pub fn observe(&self, r: &RefreshReport) {
        self.refreshes_total.fetch_add(1, Ordering::Relaxed);
        self.last_refresh_ms
            .store((r.duration_s * 1_000.0) as u64, Ordering::Relaxed);
        self.series_computed_total
            .fetch_add(r.forecasts as u64, Ordering::Relaxed);
        self.series_skipped_short_history_total
            .fetch_add(r.skipped_short_history as u64, Ordering::Relaxed);
        self.series_errors_total
            .fetch_add(r.errors as u64, Ordering::Relaxed);
        self.anomaly_series_total
            .fetch_add(r.anomaly_series as u64, Ordering::Relaxed);
        self.open_anomalies
            .store(r.open_anomalies as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = format!(
            "# HELP canopy_forecast_refresh_duration_seconds Duration of the last forecast and anomaly refresh.\n\
             # TYPE canopy_forecast_refresh_duration_seconds gauge\ncanopy_forecast_refresh_duration_seconds {:.3}\n\
             # HELP canopy_forecast_open_anomalies Anomaly episodes open after the last refresh.\n\
             # TYPE canopy_forecast_open_anomalies gauge\ncanopy_forecast_open_anomalies {}\n",
            get(&self.last_refresh_ms) as f64 / 1_000.0,
            get(&self.open_anomalies),
        );
        for (name, help, value) in [
            (
                "canopy_forecast_refreshes_total",
                "Forecast refreshes completed.",
                get(&self.refreshes_total),
            ),
            (
                "canopy_forecast_refresh_failures_total",
                "Forecast refreshes that failed (the previous results stay in use).",
                get(&self.refresh_failures_total),
            ),
            (
                "canopy_forecast_series_computed_total",
                "Forecast series computed (scope x basis).",
                get(&self.series_computed_total),
            ),
            (
                "canopy_forecast_series_skipped_total",
                "Forecast and anomaly series skipped for too little history.",
                get(&self.series_skipped_short_history_total),
            ),
            (
                "canopy_forecast_series_errors_total",
                "Series the forecasting library refused.",
                get(&self.series_errors_total),
            ),
            (
                "canopy_forecast_anomaly_series_total",
                "Anomaly series scanned (hourly and daily).",
                get(&self.anomaly_series_total),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter() {
        let m = ForecastMetrics::default();
        m.observe(&RefreshReport {
            forecasts: 3,
            skipped_short_history: 2,
            duration_s: 0.25,
            open_anomalies: 1,
            ..RefreshReport::default()
        });
        let text = m.render();
        assert!(
            text.contains("canopy_forecast_refresh_duration_seconds 0.250\n"),
            "{text}"
        );
        assert!(text.contains("canopy_forecast_series_computed_total 3\n"));
        assert!(text.contains("canopy_forecast_series_skipped_total 2\n"));
        assert!(text.contains("canopy_forecast_series_errors_total 0\n"));
        assert!(text.contains("canopy_forecast_refreshes_total 1\n"));
        assert!(text.contains("canopy_forecast_open_anomalies 1\n"));
    }
}
