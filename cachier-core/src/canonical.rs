//! The canonical encoding that cache keys are hashed from.
//!
//! Any `Serialize` value maps to one byte string that depends only on the value,
//! never on the process, build, machine or iteration order:
//!
//! - every item starts with a tag byte naming its kind, and integers keep their width,
//!   so values of different shapes never encode alike;
//! - strings, byte strings and sequences carry their length, so `("1", "23")` and
//!   `("12", "3")` differ;
//! - maps are encoded with their entries sorted by encoded key, and so are
//!   `HashSet`, `hashbrown::HashSet` and `IndexSet` (recognised by type name),
//!   so equal collections give equal keys whatever order they iterate in; every
//!   other sequence keeps its order;
//! - enum variants are encoded by name, so reordering variants keeps keys;
//! - newtype structs are transparent.
//!
//! ```
//! use std::collections::HashMap;
//! let a: HashMap<_, _> = (0..50u32).map(|i| (i, i * 2)).collect();
//! let mut b = HashMap::new();
//! for i in (0..50u32).rev() { b.insert(i, i * 2); }
//! assert_eq!(cachier_core::canonical::encode(&a).unwrap(), cachier_core::canonical::encode(&b).unwrap());
//! ```

use std::ops::Range;

use serde::ser::{self, Serialize};

use crate::error::{Error, Result};

/// Encodes `value` canonically into a fresh buffer.
///
/// # Errors
/// [`Error::Key`] when the value's `Serialize` implementation fails.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(&mut out, value)?;
    Ok(out)
}

/// Appends the canonical encoding of `value` to `out`.
///
/// # Errors
/// [`Error::Key`] when the value's `Serialize` implementation fails.
pub fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    value.serialize(&mut Encoder { out }).map_err(|e| Error::Key(e.0))
}

mod tag {
    pub const UNIT: u8 = 0x00;
    pub const NONE: u8 = 0x01;
    pub const SOME: u8 = 0x02;
    pub const BOOL: u8 = 0x03;
    pub const I8: u8 = 0x10;
    pub const I16: u8 = 0x11;
    pub const I32: u8 = 0x12;
    pub const I64: u8 = 0x13;
    pub const I128: u8 = 0x14;
    pub const U8: u8 = 0x18;
    pub const U16: u8 = 0x19;
    pub const U32: u8 = 0x1a;
    pub const U64: u8 = 0x1b;
    pub const U128: u8 = 0x1c;
    pub const F32: u8 = 0x20;
    pub const F64: u8 = 0x21;
    pub const CHAR: u8 = 0x22;
    pub const STR: u8 = 0x23;
    pub const BYTES: u8 = 0x24;
    pub const SEQ: u8 = 0x30;
    pub const SET: u8 = 0x31;
    pub const TUPLE: u8 = 0x32;
    pub const MAP: u8 = 0x33;
    pub const STRUCT: u8 = 0x34;
    pub const UNIT_STRUCT: u8 = 0x35;
    pub const VARIANT: u8 = 0x36;
}

/// The error a `Serialize` impl reports through `serde::ser::Error::custom`.
#[derive(Debug)]
struct EncodeError(String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

type EncodeResult<T = ()> = std::result::Result<T, EncodeError>;

/// Writes the canonical encoding into `out`. Its methods are `#[inline]`:
/// keys are encoded by generic code in the caller's crate, where calls into
/// this crate's small methods cost a memory hit about a tenth of its time.
struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    #[inline]
    fn tagged(&mut self, tag: u8, bytes: &[u8]) -> EncodeResult {
        self.out.push(tag);
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn len_prefixed(&mut self, tag: u8, bytes: &[u8]) -> EncodeResult {
        self.tagged(tag, &(bytes.len() as u64).to_le_bytes())?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn name(&mut self, name: &str) {
        self.out.extend_from_slice(&(name.len() as u64).to_le_bytes());
        self.out.extend_from_slice(name.as_bytes());
    }

    /// Starts a sequence-like item whose element count is patched in by `finish`.
    #[inline]
    fn open(&mut self, tag: u8) -> Counted<'_> {
        self.out.push(tag);
        let at = self.out.len();
        self.out.extend_from_slice(&0u64.to_le_bytes());
        Counted {
            out: self.out,
            at,
            count: 0,
        }
    }

    fn sorted(&mut self, tag: u8) -> Sorted<'_> {
        self.out.push(tag);
        self.out.extend_from_slice(&0u64.to_le_bytes());
        Sorted {
            start: self.out.len(),
            out: self.out,
            items: Vec::new(),
            pending: None,
        }
    }
}

