//! Hand-off mode: each accepted client connection is passed to a gateway over a Unix
//! socket (SCM_RIGHTS, [`net::fdpass`]), so the lb leaves the data path.
//!
//! Each core keeps [`LINKS_PER_UPSTREAM`] connections ("links") to every upstream's
//! `HANDOFF` socket, opened when first needed. A link that fails is dropped and opened
//! again once; if that fails too, the upstream is marked down and the client goes to
//! the next one. With no live upstream the client connection is closed.
//!
//! # The link protocol
//!
//! ```text
//! lb ──► gateway   one byte + SCM_RIGHTS(client fd), per client (one sendmsg)
//! lb ◄── gateway   one verdict byte per client, in the order they were sent:
//!                  '+' taken (the lb closes its copy), '-' refused (the lb still holds
//!                  the client and hands it to another upstream)
//! ```
//!
//! The gateway refuses a client it cannot serve: at its `MAX_CONNECTIONS`, or out of
//! file descriptors (the kernel then truncates the control data, `MSG_CTRUNC`, and
//! drops the fd, so the gateway sees a data byte without its fd). It writes the
//! verdicts of every message it read in one batch, once it has nothing more to read, so
//! a burst costs one write; the lb reads them on a task of its own per link, off the
//! accept path, which stays one `sendmsg` per client. A refused client is tried on the
//! upstreams it has not been refused by, and the refusing upstream is skipped for
//! [`crate::upstreams::DOWN_RETRY`]. A link that ends (the gateway exited) hands its
//! clients still waiting for a verdict to the other upstreams: their gateway's copies
//! died with it. A client whose every upstream refused it is closed.
//!
//! Until its verdict the lb holds its copy of the client, so a client the gateway closes
//! at once sees the end of the stream only after its verdict: a few microseconds on a
//! gateway that takes its links, longer while a gateway is out of fds before it has
//! accepted a new link (it answers once it has an fd for the link).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use monoio::net::UnixStream;
use net::addr::Addr;
use net::fdpass;
use net::Stream;

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
/// Verdict bytes read at a time.
const VERDICT_BUF: usize = 64;

/// One core's links to the upstreams.
pub struct Links(Rc<Shared>);

struct Shared {
    upstreams: Upstreams,
    /// `links[upstream][k]`: an open link, or `None` until one is needed.
    links: RefCell<Vec<[Option<Rc<Link>>; LINKS_PER_UPSTREAM]>>,
    /// Next link to use, per upstream.
    turn: RefCell<Vec<usize>>,
}

/// One open link and the clients sent on it that wait for their verdict.
struct Link {
    sock: UnixStream,
    upstream: usize,
    /// In the order they were sent, which is the order of the verdicts.
    waiting: RefCell<VecDeque<Handed>>,
}

/// A client handed over and not yet taken.
struct Handed {
    client: Stream,
    /// The upstreams it was sent to, one bit each (index modulo 64).
    tried: u64,
}

fn bit(i: usize) -> u64 {
    1 << (i % 64)
}

impl Links {
    pub fn new(addrs: Vec<Addr>) -> Links {
        let n = addrs.len();
        Links(Rc::new(Shared {
            upstreams: Upstreams::new(addrs),
            links: RefCell::new((0..n).map(|_| Default::default()).collect()),
            turn: RefCell::new(vec![0; n]),
        }))
    }

    /// Clients handed over that still wait for their verdict.
    pub fn waiting(&self) -> usize {
        self.0
            .links
            .borrow()
            .iter()
            .flatten()
            .flatten()
            .map(|link| link.waiting.borrow().len())
            .sum()
    }

    /// Passes `client` to the next live upstream; the lb keeps it until that upstream
    /// answers (see the module doc). False when no upstream could be sent it (it is
    /// closed).
    pub async fn hand_off(&self, client: Stream) -> bool {
        hand_off(&self.0, client, 0).await
    }
}

