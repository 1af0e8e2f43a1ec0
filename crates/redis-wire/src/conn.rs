//! One connection to Redis: connect (and select the database), then one command or
//! pipeline at a time, packed by the `redis` crate and framed by [`crate::frame`].

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use net::Stream;
use redis::Value;

use crate::error::RespError;
use crate::frame::{frame_len, MAX_REPLY_BYTES};
use crate::target::RedisTarget;

/// Capacity of a connection's read buffer when it is created: the gateway's replies
/// (integers, a four-integer summary, `OK`) are a few dozen bytes, so one small
/// allocation serves every command of a connection's life.
const READ_BUF_INITIAL: usize = 4 * 1024;

/// Free space ensured before each read. A reply larger than the buffer grows it by at
/// least this much per read, so a large reply takes few reads and few reallocations.
const READ_CHUNK_MIN: usize = 16 * 1024;

/// Capacity of the reusable buffer commands are packed into: a ledger script with its
/// arguments is well under a kilobyte.
const WRITE_BUF_INITIAL: usize = 1024;

/// Largest buffer a connection keeps between commands. A large command or reply (a
/// diagnostic dump) is freed after use rather than held for the connection's life.
const MAX_KEPT_BUF: usize = 64 * 1024;

/// One connection to Redis, owned by one core's tasks (not `Send`) and used one command
/// (or pipeline) at a time.
///
/// After an I/O or protocol error, or when a `query` future is dropped before it
/// completes, replies can no longer be matched to commands: the connection then answers
/// every further command with `RespError::Protocol`, and its owner should drop it and
/// connect again. A server error reply (`RespError::Server`) leaves it usable.
pub struct RedisConn {
    stream: Stream,
    /// Bytes received and not yet consumed, from index 0.
    read_buf: Vec<u8>,
    /// Packed commands on their way out; kept to reuse its allocation.
    write_buf: Vec<u8>,
    /// A command was sent and its replies were not all read: an I/O or protocol error,
    /// or a dropped future, interrupted the exchange. Replies can no longer be matched
    /// to commands, so the connection refuses further use.
    out_of_step: bool,
}

impl RedisConn {
    /// Connects and, when the target names a database other than 0, selects it.
    ///
    /// A TCP host name is resolved with the system resolver, which blocks this core for
    /// the lookup; connections are opened rarely (once, then after failures).
    pub async fn connect(target: &RedisTarget) -> std::io::Result<RedisConn> {
        // TCP_NODELAY is set: commands are small and answered one at a time.
        // TCP_NODELAY is set: commands are small and answered one at a time.
        let stream = net::connect(target.addr()).await?;
        let mut conn = RedisConn {
            stream,
            read_buf: Vec::with_capacity(READ_BUF_INITIAL),
            write_buf: Vec::with_capacity(WRITE_BUF_INITIAL),
            out_of_step: false,
        };
        if target.db() != 0 {
            let reply = conn
                .query(redis::cmd("SELECT").arg(target.db()))
                .await
                .map_err(|e| match e {
                    RespError::Io(e) => e,
                    e => std::io::Error::other(format!("SELECT {}: {e}", target.db())),
                })?;
            if !matches!(reply, Value::Okay) {
                return Err(std::io::Error::other(format!(
                    "SELECT {}: unexpected reply {reply:?}",
                    target.db()
                )));
            }
        }
        Ok(conn)
    }

    /// Sends one command and returns its reply. An error reply from Redis is returned as
    /// `Err(RespError::Server)`; errors nested inside an array reply (e.g. in `EXEC`'s)
    /// stay `Value::ServerError` elements.
    pub async fn query(&mut self, cmd: &redis::Cmd) -> Result<Value, RespError> {
        let mut out = std::mem::take(&mut self.write_buf);
        out.clear();
        cmd.write_packed_command(&mut out);
        let mut replies = self.exchange(out, 1).await?;
        replies
            .pop()
            .ok_or_else(|| RespError::Protocol("no reply".to_owned()))
    }

