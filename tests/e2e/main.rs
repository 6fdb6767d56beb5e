//! End-to-end tests: `canopy estimate` on real files, across formats, and
//! against Cloud Carbon Footprint's own npm package.

mod ccf_reference;
mod estimate_cli;
mod support;
