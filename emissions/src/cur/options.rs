//! What the caller chooses: methodology, period and grouping.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::grid::{CarbonIntensitySource, MarketConfig};
use crate::time;

/// How CUR rows are turned into energy and CO2e.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Methodology {
    /// Reproduces Cloud Carbon Footprint's AWS CUR estimates exactly, defects included.
    Ccf,
    /// Canopy's own model: CCF's classification with its defects fixed.
    #[default]
    Canopy,
}

impl Methodology {
    /// `"ccf"` or `"canopy"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Methodology::Ccf => "ccf",
            Methodology::Canopy => "canopy",
        }
    }
}

/// A methodology or period name that is not one of the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found:?}")]
pub struct ParseOptionError {
    /// The accepted values.
    pub expected: &'static str,
    /// What was given.
    pub found: String,
}

impl FromStr for Methodology {
    type Err = ParseOptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ccf" => Ok(Methodology::Ccf),
            "canopy" => Ok(Methodology::Canopy),
            other => Err(ParseOptionError { expected: "methodology \"ccf\" or \"canopy\"", found: other.to_owned() }),
        }
    }
}

impl fmt::Display for Methodology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time bucket rows are grouped into (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Period {
    /// Calendar hour.
    Hour,
    /// Calendar day.
    #[default]
    Day,
    /// Calendar month.
    Month,
}

impl Period {
    /// Start of the period containing `unix_s`.
    pub fn start_of(&self, unix_s: i64) -> i64 {
        match self {
            Period::Hour => time::hour_start(unix_s),
            Period::Day => time::day_start(unix_s),
            Period::Month => time::month_start(unix_s),
        }
    }

    /// `"hour"`, `"day"` or `"month"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

impl FromStr for Period {
    type Err = ParseOptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hour" => Ok(Period::Hour),
            "day" => Ok(Period::Day),
            "month" => Ok(Period::Month),
            other => Err(ParseOptionError { expected: "period \"hour\", \"day\" or \"month\"", found: other.to_owned() }),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings used only by the `canopy` methodology.
#[derive(Clone, Default)]
pub struct CanopySettings {
    /// Contractual renewable shares and residual-mix factors per region (market-based CO2e).
    pub market: MarketConfig,
    /// Hourly grid intensity; when present, rows are grouped by hour internally
    /// and each hour uses its own intensity, else the static annual factor is used.
    pub intensity: Option<Arc<dyn CarbonIntensitySource + Send + Sync>>,
}

impl fmt::Debug for CanopySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CanopySettings")
            .field("market", &self.market)
            .field("intensity", &self.intensity.as_ref().map(|_| "configured"))
            .finish()
    }
}

/// Everything [`super::CurEstimator`] needs to know.
#[derive(Debug, Clone)]
pub struct EstimateOptions {
    /// `ccf` or `canopy`.
    pub methodology: Methodology,
    /// Output period.
    pub period: Period,
    /// Keep the usage type as an output column (one row per usage type).
    pub by_usage_type: bool,
    /// Market-based and hourly-intensity configuration for `canopy`.
    pub canopy: CanopySettings,
    /// Groups held in memory before the known ones are estimated and dropped
    /// (memory is about 100 bytes a group; results do not depend on it).
    pub max_groups_in_memory: usize,
}

/// Default of [`EstimateOptions::max_groups_in_memory`].
pub const DEFAULT_MAX_GROUPS_IN_MEMORY: usize = 1 << 15;

impl Default for EstimateOptions {
    fn default() -> Self {
        Self {
            methodology: Methodology::default(),
            period: Period::default(),
            by_usage_type: false,
            canopy: CanopySettings::default(),
            max_groups_in_memory: DEFAULT_MAX_GROUPS_IN_MEMORY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_names() {
        assert_eq!("ccf".parse::<Methodology>(), Ok(Methodology::Ccf));
        assert_eq!("month".parse::<Period>(), Ok(Period::Month));
        let err = "CCF".parse::<Methodology>().unwrap_err();
        assert_eq!(err.to_string(), "expected methodology \"ccf\" or \"canopy\", found \"CCF\"");
        assert!("week".parse::<Period>().unwrap_err().to_string().contains("\"week\""));
        assert_eq!((Methodology::default(), Period::default()), (Methodology::Canopy, Period::Day));
    }

    #[test]
    fn period_start() {
        let t = time::unix_seconds(2024, 2, 29, 13, 45, 10);
        assert_eq!(Period::Hour.start_of(t), time::unix_seconds(2024, 2, 29, 13, 0, 0));
        assert_eq!(Period::Day.start_of(t), time::unix_seconds(2024, 2, 29, 0, 0, 0));
        assert_eq!(Period::Month.start_of(t), time::unix_seconds(2024, 2, 1, 0, 0, 0));
    }
}
