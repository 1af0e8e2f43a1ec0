#!/usr/bin/env python3
"""Writes each fuzz target's seed corpus from the literals in the tests of the code it
drives: every string and byte-string literal after `#[cfg(test)]` in those files (and in
the integration tests that speak the same wire), with format placeholders filled in.

    fuzz/seed.py OUT_DIR        # writes OUT_DIR/<target>/<sha1>
"""
import hashlib
import os
import re
import struct
import sys
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ID = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"

# Target -> (files whose tests hold its inputs, a prefix byte some targets read first).
TARGETS = {
    "http_request": (["crates/http1/src/request/mod.rs", "crates/http1/src/request/head.rs",
                      "crates/http1/src/request/query.rs", "crates/http1/src/server.rs",
                      "tests/planes.rs", "tests/connections.rs", "tests/http.rs"], [b""]),
    "payment_body": (["src/intake/body.rs", "src/intake/routes.rs"], [b""]),
    "amount": (["crates/domain/src/money.rs"], [b""]),
    "iso8601": (["crates/domain/src/time.rs", "src/intake/routes.rs"], [b""]),
    "http_response_head": (["crates/http1/src/client/framing.rs",
                            "crates/http1/src/client/mod.rs"], [b"\x00", b"\x01"]),
    "chunked": (["crates/http1/src/client/chunked.rs", "crates/http1/src/client/mod.rs"],
                [b"\x00", b"\x03\x40\x80\xc0"]),
    "resp_frame": (["crates/redis-wire/src/frame.rs", "crates/redis-wire/src/conn.rs"], [b""]),
    "peer_wire": (["src/ledger/memory.rs", "src/upstream/health/encoding.rs",
                   "src/ledger/claims.rs"], [b""]),
    "processor_wire": (["src/upstream/api.rs", "src/upstream/health/poll.rs",
                        "crates/processor-sim/src/lib.rs"], [b""]),
    # Binary: its seeds are built by journal_seeds(), not read from literals.
    "journal": ([], [b""]),
}

# Byte strings, strings, and their raw forms.
LITERAL = re.compile(r'(b?)r(#*)"(.*?)"\2|(b?)"((?:[^"\\]|\\.)*)"', re.S)


def unescape(body: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = body[i + 1]
        if n == "\n":  # line continuation: skip the newline and leading whitespace
            i += 2
            while i < len(body) and body[i] in " \t":
                i += 1
            continue
        simple = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'", "0": b"\0"}
        if n in simple:
            out += simple[n]
            i += 2
        elif n == "x":
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        elif n == "u":
            end = body.index("}", i)
            out += chr(int(body[i + 3:end], 16)).encode()
            i = end + 1
        else:
            out += body[i:i + 2].encode()
            i += 2
    return bytes(out)


def literals(path: str):
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    start = text.find("#[cfg(test)]")
    if not path.startswith("tests/") and start < 0:
        return
    for m in LITERAL.finditer(text[max(start, 0):]):
        if m.group(3) is not None:
            value = m.group(3).encode()
        else:
            value = unescape(m.group(5))
        # format! placeholders as the tests fill them.
        value = value.replace(b"{ID}", ID.encode()).replace(b"{{", b"{").replace(b"}}", b"}")
        if value:
            yield value


def journal_entry(kind: int, payload: bytes) -> bytes:
    """One journal entry as src/ledger/journal.rs documents it: len u16 | kind u8 |
    payload | crc32 (IEEE, of kind and payload), little-endian."""
    body = bytes([kind]) + payload
    return struct.pack("<H", len(payload)) + body + struct.pack("<I", zlib.crc32(body))


def journal_seeds():
    """A few journals: one payment's whole life, one in flight, a purge, a torn tail."""
    def accepted(i, cents):
        return journal_entry(1, i.to_bytes(16, "little") + struct.pack("<q", cents))

    def intent(i, processor, at):
        return journal_entry(2, i.to_bytes(16, "little") + bytes([processor]) + struct.pack("<q", at))

    def recorded(i, processor, at, cents):
        return journal_entry(3, i.to_bytes(16, "little") + bytes([processor])
                             + struct.pack("<qq", at, cents))

    def done(i):
        return journal_entry(4, i.to_bytes(16, "little"))

    purged = journal_entry(5, b"")
    life = accepted(1, 1990) + intent(1, 0, 10) + recorded(1, 0, 10, 1990)
    flight = accepted(2, 500) + intent(2, 0, 20) + intent(2, 1, 21)
    return [
        life,
        life + flight,
        life + flight + accepted(3, 7) + done(3) + purged + recorded(2, 1, 21, 500),
        life + flight + intent(2, 0, 22)[:-3],
    ]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    for target, (files, prefixes) in TARGETS.items():
        seeds = {v for f in files if os.path.exists(os.path.join(ROOT, f)) for v in literals(f)}
        if target == "journal":
            seeds |= set(journal_seeds())
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for seed in seeds:
            for prefix in prefixes:
                data = prefix + seed
                name = hashlib.sha1(data).hexdigest()
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
        print(f"{target}: {len(seeds) * len(prefixes)} seeds")


if __name__ == "__main__":
    main()
