//! Integration tests over real QUIC on loopback (and moto for STS).

mod batches;
mod enroll;
mod support;
