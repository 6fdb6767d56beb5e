//! Integration tests of canopy-protocol (one test binary).

mod corrupt;
mod fixtures;
mod golden;
mod limits;
mod roundtrip;
mod sizes;
mod validate;
