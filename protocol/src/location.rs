//! Where in a batch a problem was found, for error messages.

use std::fmt;

/// Names the part of a batch an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordRef {
    /// The batch envelope (agent, account, region, sequence, ...).
    Envelope,
    /// `resources[i]`.
    Resource(usize),
    /// `emissions[i]`.
    Emission(usize),
    /// A reply message.
    Reply,
}

impl fmt::Display for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordRef::Envelope => f.write_str("batch"),
            RecordRef::Resource(i) => write!(f, "resources[{i}]"),
            RecordRef::Emission(i) => write!(f, "emissions[{i}]"),
            RecordRef::Reply => f.write_str("reply"),
        }
    }
}
