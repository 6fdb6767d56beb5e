//! Integration tests of canopy-outbox, against both stores.

mod basic;
mod crash;
mod model;
mod policy;
mod sender;
mod support;
