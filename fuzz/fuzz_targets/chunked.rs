//! The chunked decoder: input split at any points decodes exactly as in one piece, and the
//! body is never larger than the input.
#![no_main]

use http1::client::chunked::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

/// Decodes `input` fed in pieces ending at `cuts`: the bytes consumed, the body and
/// whether it ended, or the error.
fn decode(input: &[u8], cuts: &[usize]) -> Result<(usize, Vec<u8>, bool), &'static str> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain([input.len()].iter()) {
        let cut = cut.clamp(at, input.len());
        let used = decoder.feed(&input[at..cut], &mut body)?;
        at += used;
        if decoder.is_done() {
            break;
        }
        assert_eq!(at, cut, "an unfinished decoder consumes all it is given");
    }
    Ok((at, body, decoder.is_done()))
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many split points follow (each one byte, scaled).
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (points, input) = rest.split_at(n);
    let mut cuts: Vec<usize> = points
        .iter()
        .map(|&p| usize::from(p) * input.len() / 256)
        .collect();
    cuts.sort_unstable();

    let whole = decode(input, &[]);
    let split = decode(input, &cuts);
    assert_eq!(whole, split);
    if let Ok((used, body, _)) = whole {
        assert!(used <= input.len());
        assert!(body.len() <= used);
    }
});
