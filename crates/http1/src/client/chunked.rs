//! Decoding a `Transfer-Encoding: chunked` body, incrementally: input may be split at
//! any byte. Chunk extensions and trailers are skipped.

use super::MAX_RESPONSE_BYTES;

/// Where a [`ChunkedDecoder`] is in the chunked body grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits of a chunk size.
    Size(usize),
    /// After whitespace following the size: only `;` or CR may come.
    SizeEnd(usize),
    /// Inside chunk extensions, up to the CR.
    Extension(usize),
    /// CR of the chunk-size line seen, expecting LF.
    SizeLf(usize),
    /// Bytes of chunk data still to come.
    Data(usize),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer field line or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line, up to the CR.
    Trailer,
    /// CR of a trailer field line seen, expecting LF.
    TrailerLf,
    /// CR of the final empty line seen, expecting LF.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Incremental decoder of a chunked body: accepts input split at any byte.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: Chunk,
}

impl Default for ChunkedDecoder {
    fn default() -> ChunkedDecoder {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: Chunk::SizeStart,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Decodes from `input`, appending data to `body`. Returns the bytes consumed: all of
    /// `input`, or fewer when the body ended (the rest belongs to what follows).
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < input.len() && self.state != Chunk::Done {
            if let Chunk::Data(remaining) = self.state {
                let take = remaining.min(input.len() - i);
                body.extend_from_slice(&input[i..i + take]);
                i += take;
                self.state = match remaining - take {
                    0 => Chunk::DataCr,
                    left => Chunk::Data(left),
                };
                continue;
            }
            let byte = input[i];
            i += 1;
            self.state = step(self.state, byte)?;
        }
        Ok(i)
    }
}

