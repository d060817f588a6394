//! Redis key names and the compact registry encoding: the one place that
//! knows how a [`PeselKey`] becomes key names (the Lua scripts receive them
//! as `KEYS`/`ARGV`; `lua/registry.lua` mirrors the bucket arithmetic below).
//!
//! # Hash tags
//!
//! A person's keys and the registry bucket holding them share the hash tag
//! `{t}`, `t` = the first 2 bytes of the PESEL key as 4 hex digits, so one
//! script reads both atomically, also on Redis Cluster. 65,536 tags over
//! 16,384 slots: 4 tags per slot, the keyed hash spreads people evenly.
//!
//! | key | holds |
//! |---|---|
//! | `census:{t}:<r>:<suffix>` | a person's keys (`<r>` = the other 14 bytes, 28 hex): `lock`, `pend`, `acct`, `ss`, `s:<h>`, `sf:<h>`, `code:<h>`, `at:<h>` |
//! | `census:{t}:r:<i>` | registry bucket `i` of tag `t` (hash, field → value below) |
//!
//! Before this layout a person's keys were `census:{<32 hex>}:<suffix>` and
//! the registry sat in `acct` (`mn` hex maiden hash, `rsv`);
//! [`super::Store::migrate`] moves them ([`legacy_person_key`]).
//!
//! # Registry buckets
//!
//! One Redis key per person costs ~230 bytes (key object, dict entry, hash
//! encoding). Instead people are fields of small hashes kept in Redis's
//! listpack encoding (default `hash-max-listpack-entries 128`,
//! `hash-max-listpack-value 64`; nothing for operators to tune):
//!
//! - field: the 14 bytes of the PESEL key not implied by the tag (binary);
//! - value: the 8-byte maiden tag ([`crate::keys::MaidenTag`]) and one byte
//!   reserved (`0`/`1`): 9 bytes.
//!
//! A listpack entry is 1 header byte + data + 1 back-length byte, so a person
//! costs 16 + 11 = 27 bytes, plus jemalloc's rounding of the listpack
//! (≤ 12.5 % above 512 bytes) and a share of the bucket key's ~100 bytes.
//!
//! **Sizing follows the population per tag, without configuration.** A tag
//! starts with one bucket (`r:0`); bucket 0's field `#` holds the tag's bucket
//! count `S` (a power of two ≤ [`MAX_BUCKETS`]; written as the tag's first
//! field, so readers find it at the head of the listpack). A person's
//! bucket is `(field[0]·256 + field[1]) mod S` (bits independent of the tag).
//! When an insert makes a bucket hold more than [`GROW_AT`] entries, the
//! import script doubles `S` for that tag and moves the entries whose index
//! changed (bucket `j` splits into `j` and `j + S`), atomically in the same
//! script, so no bucket ever reaches 128 entries and leaves listpack. Readers
//! read `#` and the bucket in the same script: one round trip.
//!
//! - 2 M people: ~30.5 per tag, S = 1 everywhere (Poisson(30.5) never
//!   exceeds 120): 65,536 keys, ~100 B / 30.5 ≈ 3 B per person of key cost.
//! - 38 M people: ~580 per tag; S = 8 gives 72.5 per bucket on average and a
//!   bucket over 120 is a 5.6 σ event, so almost all tags settle at S = 8
//!   (≈ 524 k keys, ~1.4 B per person of key cost) and a few at 16.
//!
//! # Why 8 bytes of maiden-name hash
//!
//! The stored tag is the first 64 bits of a keyed HMAC-SHA-256. A wrong name
//! matches with probability 2⁻⁶⁴ per try, and the lockout allows a handful of
//! tries per PESEL, so guessing through truncation is hopeless; guessing the
//! name itself (a few thousand common surnames) is the real bound, and a
//! longer hash would not change it. Someone with a copy of Redis but not
//! the pepper learns nothing; with the pepper the names are guessable at any
//! hash length. The field keeps all 16 bytes of the PESEL key, so two people
//! never share an entry.

use crate::keys::{MaidenTag, PeselKey};

/// A bucket holding more entries than this after an insert makes its tag
/// double its bucket count (mirrored in `lua/registry.lua`). Below
/// `hash-max-listpack-entries` (128) with room for the `#` field.
pub const GROW_AT: usize = 120;
/// Most buckets per tag: 65,536 × 256 × 120 ≈ 2 billion people.
pub const MAX_BUCKETS: u32 = 256;
/// Length of a registry field: the PESEL key without its 2 tag bytes.
pub const FIELD_LEN: usize = 14;
/// Length of a registry value: maiden tag and reserved.
pub const VALUE_LEN: usize = 9;

/// The hash tag of a person (and of their registry bucket), with braces.
pub fn tag(k: &PeselKey) -> String {
    format!("{{{}}}", hex::encode(&k.as_bytes()[..2]))
}