/// Is `I` (behind any references) a set type whose iteration order is arbitrary?
fn is_unordered_set<I>() -> bool {
    let name = std::any::type_name::<I>().trim_start_matches(['&', ' ']);
    let name = name.strip_prefix("mut ").unwrap_or(name);
    let path = name.split('<').next().unwrap_or(name);
    matches!(path.rsplit("::").next(), Some("HashSet" | "IndexSet"))
}

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Counted<'a>;
    type SerializeTuple = Counted<'a>;
    type SerializeTupleStruct = Counted<'a>;
    type SerializeTupleVariant = Counted<'a>;
    type SerializeMap = Sorted<'a>;
    type SerializeStruct = Counted<'a>;
    type SerializeStructVariant = Counted<'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> EncodeResult {
        self.tagged(tag::BOOL, &[u8::from(v)])
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> EncodeResult {
        self.tagged(tag::I8, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> EncodeResult {
        self.tagged(tag::I16, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> EncodeResult {
        self.tagged(tag::I32, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> EncodeResult {
        self.tagged(tag::I64, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> EncodeResult {
        self.tagged(tag::I128, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> EncodeResult {
        self.tagged(tag::U8, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> EncodeResult {
        self.tagged(tag::U16, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> EncodeResult {
        self.tagged(tag::U32, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> EncodeResult {
        self.tagged(tag::U64, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> EncodeResult {
        self.tagged(tag::U128, &v.to_le_bytes())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> EncodeResult {
        self.tagged(tag::F32, &v.to_bits().to_le_bytes())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> EncodeResult {
        self.tagged(tag::F64, &v.to_bits().to_le_bytes())
    }
    #[inline]
    fn serialize_char(self, v: char) -> EncodeResult {
        self.tagged(tag::CHAR, &u32::from(v).to_le_bytes())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> EncodeResult {
        self.len_prefixed(tag::STR, v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> EncodeResult {
        self.len_prefixed(tag::BYTES, v)
    }
    #[inline]
    fn serialize_none(self) -> EncodeResult {
        self.tagged(tag::NONE, &[])
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> EncodeResult {
        self.out.push(tag::SOME);
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> EncodeResult {
        self.tagged(tag::UNIT, &[])
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> EncodeResult {
        self.tagged(tag::UNIT_STRUCT, &[])
    }
    #[inline]
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> EncodeResult {
        self.open(tag::VARIANT).named(variant).end_counted()
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> EncodeResult {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> EncodeResult {
        let mut item = self.open(tag::VARIANT).named(variant);
        ser::SerializeSeq::serialize_element(&mut item, value)?;
        item.end_counted()
    }
    #[inline]
    fn serialize_seq(self, _len: Option<usize>) -> EncodeResult<Counted<'a>> {
        Ok(self.open(tag::SEQ))
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> EncodeResult<Counted<'a>> {
        Ok(self.open(tag::TUPLE))
    }
    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, _len: usize) -> EncodeResult<Counted<'a>> {
        Ok(self.open(tag::STRUCT))
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _len: usize,
    ) -> EncodeResult<Counted<'a>> {
        Ok(self.open(tag::VARIANT).named(variant))
    }
    #[inline]
    fn serialize_map(self, _len: Option<usize>) -> EncodeResult<Sorted<'a>> {
        Ok(self.sorted(tag::MAP))
    }
    #[inline]
    fn serialize_struct(self, _: &'static str, _len: usize) -> EncodeResult<Counted<'a>> {
        Ok(self.open(tag::STRUCT))
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _len: usize,
    ) -> EncodeResult<Counted<'a>> {
        Ok(self.open(tag::VARIANT).named(variant))
    }

    fn collect_seq<I>(self, iter: I) -> EncodeResult
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if is_unordered_set::<I>() {
            let mut set = self.sorted(tag::SET);
            iter.into_iter().try_for_each(|item| set.push(&item))?;
            set.finish()
        } else {
            let mut seq = self.open(tag::SEQ);
            iter.into_iter()
                .try_for_each(|item| ser::SerializeSeq::serialize_element(&mut seq, &item))?;
            seq.end_counted()
        }
    }
}

/// An item made of a counted run of elements; the count is patched in at the end.
struct Counted<'a> {
    out: &'a mut Vec<u8>,
    at: usize,
    count: u64,
}

impl Counted<'_> {
    #[inline]
    fn named(self, name: &str) -> Self {
        Encoder { out: &mut *self.out }.name(name);
        self
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> EncodeResult {
        self.count += 1;
        value.serialize(&mut Encoder { out: &mut *self.out })
    }

    #[inline]
    fn end_counted(self) -> EncodeResult {
        self.out[self.at..self.at + 8].copy_from_slice(&self.count.to_le_bytes());
        Ok(())
    }
}

macro_rules! counted_compound {
    ($($trait:ident :: $method:ident ($($skip:ty),*)),* $(,)?) => {$(
        impl ser::$trait for Counted<'_> {
            type Ok = ();
            type Error = EncodeError;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $skip,)* value: &T) -> EncodeResult {
                self.element(value)
            }
            #[inline]
            fn end(self) -> EncodeResult {
                self.end_counted()
            }
        }
    )*};
}

counted_compound!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

/// An item whose elements (or map entries) are put in the order of their
/// encodings, so that their iteration order does not matter (maps, unordered
/// sets): each is encoded in place, after the tag and a count patched in at
/// the end, and the run is then reordered with one copy.
struct Sorted<'a> {
    out: &'a mut Vec<u8>,
    /// Where the first element begins in `out`.
    start: usize,
    /// Where each element lies in `out`.
    items: Vec<Range<usize>>,
    /// Where a map entry whose key is encoded, and value pending, begins.
    pending: Option<usize>,
}

impl Sorted<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> EncodeResult {
        let begin = self.pending.take().unwrap_or(self.out.len());
        value.serialize(&mut Encoder { out: self.out })?;
        self.items.push(begin..self.out.len());
        Ok(())
    }

    fn finish(mut self) -> EncodeResult {
        let count = (self.items.len() as u64).to_le_bytes();
        self.out[self.start - count.len()..self.start].copy_from_slice(&count);
        if self.items.len() > 1 {
            let run = self.out.split_off(self.start);
            let at = |range: &Range<usize>| &run[range.start - self.start..range.end - self.start];
            self.items.sort_unstable_by(|a, b| at(a).cmp(at(b)));
            self.items
                .iter()
                .for_each(|item| self.out.extend_from_slice(at(item)));
        }
        Ok(())
    }
}

impl ser::SerializeMap for Sorted<'_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> EncodeResult {
        self.pending = Some(self.out.len());
        key.serialize(&mut Encoder { out: self.out })
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> EncodeResult {
        self.push(value)
    }

    fn end(self) -> EncodeResult {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap, HashSet};

    use super::*;

    #[test]
    fn length_prefixes_keep_adjacent_strings_apart() {
        assert_ne!(encode(&("1", "23")).unwrap(), encode(&("12", "3")).unwrap());
        assert_ne!(encode(&(1u64, 23u64)).unwrap(), encode(&(12u64, 3u64)).unwrap());
    }

    #[test]
    fn hash_sets_and_maps_ignore_iteration_order() {
        let forward: HashSet<String> = (0..64).map(|i| i.to_string()).collect();
        let mut backward = HashSet::with_capacity(1024);
        backward.extend((0..64).rev().map(|i| i.to_string()));
        assert_ne!(
            forward.iter().collect::<Vec<_>>(),
            backward.iter().collect::<Vec<_>>(),
            "the two sets should iterate differently for this test to mean anything"
        );
        assert_eq!(encode(&forward).unwrap(), encode(&backward).unwrap());

        let a: HashMap<String, u64> = forward.iter().map(|k| (k.clone(), 1)).collect();
        let b: HashMap<String, u64> = backward.iter().map(|k| (k.clone(), 1)).collect();
        assert_eq!(encode(&a).unwrap(), encode(&b).unwrap());
    }

    #[test]
    fn maps_nested_in_maps_and_sets_ignore_iteration_order_too() {
        let nested = |order: &mut dyn Iterator<Item = u32>| -> HashMap<String, HashMap<u32, HashSet<u32>>> {
            let mut outer = HashMap::with_capacity(256);
            for i in order {
                let inner: &mut HashMap<u32, HashSet<u32>> = outer.entry(format!("k{}", i % 5)).or_default();
                inner.entry(i % 7).or_default().insert(i);
            }
            outer
        };
        let (a, b) = (nested(&mut (0..100)), nested(&mut (0..100).rev()));
        assert_eq!(encode(&a).unwrap(), encode(&b).unwrap());
        // Sorted by the whole encoded entry, the outer keys come out in order.
        let encoded = encode(&a).unwrap();
        let at = |needle: &str| {
            encoded
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap()
        };
        assert!(at("k0") < at("k1") && at("k1") < at("k4"));
    }

    #[test]
    fn ordered_sequences_keep_their_order() {
        assert_ne!(encode(&vec![1, 2]).unwrap(), encode(&vec![2, 1]).unwrap());
        assert_ne!(encode(&[1u8, 2]).unwrap(), encode(&[2u8, 1]).unwrap());
    }

    #[test]
    fn sets_and_sequences_with_equal_elements_differ() {
        let set: BTreeSet<u8> = [1, 2].into();
        let hash_set: HashSet<u8> = [1, 2].into();
        assert_ne!(encode(&vec![1u8, 2]).unwrap(), encode(&hash_set).unwrap());
        // A BTreeSet iterates in a fixed order, so it is kept as a sequence.
        assert_eq!(encode(&vec![1u8, 2]).unwrap(), encode(&set).unwrap());
    }

    #[test]
    fn map_values_are_not_confused_with_keys() {
        let a: HashMap<u8, u8> = [(1, 2)].into();
        let b: HashMap<u8, u8> = [(2, 1)].into();
        assert_ne!(encode(&a).unwrap(), encode(&b).unwrap());
    }

    #[test]
    fn integer_widths_and_options_are_distinguished() {
        assert_ne!(encode(&1u32).unwrap(), encode(&1u64).unwrap());
        assert_ne!(encode(&Some(0u8)).unwrap(), encode(&0u8).unwrap());
        assert_ne!(encode(&None::<u8>).unwrap(), encode(&()).unwrap());
    }

    #[test]
    fn failing_serialize_impls_become_key_errors() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: ser::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no key for me"))
            }
        }
        let err = encode(&(1u8, Refuses)).unwrap_err();
        assert!(matches!(err, Error::Key(ref m) if m == "no key for me"), "{err}");
    }
}