/// One byte of the chunked grammar outside chunk data.
fn step(state: Chunk, byte: u8) -> Result<Chunk, &'static str> {
    const BARE_LF: &str = "bare LF in chunked body";
    let next = match (state, byte) {
        (Chunk::SizeStart, _) => match hex_value(byte) {
            Some(d) => Chunk::Size(d),
            None => return Err("invalid chunk size"),
        },
        (Chunk::Size(n), b';') => Chunk::Extension(n),
        (Chunk::Size(n), b'\r') => Chunk::SizeLf(n),
        (Chunk::Size(n), b' ' | b'\t') => Chunk::SizeEnd(n),
        (Chunk::Size(n), _) => match hex_value(byte) {
            Some(d) => {
                let n = n * 16 + d;
                if n > MAX_RESPONSE_BYTES {
                    return Err("chunk larger than MAX_RESPONSE_BYTES");
                }
                Chunk::Size(n)
            }
            None => return Err("invalid chunk size"),
        },
        (Chunk::SizeEnd(n), b' ' | b'\t') => Chunk::SizeEnd(n),
        (Chunk::SizeEnd(n), b';') => Chunk::Extension(n),
        (Chunk::SizeEnd(n), b'\r') => Chunk::SizeLf(n),
        (Chunk::SizeEnd(_), _) => return Err("invalid chunk size"),
        (Chunk::Extension(n), b'\r') => Chunk::SizeLf(n),
        (Chunk::Extension(_), b'\n') => return Err(BARE_LF),
        (Chunk::Extension(n), _) => Chunk::Extension(n),
        (Chunk::SizeLf(0), b'\n') => Chunk::TrailerStart,
        (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
        (Chunk::SizeLf(_), _) => return Err("chunk size line not ended by CRLF"),
        (Chunk::DataCr, b'\r') => Chunk::DataLf,
        (Chunk::DataCr, _) => return Err("chunk data not followed by CRLF"),
        (Chunk::DataLf, b'\n') => Chunk::SizeStart,
        (Chunk::DataLf, _) => return Err("chunk data not followed by CRLF"),
        (Chunk::TrailerStart, b'\r') => Chunk::FinalLf,
        (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
        (Chunk::TrailerStart | Chunk::Trailer, b'\n') => return Err(BARE_LF),
        (Chunk::TrailerStart | Chunk::Trailer, _) => Chunk::Trailer,
        (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
        (Chunk::TrailerLf, _) => return Err("trailer field not ended by CRLF"),
        (Chunk::FinalLf, b'\n') => Chunk::Done,
        (Chunk::FinalLf, _) => return Err("chunked body not ended by CRLF"),
        (Chunk::Data(_) | Chunk::Done, _) => {
            return Err("internal: byte fed in data or done state")
        }
    };
    Ok(next)
}

fn hex_value(byte: u8) -> Option<usize> {
    match byte {
        b'0'..=b'9' => Some(usize::from(byte - b'0')),
        b'a'..=b'f' => Some(usize::from(byte - b'a' + 10)),
        b'A'..=b'F' => Some(usize::from(byte - b'A' + 10)),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A chunked body with extensions, upper- and lower-case hex, leading zeros and
    /// trailers.
    pub(in crate::client) const CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
        Transfer-Encoding: chunked\r\n\r\n\
        5;name=\"a;b\"\r\n{\"a\":\r\n\
        00a \t; ext\r\n1234567890\r\n\
        1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
        1\r\n}\r\n\
        0;last\r\nX-Trailer: yes\r\nOther: 1\r\n\r\n";
    pub(in crate::client) const CHUNKED_BODY: &[u8] =
        b"{\"a\":1234567890abcdefghijklmnopqrstuvwxyz}";

    /// Feeds `input` to a fresh decoder in pieces cut at `cuts`; returns the body, the
    /// bytes consumed and whether the body ended.
    fn decode_in_pieces(
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, usize, bool), &'static str> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut consumed = 0;
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&input.len())) {
            pending.extend_from_slice(&input[start..end]);
            start = end;
            let used = decoder.feed(&pending, &mut body)?;
            consumed += used;
            pending.drain(..used);
            if decoder.is_done() {
                break;
            }
        }
        Ok((body, consumed, decoder.is_done()))
    }

    #[test]
    fn chunked_decoder_handles_every_split() {
        let start = CHUNKED.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut chunked = CHUNKED[start..].to_vec();
        let end = chunked.len();
        chunked.extend_from_slice(b"HTTP/1.1 next");
        for a in 0..=chunked.len() {
            for b in a..=chunked.len() {
                let (body, consumed, done) = decode_in_pieces(&chunked, &[a, b]).unwrap();
                assert_eq!(body, CHUNKED_BODY, "cuts {a} {b}");
                assert_eq!(consumed, end, "cuts {a} {b}");
                assert!(done);
            }
        }
        // One byte at a time.
        let cuts: Vec<usize> = (1..chunked.len()).collect();
        let (body, consumed, done) = decode_in_pieces(&chunked, &cuts).unwrap();
        assert_eq!((body.as_slice(), consumed, done), (CHUNKED_BODY, end, true));
    }

    #[test]
    fn chunked_decoder_table() {
        let good: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"3\r\nabc\r\n0\r\n\r\n", b"abc"),
            (b"3 ; a=b\r\nabc\r\n0\r\n\r\n", b"abc"),
            (b"3;a=\"x;y\";b\r\nabc\r\n0\r\n\r\n", b"abc"),
            (b"F\r\n0123456789abcde\r\n0\r\n\r\n", b"0123456789abcde"),
            (b"2\r\n\r\n\r\n0\r\nA: b\r\n\r\n", b"\r\n"),
        ];
        for &(input, want) in good {
            let (body, consumed, done) = decode_in_pieces(input, &[]).unwrap();
            assert_eq!((body.as_slice(), consumed, done), (want, input.len(), true));
        }
        let bad: &[&[u8]] = &[
            b"\r\n",
            b"g\r\n",
            b";x\r\n",
            b"3 x\r\n",
            b"3\nabc",
            b"3;x\nabc",
            b"3\r\nabcX\r\n",
            b"3\r\nabc\rX",
            b"0\r\nTrailer: x\nmore",
            b"0\r\n\rX",
            b"0\r\nA: b\rX",
            b"0\r\n\n",
            b"10001\r\n",
        ];
        for &input in bad {
            assert!(
                decode_in_pieces(input, &[]).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Incomplete input is not an error: the decoder waits for more.
        let (_, consumed, done) = decode_in_pieces(b"3\r\nab", &[]).unwrap();
        assert_eq!((consumed, done), (5, false));
    }
}
