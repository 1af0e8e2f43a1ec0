//! Passing file descriptors over Unix stream sockets (SCM_RIGHTS): one of the
//! workspace's modules allowed `unsafe` (the others are process control: the stop
//! signals, `net::stop`, and the runner's children, `stack::procctl`).
//!
//! The lb hands each accepted client connection to a gateway as one data byte that
//! carries one fd in an SCM_RIGHTS control message ([`send_fd`]); the gateway takes the
//! fds out ([`recv_fds`]) and serves them, and answers each data byte with one verdict
//! byte on the same socket, [`TAKEN`] or [`REFUSED`] ([`send_bytes`], read by the lb
//! with [`recv_bytes`]): until then the lb keeps its own copy of the client, and a
//! refused one goes to another gateway. Neither std nor monoio exposes control
//! messages, so these calls go to `libc` here. All are non-blocking: the caller waits
//! for readiness on its runtime and calls again on `WouldBlock`.
#![allow(unsafe_code)]
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn
)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most fds taken from one received message. The lb sends one fd per message, and the
/// kernel never merges two messages that carry fds into one read, so one would do; a
/// few leave room for a sender that batches. Fds beyond this are closed by the kernel
/// and the message is marked truncated.
pub const MAX_FDS_PER_MSG: usize = 8;

/// Data bytes read per message: the lb sends one byte per fd.
const RECV_DATA_BYTES: usize = 16;

/// The data byte sent with each fd (its value carries no meaning).
const HANDOFF_BYTE: u8 = b'h';

/// The verdict byte for a connection the receiver serves: the sender may close its copy.
pub const TAKEN: u8 = b'+';
/// The verdict byte for a connection the receiver could not take (out of file
/// descriptors, or at its connection cap): the sender still holds the client and may
/// hand it to someone else.
pub const REFUSED: u8 = b'-';

/// Bytes of one fd inside a control message.
const FD_BYTES: usize = mem::size_of::<RawFd>();

/// Control-message bytes for one fd (what [`send_fd`] writes).
// SAFETY: CMSG_SPACE only computes a length from its argument.
const SEND_CMSG_LEN: usize = unsafe { libc::CMSG_SPACE(FD_BYTES as u32) } as usize;

/// Control-message bytes for [`MAX_FDS_PER_MSG`] fds (what [`recv_fds`] reads).
// SAFETY: CMSG_SPACE only computes a length from its argument.
const RECV_CMSG_LEN: usize =
    unsafe { libc::CMSG_SPACE((MAX_FDS_PER_MSG * FD_BYTES) as u32) } as usize;

/// Alignment of [`CmsgBuf`]; must be at least `cmsghdr`'s (checked below).
const CMSG_ALIGN: usize = 8;
const _: () = assert!(mem::align_of::<libc::cmsghdr>() <= CMSG_ALIGN);

/// A control-message buffer.
///
/// INVARIANT: aligned for `cmsghdr` (`align(8)`, asserted against `cmsghdr` above), so
/// the kernel's and libc's header pointers into it are aligned.
#[repr(C, align(8))]
struct CmsgBuf([u8; RECV_CMSG_LEN]);

/// An I/O vector over `data`. It holds a raw pointer: `data` must outlive its use.
fn iovec(data: &mut [u8]) -> libc::iovec {
    libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    }
}

/// A message header over one I/O vector and the first `control_len` bytes of `cmsg`
/// (at most its size). It holds raw pointers: `iov`, its data and `cmsg` must outlive
/// its use.
fn message(iov: &mut libc::iovec, cmsg: &mut CmsgBuf, control_len: usize) -> libc::msghdr {
    debug_assert!(control_len <= cmsg.0.len());
    // SAFETY: msghdr is plain C data for which all-zero bytes are valid (null pointers,
    // zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = control_len as _;
    msg
}

