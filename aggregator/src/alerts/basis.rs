//! The basis of a budget (location- or market-based, with or without
//! embodied emissions) and the one function that maps it to the rollup
//! column it is measured on. Nothing else in the alerting code names a CO2e
//! column, so the bases without embodied emissions are wired in one place
//! when the rollups carry the operational columns.

use super::FieldError;

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Location-based, operational + embodied.
    Location,
    /// Market-based, operational + embodied.
    Market,
    /// Location-based, operational only.
    LocationOperational,
    /// Market-based, operational only.
    MarketOperational,
}

/// The rollup column a basis is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasisColumn {
    /// `location_g_co2e` (operational + embodied).
    LocationTotal,
    /// `market_g_co2e` (operational + embodied).
    MarketTotal,
}

impl BasisColumn {
    /// The column's name in every rollup table.
    pub fn sql_name(self) -> &'static str {
        match self {
            BasisColumn::LocationTotal => "location_g_co2e",
            BasisColumn::MarketTotal => "market_g_co2e",
        }
    }
}

impl Basis {
    /// The API and database name.
    pub fn name(self) -> &'static str {
        match self {
            Basis::Location => "location",
            Basis::Market => "market",
            Basis::LocationOperational => "location_operational",
            Basis::MarketOperational => "market_operational",
        }
    }

    /// Parses an API or database name.
    pub fn parse(text: &str) -> Option<Basis> {
        [Basis::Location, Basis::Market, Basis::LocationOperational, Basis::MarketOperational]
            .into_iter()
            .find(|b| b.name() == text)
    }
}

/// The column a basis is measured on, or why it cannot be measured yet.
///
/// The bases without embodied emissions need the rollups' operational
/// columns (`operational_location_g_co2e`, `operational_market_g_co2e`),
/// which are not stored yet: they are refused (the budget API answers 400
/// naming `basis`) rather than measured on the totals, which would be a
/// wrong figure.
pub fn basis_column(basis: Basis) -> Result<BasisColumn, FieldError> {
    match basis {
        Basis::Location => Ok(BasisColumn::LocationTotal),
        Basis::Market => Ok(BasisColumn::MarketTotal),
        Basis::LocationOperational | Basis::MarketOperational => Err(FieldError::new(
            "basis",
            format!(
                "basis {:?} (without embodied emissions) needs the rollups' operational columns, which this \
                 aggregator does not store yet; use \"location\" or \"market\" (operational + embodied)",
                basis.name()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_measured_and_operational_bases_are_refused_naming_basis() {
        assert_eq!(basis_column(Basis::Location).unwrap().sql_name(), "location_g_co2e");
        assert_eq!(basis_column(Basis::Market).unwrap().sql_name(), "market_g_co2e");
        for b in [Basis::LocationOperational, Basis::MarketOperational] {
            assert_eq!(basis_column(b).unwrap_err().field, "basis");
        }
        assert_eq!(Basis::parse("market_operational"), Some(Basis::MarketOperational));
        assert_eq!(Basis::parse("embodied"), None);
    }
}
