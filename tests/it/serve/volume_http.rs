//! Volume files over HTTP: the contents' hash as `ETag`, conditional
//! reads (304), `HEAD`, and the length in a 416's `Content-Range`.

use vessel_tests::{Vessel, http, http_with_headers};

#[test]
fn files_carry_an_etag_answer_304_head_and_say_their_length_on_416() {
    let v = Vessel::new();
    let server = super::start(&v, &[]);
    let a = server.addr.as_str();
    let tok = v.token(&["volume:*:rw"], None);
    let t = Some(tok.as_str());
    assert_eq!(http(a, "POST", "/v1/volumes/vol", t, &[], b"").0, 201);
    let file = "/v1/volumes/vol/files/d/f.txt";
    assert_eq!(http(a, "PUT", file, t, &[], b"0123456789").0, 201);
    let (s, h, body) = http_with_headers(a, "GET", file, t, &[], b"");
    assert_eq!((s, body.as_slice()), (200, &b"0123456789"[..]));
    let etag = h["etag"].clone();
    assert_eq!(
        etag,
        format!("\"{}\"", blake3::hash(b"0123456789").to_hex()),
        "the contents' hash"
    );
    // Unchanged: 304 without a body; a stale tag, or new contents: 200.
    let (s, h, body) = http_with_headers(a, "GET", file, t, &[("If-None-Match", &etag)], b"");
    assert_eq!((s, body.len(), h["etag"].clone()), (304, 0, etag.clone()));
    assert_eq!(
        http(a, "GET", file, t, &[("If-None-Match", "\"abc\"")], b"").0,
        200
    );
    assert_eq!(
        http(a, "PUT", &format!("{file}?force=true"), t, &[], b"new").0,
        201
    );
    let (s, body) = http(a, "GET", file, t, &[("If-None-Match", &etag)], b"");
    assert_eq!((s, body.as_slice()), (200, &b"new"[..]));
    // HEAD: the headers alone.
    let (s, h, body) = http_with_headers(a, "HEAD", file, t, &[], b"");
    assert_eq!((s, body.len()), (200, 0));
    assert_eq!(h["content-length"], "3");
    assert!(h.contains_key("etag"));
    // A range past the end: 416 with the current length.
    let (s, h, _) = http_with_headers(a, "GET", file, t, &[("Range", "bytes=10-")], b"");
    assert_eq!(
        (s, h["content-range"].clone()),
        (416, "bytes */3".to_owned())
    );
    // If-Match means nothing on a read: refused rather than ignored.
    assert_eq!(http(a, "GET", file, t, &[("If-Match", &etag)], b"").0, 400);
}
