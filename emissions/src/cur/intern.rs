//! String interning for the hot path: each distinct text is stored once and
//! groups are keyed by small integer ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small multiply-rotate hasher (the FxHash scheme used by rustc): much
/// faster than SipHash for short keys; the inputs are our own CUR text, so
/// hash-flooding resistance is not needed.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.mix(i as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Id of an absent optional text (e.g. no tag).
pub(crate) const NONE_ID: u32 = u32::MAX;

/// Stores each distinct string once and hands out dense `u32` ids.
#[derive(Default, Clone)]
pub(crate) struct Interner {
    ids: FastMap<Box<str>, u32>,
    texts: Vec<Box<str>>,
}

impl Interner {
    /// Id of `text`, storing it on first sight.
    #[inline]
    pub(crate) fn intern(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = u32::try_from(self.texts.len()).expect("fewer than 2^32 distinct CUR strings");
        self.texts.push(text.into());
        self.ids.insert(text.into(), id);
        id
    }

    /// Like [`Interner::intern`], but first compares with the id remembered
    /// in `last` (CUR files repeat accounts, regions and units row after row).
    #[inline]
    pub(crate) fn intern_cached(&mut self, text: &str, last: &mut u32) -> u32 {
        if let Some(previous) = self.texts.get(*last as usize)
            && **previous == *text
        {
            return *last;
        }
        let id = self.intern(text);
        *last = id;
        id
    }

    /// The text of `id`.
    pub(crate) fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    /// The text of an optional id ([`NONE_ID`] → `None`).
    pub(crate) fn optional(&self, id: u32) -> Option<&str> {
        if id == NONE_ID { None } else { Some(self.text(id)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_id_and_cache_hits() {
        let mut i = Interner::default();
        let mut last = NONE_ID;
        let a = i.intern_cached("us-east-1", &mut last);
        let b = i.intern_cached("eu-west-1", &mut last);
        assert_eq!(i.intern_cached("eu-west-1", &mut last), b);
        assert_eq!(i.intern("us-east-1"), a);
        assert_ne!(a, b);
        assert_eq!((i.text(a), i.optional(NONE_ID)), ("us-east-1", None));
    }
}
