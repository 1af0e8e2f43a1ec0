//! The request parser on any bytes: it never panics, what it accepts httparse reads
//! alike, a complete request's prefixes are incomplete rather than errors, and header and
//! query access work on whatever it accepted.
#![no_main]

use http1::request::{parse, query_param, Method, Status, MAX_HEADERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let req = match parse(data) {
        Ok(Status::Complete(req)) => req,
        Ok(Status::Partial) => return,
        Err(e) => {
            assert!((400..=599).contains(&e.status()));
            assert!(!e.reason().is_empty());
            return;
        }
    };
    let n = req.len();
    assert!(n <= data.len() && req.head_len <= n);
    assert_eq!(req.body.len(), req.content_length);
    assert_eq!(req.body, &data[req.head_len..n]);

    // A prefix of an accepted request is only ever incomplete.
    for cut in [
        0,
        req.head_len / 2,
        req.head_len.saturating_sub(1),
        n.saturating_sub(1),
    ] {
        if cut < n {
            assert!(
                matches!(parse(&data[..cut]), Ok(Status::Partial)),
                "prefix of {cut} bytes"
            );
        }
    }

    // httparse reads the same head.
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut reference = httparse::Request::new(&mut headers);
    let parsed = reference.parse(&data[..req.head_len]);
    assert_eq!(
        parsed,
        Ok(httparse::Status::Complete(req.head_len)),
        "httparse disagrees"
    );
    assert_eq!(reference.version, Some(req.minor_version));
    let target = reference.path.expect("a path").as_bytes();
    let (path, query) = match target.iter().position(|&c| c == b'?') {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    };
    assert_eq!(path, req.path);
    assert_eq!(query, req.query);
    let method = match reference.method.expect("a method") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    assert_eq!(method, req.method);
    for h in reference.headers.iter() {
        let ours = req.header(h.name).expect("every header httparse sees");
        // The first header of that name is what both return.
        let first = reference
            .headers
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(h.name))
            .unwrap();
        assert_eq!(ours, trim(first.value));
    }

    if let Some(q) = req.query {
        for name in ["from", "to", ""] {
            if let Ok(Some(v)) = query_param(q, name) {
                assert!(v.len() <= q.len());
            }
        }
    }
});

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
