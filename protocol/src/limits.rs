//! Decoder limits: the most a single frame may make the decoder read,
//! allocate or accept.

/// Limits enforced while decoding a frame (and re-checked by
/// [`Batch::validate`](crate::Batch::validate)).
///
/// All string limits are in UTF-8 bytes. The defaults accept anything AWS
/// itself can produce (ARNs up to 2,048 characters, 50 user tags of up to
/// 128-character keys and 256-character values, counted at 4 bytes per
/// character) while keeping one decoded batch well under 100 MiB of memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest whole frame (header + body as sent) in bytes.
    pub max_frame_bytes: usize,
    /// Largest body after decompression, in bytes.
    pub max_body_bytes: usize,
    /// Most resource + emission records in one batch (both kinds together).
    pub max_records_per_batch: usize,
    /// Most entries in a batch's string table (distinct strings).
    pub max_strings_per_batch: usize,
    /// Longest string that is not a tag key or value (ARNs, names, sources).
    pub max_string_bytes: usize,
    /// Most tags on one resource record.
    pub max_tags_per_resource: usize,
    /// Longest tag key.
    pub max_tag_key_bytes: usize,
    /// Longest tag value.
    pub max_tag_value_bytes: usize,
    /// Most accelerator entries on one resource record.
    pub max_accelerators_per_resource: usize,
    /// Most attributes on one resource record (protocol v2).
    pub max_attributes_per_resource: usize,
    /// Longest attribute name.
    pub max_attribute_key_bytes: usize,
    /// Longest attribute value.
    pub max_attribute_value_bytes: usize,
    /// Most string bytes a decoded batch may materialise in memory in total.
    /// Records refer to a shared string table, so a small frame could
    /// otherwise expand into a very large in-memory value.
    pub max_decoded_string_bytes: usize,
}

impl DecodeLimits {
    /// Default [`max_frame_bytes`](Self::max_frame_bytes): 8 MiB.
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
    /// Default [`max_body_bytes`](Self::max_body_bytes): 16 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
    /// Default [`max_records_per_batch`](Self::max_records_per_batch).
    pub const DEFAULT_MAX_RECORDS_PER_BATCH: usize = 20_000;
    /// Default [`max_strings_per_batch`](Self::max_strings_per_batch).
    pub const DEFAULT_MAX_STRINGS_PER_BATCH: usize = 262_144;
    /// Default [`max_string_bytes`](Self::max_string_bytes): AWS's ARN maximum.
    pub const DEFAULT_MAX_STRING_BYTES: usize = 2_048;
    /// Default [`max_tags_per_resource`](Self::max_tags_per_resource): AWS's user-tag maximum.
    pub const DEFAULT_MAX_TAGS_PER_RESOURCE: usize = 50;
    /// Default [`max_tag_key_bytes`](Self::max_tag_key_bytes): 128 characters at 4 bytes each.
    pub const DEFAULT_MAX_TAG_KEY_BYTES: usize = 512;
    /// Default [`max_tag_value_bytes`](Self::max_tag_value_bytes): 256 characters at 4 bytes each.
    pub const DEFAULT_MAX_TAG_VALUE_BYTES: usize = 1_024;
    /// Default [`max_accelerators_per_resource`](Self::max_accelerators_per_resource).
    pub const DEFAULT_MAX_ACCELERATORS_PER_RESOURCE: usize = 16;
    /// Default [`max_attributes_per_resource`](Self::max_attributes_per_resource).
    pub const DEFAULT_MAX_ATTRIBUTES_PER_RESOURCE: usize = 64;
    /// Default [`max_attribute_key_bytes`](Self::max_attribute_key_bytes).
    pub const DEFAULT_MAX_ATTRIBUTE_KEY_BYTES: usize = 128;
    /// Default [`max_attribute_value_bytes`](Self::max_attribute_value_bytes).
    pub const DEFAULT_MAX_ATTRIBUTE_VALUE_BYTES: usize = 1_024;
    /// Default [`max_decoded_string_bytes`](Self::max_decoded_string_bytes): 64 MiB.
    pub const DEFAULT_MAX_DECODED_STRING_BYTES: usize = 64 * 1024 * 1024;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_records_per_batch: Self::DEFAULT_MAX_RECORDS_PER_BATCH,
            max_strings_per_batch: Self::DEFAULT_MAX_STRINGS_PER_BATCH,
            max_string_bytes: Self::DEFAULT_MAX_STRING_BYTES,
            max_tags_per_resource: Self::DEFAULT_MAX_TAGS_PER_RESOURCE,
            max_tag_key_bytes: Self::DEFAULT_MAX_TAG_KEY_BYTES,
            max_tag_value_bytes: Self::DEFAULT_MAX_TAG_VALUE_BYTES,
            max_accelerators_per_resource: Self::DEFAULT_MAX_ACCELERATORS_PER_RESOURCE,
            max_attributes_per_resource: Self::DEFAULT_MAX_ATTRIBUTES_PER_RESOURCE,
            max_attribute_key_bytes: Self::DEFAULT_MAX_ATTRIBUTE_KEY_BYTES,
            max_attribute_value_bytes: Self::DEFAULT_MAX_ATTRIBUTE_VALUE_BYTES,
            max_decoded_string_bytes: Self::DEFAULT_MAX_DECODED_STRING_BYTES,
        }
    }
}
