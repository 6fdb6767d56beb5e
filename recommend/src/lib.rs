//! Canopy's recommendation engine: decides which changes would cut carbon
//! and cost, from an inventory snapshot, per-resource utilisation summaries
//! and the factor data (annual location factors, the market set, hourly
//! intensity when imported).
//!
//! **This crate does no I/O, never writes facts and never sends anything**:
//! the aggregator reads the inventory and factor sets, calls [`recommend`]
//! and stores, serves and notifies what it returns. Every energy and CO2e
//! difference is computed with `canopy_emissions::model` (power curves,
//! embodied, PUE, grid factors), never with a number of this crate's own;
//! dollar figures come from the billed cost when present, else the
//! [`prices`] table (source and vintage stated), else are marked unknown.
//!
//! Rules, one module each under [`rules`]: rightsizing, Graviton,
//! idle/orphaned, storage class, region migration, scheduling (off-hours and
//! carbon-aware time shifting). [`rank`] deduplicates (one resource, one
//! best action, the others as alternatives) and ranks by carbon saved with
//! cost as the tie-breaker. [`sim`] plants known waste with its true
//! saving, and [`bench`] scores the engine against it.
#![forbid(unsafe_code)]

pub mod bench;
pub mod catalog;
pub mod input;
pub mod prices;
pub mod rank;
pub mod recommendation;
pub mod rules;
pub mod sim;

pub use input::{InputError, Inventory};
pub use recommendation::{Kind, Recommendation};

/// Validates the inventory, runs every rule, deduplicates and ranks.
pub fn recommend(inventory: &Inventory<'_>) -> Result<Vec<Recommendation>, InputError> {
    inventory.validate()?;
    Ok(rank::dedup_and_rank(rules::all(inventory)))
}