/// A person's key `census:{t}:<rest>:<suffix>`.
pub fn person_key(k: &PeselKey, suffix: &str) -> String {
    let b = k.as_bytes();
    format!(
        "census:{{{}}}:{}:{suffix}",
        hex::encode(&b[..2]),
        hex::encode(&b[2..])
    )
}

/// Prefix of the registry buckets of a person's tag: `census:{t}:r:`; the
/// bucket `i` is this prefix followed by `i` in decimal.
pub fn registry_prefix(k: &PeselKey) -> String {
    format!("census:{}:r:", tag(k))
}

/// Registry bucket 0 of a person's tag (it holds the tag's bucket count).
pub fn registry_bucket0(k: &PeselKey) -> String {
    registry_prefix(k) + "0"
}

/// The field of a person in their registry bucket.
pub fn registry_field(k: &PeselKey) -> [u8; FIELD_LEN] {
    let mut f = [0u8; FIELD_LEN];
    f.copy_from_slice(&k.as_bytes()[2..]);
    f
}

/// A registry entry as stored, in Redis and in the memory store alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryEntry {
    pub maiden: MaidenTag,
    pub reserved: bool,
}

impl RegistryEntry {
    pub fn encode(&self) -> [u8; VALUE_LEN] {
        let mut v = [0u8; VALUE_LEN];
        v[..8].copy_from_slice(&self.maiden);
        v[8] = if self.reserved { b'1' } else { b'0' };
        v
    }

    /// `None` for anything but a value written by [`encode`](Self::encode).
    pub fn decode(v: &[u8]) -> Option<Self> {
        let (maiden, flag) = v.split_at_checked(8)?;
        let reserved = match flag {
            b"1" => true,
            b"0" => false,
            _ => return None,
        };
        Some(Self {
            maiden: maiden.try_into().ok()?,
            reserved,
        })
    }
}

/// The Redis Cluster slot of a key (CRC16/XMODEM of its hash tag, mod 16384):
/// the import groups rows by it so that each script call stays in one slot.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16(hashed) % 16384
}

/// The Redis Cluster slot of a person's keys and registry bucket.
pub fn tag_slot(k: &PeselKey) -> u16 {
    let mut hex = [0u8; 4];
    let digits = b"0123456789abcdef";
    for (i, b) in k.as_bytes()[..2].iter().enumerate() {
        hex[2 * i] = digits[usize::from(b >> 4)];
        hex[2 * i + 1] = digits[usize::from(b & 15)];
    }
    crc16(&hex) % 16384
}

/// CRC16/XMODEM, the checksum of Redis Cluster's key slots.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// SCAN pattern of the person keys of the layout before buckets.
pub const LEGACY_PERSON_PATTERN: &str = "census:{????????????????????????????????}:*";

/// A key of the old layout `census:{<32 hex>}:<suffix>`: the person and the suffix.
pub fn legacy_person_key(key: &str) -> Option<(PeselKey, &str)> {
    let rest = key.strip_prefix("census:{")?;
    let (hex, suffix) = rest.split_at_checked(32)?;
    let suffix = suffix.strip_prefix("}:")?;
    Some((PeselKey::from_hex(hex)?, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_person_and_their_bucket_share_a_slot_and_the_key_is_whole() {
        let k = PeselKey::from_bytes(*b"\x12\x34abcdefghijklmn");
        assert_eq!(
            person_key(&k, "acct"),
            format!("census:{{1234}}:{}:acct", hex::encode(b"abcdefghijklmn"))
        );
        assert_eq!(registry_bucket0(&k), "census:{1234}:r:0");
        assert_eq!(slot(&person_key(&k, "lock")), slot(&registry_bucket0(&k)));
        assert_eq!(tag_slot(&k), slot(&registry_bucket0(&k)));
        assert_eq!(&registry_field(&k), b"abcdefghijklmn");
    }

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("census:{nopesel}:seq"), slot("nopesel"));
        assert_eq!(slot("a{}b"), slot("a{}b"));
    }

    #[test]
    fn entries_round_trip_and_garbage_is_refused() {
        let e = RegistryEntry {
            maiden: [7; 8],
            reserved: true,
        };
        assert_eq!(RegistryEntry::decode(&e.encode()), Some(e));
        assert_eq!(RegistryEntry::decode(b"short"), None);
        assert_eq!(RegistryEntry::decode(b"12345678x"), None);
    }

    #[test]
    fn legacy_keys_are_recognised() {
        let k = PeselKey::from_bytes([0xab; 16]);
        let old = format!("census:{{{}}}:s:ff", k.to_hex());
        assert_eq!(legacy_person_key(&old), Some((k, "s:ff")));
        assert_eq!(legacy_person_key(&person_key(&k, "acct")), None);
        assert_eq!(legacy_person_key("census:{nopesel}:seq"), None);
    }
}
