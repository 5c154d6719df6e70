//! Interning keys: a series is looked up by the raw bytes of its identity, with no formatting and
//! no allocation once it is known.

use std::collections::HashMap;

/// Series ids by key bytes. aHash is randomly keyed, like the standard SipHash, so dimension
/// values crafted to collide cannot be aimed at it, and hashes these short keys several times
/// faster: the lookup ran for every SLO of every record (BENCHMARKS.md, "End to end").
pub(crate) type KeyTable<V> = HashMap<Box<[u8]>, V, ahash::RandomState>;

/// Writes the key of (`tag`, values) into `buf`, reusing its allocation: the tag (an SLO's index,
/// a kind of series), then each value after its length. The lengths keep keys unambiguous; raw
/// bytes cost no formatting (`write!` of the numbers took a sixth of the judged path's
/// instructions).
pub(crate) fn write_key<'v>(buf: &mut Vec<u8>, tag: usize, values: impl Iterator<Item = &'v str>) {
    buf.clear();
    buf.extend_from_slice(&tag.to_le_bytes());
    for v in values {
        buf.extend_from_slice(&v.len().to_le_bytes());
        buf.extend_from_slice(v.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::write_key;

    #[test]
    fn no_value_can_imitate_a_boundary() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_key(&mut a, 0, ["ab", "c"].into_iter());
        write_key(&mut b, 0, ["a", "bc"].into_iter());
        assert_ne!(a, b);
        write_key(&mut b, 1, ["ab", "c"].into_iter());
        assert_ne!(a, b, "the tag is part of the key");
        write_key(&mut b, 0, ["ab", "c"].into_iter());
        assert_eq!(a, b);
    }
}
