//! The ready line: the one line a server writes on standard output once every listener
//! it has is bound, so that whoever started it knows where to connect and when.
//!
//! ```text
//! ready listen 127.0.0.1:40001
//! ready listen unix:/tmp/run/gateway-1.sock internal unix:/tmp/run/gateway-1.internal handoff unix:/tmp/run/gateway-1.handoff
//! ```
//!
//! The word `ready`, then `key value` pairs separated by single spaces; `listen` comes
//! first and is the address actually bound (`host:port` with the real port when `LISTEN`
//! asked for port 0, or `unix:/path`), in the form `LISTEN` takes. Values are written as
//! they are: an address holding whitespace cannot be read back. The gateway adds
//! `internal` (its internal plane, with `INTERNAL_LISTEN`) and `handoff` (with
//! `HANDOFF`), in that order. Logs stay on standard
//! error; nothing else is written to standard output.

use std::fmt::Display;
use std::io::Write;

use crate::addr::Addr;

/// The ready line for `listen` and the further `pairs`, without the newline.
pub fn line(listen: &Addr, pairs: &[(&str, &dyn Display)]) -> String {
    let mut out = format!("ready listen {listen}");
    for (key, value) in pairs {
        out.push_str(&format!(" {key} {value}"));
    }
    out
}

/// Writes the ready line on standard output and flushes it. A closed standard output is
/// not an error: the server keeps serving whoever connects.
pub fn announce(listen: &Addr, pairs: &[(&str, &dyn Display)]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(listen, pairs));
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_first_then_pairs() {
        let tcp = Addr::parse("127.0.0.1:40001").unwrap();
        assert_eq!(line(&tcp, &[]), "ready listen 127.0.0.1:40001");
        let unix = Addr::parse("unix:/tmp/g.sock").unwrap();
        let handoff = Addr::parse("unix:/tmp/g.handoff").unwrap();
        assert_eq!(
            line(&unix, &[("handoff", &handoff)]),
            "ready listen unix:/tmp/g.sock handoff unix:/tmp/g.handoff"
        );
    }
}
