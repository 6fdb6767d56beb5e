//! Coefficient tables compiled into the crate, one module per source.
pub mod ccf;
