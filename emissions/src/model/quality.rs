//! Quality flags, provenance and uncertainty bounds attached to every figure.

/// How a figure was obtained; ordered so that "worse" is greater
/// (`Measured < Estimated < Default`), and a combination takes the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Quality {
    /// Built on measured inputs: a measured power curve and measured utilisation.
    Measured,
    /// Built on modelled inputs with a specific basis (e.g. microarchitecture watts).
    Estimated,
    /// Built on documented defaults (unknown utilisation, fleet averages).
    #[default]
    Default,
}

impl Quality {
    /// Lower-case name: `"measured"`, `"estimated"` or `"default"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Quality::Measured => "measured",
            Quality::Estimated => "estimated",
            Quality::Default => "default",
        }
    }

    /// The worse of two qualities.
    pub fn worst(self, other: Quality) -> Quality {
        self.max(other)
    }
}

impl std::fmt::Display for Quality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a coefficient came from: the data set and its vintage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Provenance {
    /// Data set or publisher, e.g. `"Teads AWS EC2 dataset via Cloud Carbon Footprint"`.
    pub source: &'static str,
    /// Period or release the figure describes, e.g. `"2021"`, `"eGRID2020"`.
    pub vintage: &'static str,
}

/// Low and high bounds around a central value, in the central value's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Bounds {
    /// Bounds collapsed onto one value.
    pub fn exact(value: f64) -> Bounds {
        Bounds { low: value, high: value }
    }

    /// Component-wise sum (bounds of a sum of independent worst cases).
    pub fn plus(self, other: Bounds) -> Bounds {
        Bounds { low: self.low + other.low, high: self.high + other.high }
    }

    /// Both bounds multiplied by a non-negative factor.
    pub fn scale(self, factor: f64) -> Bounds {
        Bounds { low: self.low * factor, high: self.high * factor }
    }

    /// Widens by a relative coefficient uncertainty `rel` (0.1 = ±10 %).
    pub fn widen(self, rel: f64) -> Bounds {
        Bounds { low: self.low * (1.0 - rel).max(0.0), high: self.high * (1.0 + rel) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_orders_worse_as_greater() {
        assert!(Quality::Measured < Quality::Estimated);
        assert!(Quality::Estimated < Quality::Default);
        assert_eq!(Quality::Measured.worst(Quality::Default), Quality::Default);
        assert_eq!(Quality::Estimated.as_str(), "estimated");
    }

    #[test]
    fn bounds_arithmetic() {
        let b = Bounds { low: 2.0, high: 4.0 }.widen(0.5).plus(Bounds::exact(1.0)).scale(2.0);
        // low: 2 × 0.5 = 1, +1 = 2, ×2 = 4; high: 4 × 1.5 = 6, +1 = 7, ×2 = 14
        assert_eq!(b, Bounds { low: 4.0, high: 14.0 });
    }
}
