//! Protocol version numbers understood by this build.
//!
//! The evolution rule (see `README.md`): a decoder accepts every version
//! from [`MIN_SUPPORTED_VERSION`] to [`CURRENT_VERSION`] inclusive and
//! upgrades older bodies to the current in-memory types; a frame carrying a
//! version newer than [`CURRENT_VERSION`] is rejected with an error naming
//! both versions. Encoders write batches at [`CURRENT_VERSION`]; replies are
//! written at the version the peer spoke.

/// The version this build writes batches in, and the newest it can read.
pub const CURRENT_VERSION: u16 = 2;

/// The oldest version this build can still read.
pub const MIN_SUPPORTED_VERSION: u16 = 1;

/// True when `version` lies within `MIN_SUPPORTED_VERSION..=CURRENT_VERSION`.
pub fn is_supported(version: u16) -> bool {
    (MIN_SUPPORTED_VERSION..=CURRENT_VERSION).contains(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_range_is_inclusive_and_excludes_zero_and_future() {
        assert!(!is_supported(0));
        assert!(is_supported(MIN_SUPPORTED_VERSION));
        assert!(is_supported(CURRENT_VERSION));
        assert!(!is_supported(CURRENT_VERSION + 1));
    }
}