/// Sends `fd` over the connected Unix stream socket `sock`: one data byte with an
/// SCM_RIGHTS message carrying `fd`. Does not block (`WouldBlock` when the socket's
/// buffer is full) and raises no SIGPIPE (`BrokenPipe` when the peer is gone). Once it
/// returns `Ok`, the receiver's copy is in flight and the caller may close `fd`.
///
/// An fd number that is not open is refused by the kernel (`EBADF`).
pub fn send_fd(sock: &impl AsRawFd, fd: &impl AsRawFd) -> io::Result<()> {
    let mut data = [HANDOFF_BYTE];
    let mut iov = iovec(&mut data);
    let mut cmsg = CmsgBuf([0; RECV_CMSG_LEN]);
    let msg = message(&mut iov, &mut cmsg, SEND_CMSG_LEN);
    // SAFETY: msg_control points at SEND_CMSG_LEN = CMSG_SPACE(one fd) bytes of `cmsg`,
    // aligned for cmsghdr (CmsgBuf's invariant), so CMSG_FIRSTHDR returns a header
    // inside it.
    let hdr = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if hdr.is_null() {
        return Err(io::Error::other("control buffer too small for one fd"));
    }
    // SAFETY: `hdr` is non-null and points at the first header of `cmsg`, which has room
    // for the header and one fd after it (CMSG_SPACE above); CMSG_DATA is not aligned
    // for RawFd in general, so the fd is written unaligned.
    unsafe {
        (*hdr).cmsg_level = libc::SOL_SOCKET;
        (*hdr).cmsg_type = libc::SCM_RIGHTS;
        (*hdr).cmsg_len = libc::CMSG_LEN(FD_BYTES as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(hdr).cast::<RawFd>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: `msg` and everything it points at (`iov`, `data`, `cmsg`) are alive
        // for the call, and the kernel only reads them.
        let n = unsafe {
            libc::sendmsg(
                sock.as_raw_fd(),
                &msg,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n == 1 {
            return Ok(());
        }
        if n >= 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One message read by [`recv_fds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Data bytes read; 0 means the peer closed the connection.
    pub bytes: usize,
    /// The control data was truncated (`MSG_CTRUNC`): the kernel could not install
    /// every fd the message carried, and closed the ones it could not. Either this
    /// process is out of file descriptors (`EMFILE`: fewer fds than data bytes arrive,
    /// often none), or the message carried more than [`MAX_FDS_PER_MSG`].
    pub truncated: bool,
}

/// Reads one message from the Unix stream socket `sock` without blocking, and appends
/// every fd it carried to `fds` (close-on-exec). `WouldBlock` when nothing is pending.
pub fn recv_fds(sock: &impl AsRawFd, fds: &mut Vec<OwnedFd>) -> io::Result<Received> {
    let mut data = [0u8; RECV_DATA_BYTES];
    let mut iov = iovec(&mut data);
    let mut cmsg = CmsgBuf([0; RECV_CMSG_LEN]);
    let mut msg = message(&mut iov, &mut cmsg, RECV_CMSG_LEN);
    let bytes = loop {
        // SAFETY: `msg` points at `iov` (RECV_DATA_BYTES of `data`) and at RECV_CMSG_LEN
        // bytes of `cmsg`, all alive and writable for the call; the kernel writes no
        // more than those lengths.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // SAFETY: after a successful recvmsg, msg_control and msg_controllen describe the
    // control messages the kernel wrote into `cmsg`, which is alive; CMSG_FIRSTHDR
    // returns null or a header inside that range.
    let mut hdr = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !hdr.is_null() {
        // SAFETY: `hdr` is non-null, so it points at a complete, aligned header inside
        // `cmsg` (CMSG_FIRSTHDR and CMSG_NXTHDR check the header fits).
        let (level, kind, len) = unsafe {
            (
                (*hdr).cmsg_level,
                (*hdr).cmsg_type,
                (*hdr).cmsg_len as usize,
            )
        };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN only computes a length from its argument.
            let head = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = len.saturating_sub(head) / FD_BYTES;
            // SAFETY: the kernel wrote `count` fds right after this header, inside
            // `cmsg` (cmsg_len covers them and fits in msg_controllen).
            let base = unsafe { libc::CMSG_DATA(hdr) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: `i < count`, so the read stays within this header's data (see
                // above); the data need not be aligned for RawFd, hence unaligned.
                let raw = unsafe { std::ptr::read_unaligned(base.add(i)) };
                // SAFETY: each received fd is new in this process and referenced by
                // nothing else, so the OwnedFd is its only owner and may close it.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: `msg` still describes `cmsg`, and `hdr` is a header inside it;
        // CMSG_NXTHDR returns the next header inside the range, or null.
        hdr = unsafe { libc::CMSG_NXTHDR(&msg, hdr) };
    }
    Ok(Received {
        bytes,
        truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// Sends what it can of `data` on the connected socket `sock` without blocking
/// (`WouldBlock` when its buffer is full) and without SIGPIPE (`BrokenPipe` when the
/// peer is gone). Returns the bytes sent.
pub fn send_bytes(sock: &impl AsRawFd, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `data` is alive and readable for `data.len()` bytes during the call;
        // the kernel only reads it.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reads what is pending on `sock` into `buf` without blocking (`WouldBlock` when
/// nothing is). 0 means the peer closed the connection.
pub fn recv_bytes(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is alive and writable for `buf.len()` bytes during the call; the
        // kernel writes no more than that.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Shuts down the sending half of `sock` (`shutdown(SHUT_WR)`): the peer reads the end
/// of the stream and may still answer.
pub fn shutdown_write(sock: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: shutdown takes plain integers and touches no memory of ours.
    if unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_WR) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn an_fd_crosses_and_stays_usable() {
        let (lb, gw) = UnixStream::pair().unwrap();
        let (mut client, server) = UnixStream::pair().unwrap();
        send_fd(&lb, &server).unwrap();
        drop(server);
        let mut fds = Vec::new();
        let got = recv_fds(&gw, &mut fds).unwrap();
        assert_eq!(
            got,
            Received {
                bytes: 1,
                truncated: false
            }
        );
        assert_eq!(fds.len(), 1);
        let mut passed = UnixStream::from(fds.pop().unwrap());
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        passed.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn every_message_yields_its_own_fd() {
        let (lb, gw) = UnixStream::pair().unwrap();
        let pairs: Vec<_> = (0..3).map(|_| UnixStream::pair().unwrap()).collect();
        for (_, server) in &pairs {
            send_fd(&lb, server).unwrap();
        }
        let mut fds = Vec::new();
        while fds.len() < pairs.len() {
            let got = recv_fds(&gw, &mut fds).unwrap();
            assert!(got.bytes > 0 && !got.truncated);
        }
        assert_eq!(fds.len(), 3);
    }

    #[test]
    fn nothing_pending_would_block_and_close_reads_zero() {
        let (lb, gw) = UnixStream::pair().unwrap();
        let mut fds = Vec::new();
        let e = recv_fds(&gw, &mut fds).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(lb);
        assert_eq!(recv_fds(&gw, &mut fds).unwrap().bytes, 0);
        assert!(fds.is_empty());
    }

    #[test]
    fn verdicts_travel_back_on_the_same_socket() {
        let (lb, gw) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 8];
        let e = recv_bytes(&lb, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(send_bytes(&gw, &[TAKEN, REFUSED]).unwrap(), 2);
        assert_eq!(recv_bytes(&lb, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], &[TAKEN, REFUSED]);
        shutdown_write(&gw).unwrap();
        assert_eq!(recv_bytes(&lb, &mut buf).unwrap(), 0);
        drop(gw);
        let e = send_bytes(&lb, &[TAKEN]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn sending_to_a_closed_peer_fails_without_a_signal() {
        let (lb, gw) = UnixStream::pair().unwrap();
        drop(gw);
        let (_, server) = UnixStream::pair().unwrap();
        let e = send_fd(&lb, &server).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
