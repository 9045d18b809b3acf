//! Unit tests of `pg_dict`.

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn prefix_ends_bound_every_extension() {
    assert_eq!(prefix_end(b""), None);
    assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
    assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
    assert_eq!(prefix_end(b"\xff\xff"), None);
}