    /// Sends all commands of a pipeline in one write and returns one reply per command
    /// (including those marked `ignore`). If any reply is an error, every reply is still
    /// read (the connection stays usable) and the first error is returned as
    /// `Err(RespError::Server)`.
    ///
    /// An atomic pipeline is sent wrapped in `MULTI`/`EXEC` and returns `EXEC`'s replies;
    /// a transaction aborted by `WATCH` is reported as `RespError::Server`.
    pub async fn query_pipeline(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> Result<Vec<Value>, RespError> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        let atomic = pipe.is_transaction();
        let expected = if atomic { pipe.len() + 2 } else { pipe.len() };
        let mut replies = self.exchange(pipe.get_packed_pipeline(), expected).await?;
        if !atomic {
            return Ok(replies);
        }
        match replies.pop() {
            Some(Value::Array(inner)) if inner.len() == pipe.len() => Ok(inner),
            Some(Value::Nil) => Err(RespError::Server(
                "EXEC aborted: a watched key changed".to_owned(),
            )),
            other => Err(RespError::Protocol(format!(
                "unexpected EXEC reply {other:?}"
            ))),
        }
    }

    /// Sends packed commands and reads `count` replies. Refuses to run on a connection
    /// whose previous exchange did not finish, since its late replies would be taken as
    /// the answers to these commands.
    async fn exchange(&mut self, out: Vec<u8>, count: usize) -> Result<Vec<Value>, RespError> {
        if self.out_of_step {
            return Err(RespError::Protocol(
                "an earlier command on this connection failed or was abandoned before its reply"
                    .to_owned(),
            ));
        }
        self.out_of_step = true;
        self.send(out).await?;
        self.receive(count).await
    }

    /// Writes all of `out`, then keeps its allocation for the next command.
    async fn send(&mut self, out: Vec<u8>) -> Result<(), RespError> {
        let (res, out) = self.stream.write_all(out).await;
        if out.capacity() <= MAX_KEPT_BUF {
            self.write_buf = out;
        }
        res?;
        Ok(())
    }