/// Sends `client` to the next live upstream not in `tried`.
async fn hand_off(shared: &Rc<Shared>, client: Stream, mut tried: u64) -> bool {
    for i in shared.upstreams.order() {
        if tried & bit(i) != 0 {
            continue;
        }
        tried |= bit(i);
        match send(shared, i, &client).await {
            // No await since the sendmsg: the link's reader cannot have read this
            // client's verdict yet.
            Ok(link) => {
                link.waiting
                    .borrow_mut()
                    .push_back(Handed { client, tried });
                return true;
            }
            Err(e) => {
                let gone: Vec<Rc<Link>> = shared.links.borrow_mut()[i]
                    .iter_mut()
                    .filter_map(Option::take)
                    .collect();
                for link in gone {
                    let _ = fdpass::shutdown_write(&link.sock);
                }
                shared.upstreams.mark_down(i, &e);
            }
        }
    }
    false
}

/// Sends `client` over one of upstream `i`'s links, reopening it once if it fails
/// (the gateway may have restarted since it was opened). Returns the link it went on.
async fn send(shared: &Rc<Shared>, i: usize, client: &Stream) -> io::Result<Rc<Link>> {
    let k = {
        let mut turn = shared.turn.borrow_mut();
        let k = turn[i];
        turn[i] = (k + 1) % LINKS_PER_UPSTREAM;
        k
    };
    let existing = shared.links.borrow()[i][k].clone();
    if let Some(link) = existing {
        match send_on(&link.sock, client).await {
            Ok(()) => return Ok(link),
            Err(_) => drop_link(shared, &link),
        }
    }
    let addr = shared.upstreams.addr(i).clone();
    let link = Rc::new(Link {
        sock: open_link(&addr).await?,
        upstream: i,
        waiting: RefCell::new(VecDeque::new()),
    });
    shared.links.borrow_mut()[i][k] = Some(link.clone());
    monoio::spawn(read_verdicts(shared.clone(), link.clone()));
    match send_on(&link.sock, client).await {
        Ok(()) => Ok(link),
        Err(e) => {
            drop_link(shared, &link);
            Err(e)
        }
    }
}

/// Stops using `link`: nothing more is sent on it, and its gateway, reading the end of
/// the stream, answers what it got and closes it.
fn drop_link(shared: &Shared, link: &Rc<Link>) {
    forget(shared, link);
    let _ = fdpass::shutdown_write(&link.sock);
}

/// Takes `link` out of its upstream's slots.
fn forget(shared: &Shared, link: &Rc<Link>) {
    let mut links = shared.links.borrow_mut();
    for slot in links[link.upstream].iter_mut() {
        if slot.as_ref().is_some_and(|l| Rc::ptr_eq(l, link)) {
            *slot = None;
        }
    }
}

/// Reads `link`'s verdicts until it ends: a taken client is closed here (the gateway
/// has its own copy), a refused one goes to another upstream. When the link ends, the
/// clients still waiting go to other upstreams.
async fn read_verdicts(shared: Rc<Shared>, link: Rc<Link>) {
    let mut buf = [0u8; VERDICT_BUF];
    let why = 'read: loop {
        let n = match fdpass::recv_bytes(&link.sock, &mut buf) {
            Ok(0) => break io::Error::from(io::ErrorKind::UnexpectedEof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Err(e) = link.sock.readable(false).await {
                    break e;
                }
                continue;
            }
            Err(e) => break e,
        };
        for &verdict in &buf[..n] {
            let Some(handed) = link.waiting.borrow_mut().pop_front() else {
                drop_link(&shared, &link);
                break 'read io::Error::other("a verdict for no client");
            };
            if verdict == fdpass::TAKEN {
                shared.upstreams.mark_up(link.upstream);
            } else {
                shared.upstreams.mark_down(
                    link.upstream,
                    &io::Error::other("refused a connection: at its cap or out of fds"),
                );
                hand_off(&shared, handed.client, handed.tried).await;
            }
        }
    };
    forget(&shared, &link);
    let waiting: Vec<Handed> = link.waiting.borrow_mut().drain(..).collect();
    if !waiting.is_empty() {
        net::log!(
            "hand-off: link to {} ended ({why}) with {} client(s) unanswered; handing them on",
            shared.upstreams.addr(link.upstream),
            waiting.len()
        );
        shared.upstreams.mark_down(link.upstream, &why);
    }
    for handed in waiting {
        hand_off(&shared, handed.client, handed.tried).await;
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
async fn send_on(link: &UnixStream, client: &Stream) -> io::Result<()> {
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
