//! Hand-off mode: each accepted client connection is passed to a gateway over a Unix
//! socket (SCM_RIGHTS, [`net::fdpass`]) and the lb's copy is closed, so the lb
//! leaves the data path.
//!
//! Each core keeps [`LINKS_PER_UPSTREAM`] connections ("links") to every upstream's
//! `HANDOFF` socket, opened when first needed. A link that fails is dropped and opened
//! again once; if that fails too, the upstream is marked down and the client goes to
//! the next one. With no live upstream the client connection is closed.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use monoio::net::UnixStream;
use net::addr::Addr;
use net::fdpass;

use crate::upstreams::Upstreams;

/// Links from one lb core to one gateway. A gateway serves each link on the core that
/// accepted it, so a few links let a multi-core gateway spread the connections it is
/// handed over its cores.
pub const LINKS_PER_UPSTREAM: usize = 4;
/// Longest wait to open a link: a Unix connect completes at once unless the gateway's
/// accept backlog is full, which means it is stuck.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest wait for room in a link's socket buffer. A full buffer means the gateway has
/// stopped taking connections; past this it is treated as down, so one stuck gateway
/// cannot hold the accept loop for long.
const SEND_STALL_TIMEOUT: Duration = Duration::from_millis(500);

/// One core's links to the upstreams.
pub struct Links {
    upstreams: Upstreams,
    /// `links[upstream][k]`: an open link, or `None` until one is needed.
    links: Vec<[Option<UnixStream>; LINKS_PER_UPSTREAM]>,
    /// Next link to use, per upstream.
    turn: Vec<usize>,
}

impl Links {
    pub fn new(addrs: Vec<Addr>) -> Links {
        let n = addrs.len();
        Links {
            upstreams: Upstreams::new(addrs),
            links: (0..n).map(|_| Default::default()).collect(),
            turn: vec![0; n],
        }
    }

    /// Passes `client` to the next live upstream. False when no upstream took it (the
    /// caller then closes it).
    pub async fn hand_off(&mut self, client: &impl AsRawFd) -> bool {
        for i in self.upstreams.order() {
            match self.send(i, client).await {
                Ok(()) => {
                    self.upstreams.mark_up(i);
                    return true;
                }
                Err(e) => {
                    for link in &mut self.links[i] {
                        *link = None;
                    }
                    self.upstreams.mark_down(i, &e);
                }
            }
        }
        false
    }

    /// Sends `client` over one of upstream `i`'s links, reopening it once if it fails
    /// (the gateway may have restarted since it was opened).
    async fn send(&mut self, i: usize, client: &impl AsRawFd) -> io::Result<()> {
        let k = self.turn[i];
        self.turn[i] = (k + 1) % LINKS_PER_UPSTREAM;
        let addr = self.upstreams.addr(i).clone();
        let slot = &mut self.links[i][k];
        if let Some(link) = slot {
            match send_on(link, client).await {
                Ok(()) => return Ok(()),
                Err(_) => *slot = None,
            }
        }
        let link = slot.insert(open_link(&addr).await?);
        let sent = send_on(link, client).await;
        if sent.is_err() {
            *slot = None;
        }
        sent
    }
}

/// Opens a link to an upstream's `HANDOFF` socket (always a Unix path).
async fn open_link(addr: &Addr) -> io::Result<UnixStream> {
    let Addr::Unix(path) = addr else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a Unix address",
        ));
    };
    match monoio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path)).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Sends `client`'s fd on `link`, waiting (bounded) while the link's buffer is full.
async fn send_on(link: &UnixStream, client: &impl AsRawFd) -> io::Result<()> {
    loop {
        match fdpass::send_fd(link, client) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match monoio::time::timeout(SEND_STALL_TIMEOUT, link.writable(false)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
            other => return other,
        }
    }
}