    /// Reads until `count` complete replies have arrived and parses them. If any of
    /// them is an error reply, the first one's text is returned as `RespError::Server`
    /// (after every reply was read, so the connection stays in step). Any byte beyond
    /// the last reply is a protocol error: Redis speaks only when asked.
    async fn receive(&mut self, count: usize) -> Result<Vec<Value>, RespError> {
        let mut replies = Vec::with_capacity(count);
        let mut first_error = None;
        let mut start = 0;
        while replies.len() < count {
            match frame_len(&self.read_buf[start..])? {
                Some(n) => {
                    let frame = &self.read_buf[start..start + n];
                    if frame[0] == b'-' && first_error.is_none() {
                        // The line as Redis sent it, without `-` and CRLF.
                        let text = &frame[1..n - 2];
                        first_error = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    let value = redis::parse_redis_value(frame)
                        .map_err(|e| RespError::Protocol(format!("unparsable reply: {e}")))?;
                    replies.push(value);
                    start += n;
                }
                None => {
                    if self.read_buf.len() - start >= MAX_REPLY_BYTES {
                        return Err(RespError::Protocol(format!(
                            "reply exceeds {MAX_REPLY_BYTES} bytes"
                        )));
                    }
                    self.read_more().await?;
                }
            }
        }
        if start != self.read_buf.len() {
            return Err(RespError::Protocol(format!(
                "{} unexpected bytes after the reply",
                self.read_buf.len() - start
            )));
        }
        self.read_buf.clear();
        if self.read_buf.capacity() > MAX_KEPT_BUF {
            self.read_buf = Vec::with_capacity(READ_BUF_INITIAL);
        }
        self.out_of_step = false;
        match first_error {
            Some(e) => Err(RespError::Server(e)),
            None => Ok(replies),
        }
    }

    /// Appends one read's worth of bytes to `read_buf`; the server closing the
    /// connection is an error, since a reply is always pending when this is called.
    async fn read_more(&mut self) -> Result<(), RespError> {
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.reserve(READ_CHUNK_MIN);
        let len = buf.len();
        let cap = buf.capacity();
        let slice: SliceMut<Vec<u8>> = buf.slice_mut(len..cap);
        let (res, slice) = self.stream.read(slice).await;
        self.read_buf = slice.into_inner();
        match res? {
            0 => Err(RespError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use stack::child::Output;
    use stack::redis::{Listen, Redis};

    use super::*;

    /// A redis-server of the test's own, its output kept in memory rather than mixed
    /// into the test's.
    fn redis(listen: Listen) -> Redis {
        Redis::start(listen, Output::Captured).expect("redis-server starts (is it installed?)")
    }

    fn tcp_url(server: &Redis) -> String {
        server.tcp_url().expect("started with Listen::UnixAndTcp")
    }

    async fn connect(url: &str) -> RedisConn {
        RedisConn::connect(&RedisTarget::parse(url).unwrap())
            .await
            .unwrap()
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn query_round_trips() {
        let server = redis(Listen::Unix);
        let mut conn = connect(&server.url()).await;
        assert_eq!(
            conn.query(&redis::cmd("PING")).await.unwrap(),
            Value::SimpleString("PONG".to_owned())
        );
        assert_eq!(
            conn.query(redis::cmd("SET").arg("k").arg("v"))
                .await
                .unwrap(),
            Value::Okay
        );
        assert_eq!(
            conn.query(redis::cmd("GET").arg("k")).await.unwrap(),
            Value::BulkString(b"v".to_vec())
        );
        assert_eq!(
            conn.query(redis::cmd("GET").arg("missing")).await.unwrap(),
            Value::Nil
        );
        assert_eq!(
            conn.query(redis::cmd("INCRBY").arg("n").arg(-5))
                .await
                .unwrap(),
            Value::Int(-5)
        );
        match conn.query(&redis::cmd("NOSUCHCOMMAND")).await {
            Err(RespError::Server(e)) => assert!(e.starts_with("ERR unknown command"), "{e}"),
            other => panic!("{other:?}"),
        }
        // The connection is still in step after an error reply.
        assert_eq!(
            conn.query(redis::cmd("GET").arg("k")).await.unwrap(),
            Value::BulkString(b"v".to_vec())
        );
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn large_replies_span_many_reads() {
        let server = redis(Listen::Unix);
        let mut conn = connect(&server.url()).await;
        // Bigger than any socket buffer, so it arrives in many reads split anywhere.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        conn.query(redis::cmd("SET").arg("big").arg(&big[..]))
            .await
            .unwrap();
        assert_eq!(
            conn.query(redis::cmd("GET").arg("big")).await.unwrap(),
            Value::BulkString(big.clone())
        );
        // Many replies in one pipeline, the big one in the middle.
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("SET").arg(format!("key{i}")).arg(i);
        }
        pipe.cmd("GET").arg("big");
        for i in 0..1000 {
            pipe.cmd("GET").arg(format!("key{i}"));
        }
        let replies = conn.query_pipeline(&pipe).await.unwrap();
        assert_eq!(replies.len(), 2001);
        assert!(replies[..1000].iter().all(|v| *v == Value::Okay));
        assert_eq!(replies[1000], Value::BulkString(big));
        for (i, v) in replies[1001..].iter().enumerate() {
            assert_eq!(*v, Value::BulkString(i.to_string().into_bytes()));
        }
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn pipelines() {
        let server = redis(Listen::Unix);
        let mut conn = connect(&server.url()).await;
        assert_eq!(conn.query_pipeline(&redis::pipe()).await.unwrap(), vec![]);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("a").arg(1).ignore();
        pipe.cmd("INCR").arg("a");
        pipe.cmd("LPUSH").arg("l").arg("x").arg("y");
        pipe.cmd("LRANGE").arg("l").arg(0).arg(-1);
        assert_eq!(
            conn.query_pipeline(&pipe).await.unwrap(),
            vec![
                Value::Okay,
                Value::Int(2),
                Value::Int(2),
                Value::Array(vec![
                    Value::BulkString(b"y".to_vec()),
                    Value::BulkString(b"x".to_vec())
                ]),
            ]
        );
        // An error in the middle is reported, and every reply was still consumed.
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg("a");
        pipe.cmd("INCR").arg("l");
        pipe.cmd("INCR").arg("a");
        match conn.query_pipeline(&pipe).await {
            Err(RespError::Server(e)) => assert!(e.starts_with("WRONGTYPE "), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            conn.query(redis::cmd("GET").arg("a")).await.unwrap(),
            Value::BulkString(b"4".to_vec())
        );
        // An atomic pipeline returns EXEC's replies.
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("INCR").arg("a");
        pipe.cmd("GET").arg("a");
        assert_eq!(
            conn.query_pipeline(&pipe).await.unwrap(),
            vec![Value::Int(5), Value::BulkString(b"5".to_vec())]
        );
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn tcp_and_database_selection() {
        let server = redis(Listen::UnixAndTcp);
        let mut db0 = connect(&tcp_url(&server)).await;
        let mut db2 = connect(&format!("{}/2", tcp_url(&server))).await;
        // A name works too, whichever addresses it resolves to first.
        let port = tcp_url(&server).rsplit(':').next().unwrap().to_owned();
        let mut by_name = connect(&format!("redis://localhost:{port}")).await;
        assert_eq!(
            by_name.query(&redis::cmd("PING")).await.unwrap(),
            Value::SimpleString("PONG".to_owned())
        );
        db2.query(redis::cmd("SET").arg("where").arg("db2"))
            .await
            .unwrap();
        assert_eq!(
            db0.query(redis::cmd("GET").arg("where")).await.unwrap(),
            Value::Nil
        );
        assert_eq!(
            db2.query(redis::cmd("GET").arg("where")).await.unwrap(),
            Value::BulkString(b"db2".to_vec())
        );
        // The same data over the Unix socket, which starts in database 0.
        let mut unix = connect(&server.url()).await;
        assert_eq!(
            unix.query(&redis::cmd("DBSIZE")).await.unwrap(),
            Value::Int(0)
        );
        // A database Redis does not have fails the connection.
        let bad = RedisTarget::parse(&format!("{}/999", tcp_url(&server))).unwrap();
        assert!(RedisConn::connect(&bad).await.is_err());
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn abandoned_query_poisons_the_connection() {
        let server = redis(Listen::Unix);
        let mut conn = connect(&server.url()).await;
        {
            // Blocks in Redis until a push that never comes, so it is surely pending.
            let cmd = redis::cmd("BLPOP").arg("never").arg(0).clone();
            let mut fut = std::pin::pin!(conn.query(&cmd));
            std::future::poll_fn(|cx| {
                assert!(fut.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
        }
        assert!(matches!(
            conn.query(&redis::cmd("PING")).await,
            Err(RespError::Protocol(_))
        ));
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn server_gone() {
        let mut server = redis(Listen::Unix);
        let target = RedisTarget::parse(&server.url()).unwrap();
        let mut conn = RedisConn::connect(&target).await.unwrap();
        server.stop();
        assert!(matches!(
            conn.query(&redis::cmd("PING")).await,
            Err(RespError::Io(_))
        ));
        assert!(RedisConn::connect(&target).await.is_err());
        server.restart().unwrap();
        let mut conn = RedisConn::connect(&target).await.unwrap();
        assert_eq!(
            conn.query(&redis::cmd("PING")).await.unwrap(),
            Value::SimpleString("PONG".to_owned())
        );
    }
}
