//! Integration tests of canopy-recommend: the residency property over many
//! generated inventories, and the planted-truth benchmark as a regression
//! test (recall and precision ≥ 95 %, savings within ±15 %).

mod planted;
mod residency;
