//! The basis of a budget (location- or market-based, with or without
//! embodied emissions) and the one function that maps it to the rollup
//! column it is measured on. Nothing else in the alerting code chooses a
//! CO2e column.

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
    /// `operational_location_g_co2e` (migration 0022).
    LocationOperational,
    /// `operational_market_g_co2e` (migration 0022).
    MarketOperational,
}

impl BasisColumn {
    /// The column's name in every rollup table.
    pub fn sql_name(self) -> &'static str {
        match self {
            BasisColumn::LocationTotal => "location_g_co2e",
            BasisColumn::MarketTotal => "market_g_co2e",
            BasisColumn::LocationOperational => "operational_location_g_co2e",
            BasisColumn::MarketOperational => "operational_market_g_co2e",
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

/// The column a basis is measured on. Figures stored before migration
/// 0022 count as all operational (embodied 0; `docs/accounting.md`), so an
/// operational basis over such months equals the total basis.
pub fn basis_column(basis: Basis) -> Result<BasisColumn, FieldError> {
    Ok(match basis {
        Basis::Location => BasisColumn::LocationTotal,
        Basis::Market => BasisColumn::MarketTotal,
        Basis::LocationOperational => BasisColumn::LocationOperational,
        Basis::MarketOperational => BasisColumn::MarketOperational,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_basis_is_measured_on_its_own_column() {
        assert_eq!(basis_column(Basis::Location).unwrap().sql_name(), "location_g_co2e");
        assert_eq!(basis_column(Basis::Market).unwrap().sql_name(), "market_g_co2e");
        assert_eq!(basis_column(Basis::LocationOperational).unwrap().sql_name(), "operational_location_g_co2e");
        assert_eq!(basis_column(Basis::MarketOperational).unwrap().sql_name(), "operational_market_g_co2e");
        assert_eq!(Basis::parse("market_operational"), Some(Basis::MarketOperational));
        assert_eq!(Basis::parse("embodied"), None);
    }
}
