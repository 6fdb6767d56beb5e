//! The string table built while encoding a v1 batch.

use std::collections::HashMap;

use crate::error::EncodeError;

use super::StrIdx;

/// Assigns each distinct string an index in first-use order, so the same
/// batch always encodes to the same bytes.
#[derive(Default)]
pub(crate) struct Interner<'a> {
    index: HashMap<&'a str, StrIdx>,
    strings: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    /// The index of `s`, adding it to the table on first use.
    pub(crate) fn intern(&mut self, s: &'a str) -> Result<StrIdx, EncodeError> {
        if let Some(&idx) = self.index.get(s) {
            return Ok(idx);
        }
        let idx = StrIdx::try_from(self.strings.len()).map_err(|_| EncodeError::TooLarge {
            what: "distinct strings in a batch",
            max: u64::from(StrIdx::MAX),
            found: self.strings.len() as u64,
        })?;
        self.index.insert(s, idx);
        self.strings.push(s);
        Ok(idx)
    }

    /// The finished table.
    pub(crate) fn into_strings(self) -> Vec<&'a str> {
        self.strings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_strings_share_one_entry_in_first_use_order() {
        let mut interner = Interner::default();
        assert_eq!(interner.intern("ec2").unwrap(), 0);
        assert_eq!(interner.intern("instance").unwrap(), 1);
        assert_eq!(interner.intern("ec2").unwrap(), 0);
        assert_eq!(interner.into_strings(), vec!["ec2", "instance"]);
    }
}
