//! Stand-ins for a processor that the simulator cannot play: a relay that holds every
//! connection until opened ([`Gate`]), and a processor that turns every payment away
//! ([`Busy`]).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

/// A TCP relay in front of a processor that holds every connection, unread, until
/// [`Gate::open`]; from then on it pipes bytes both ways. While it is shut nothing sent
/// through it can finish, so a test can fill the gateway's in-flight slots and know they
/// stay full.
pub struct Gate {
    pub addr: String,
    state: Arc<Mutex<GateState>>,
}

struct GateState {
    open: bool,
    held: Vec<std::net::TcpStream>,
    target: String,
}

impl Gate {
    pub fn shut_before(target: &str) -> Gate {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(GateState {
            open: false,
            held: Vec::new(),
            target: target.to_string(),
        }));
        let s = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let mut st = s.lock().unwrap();
                if st.open {
                    pipe(conn, &st.target);
                } else {
                    st.held.push(conn);
                }
            }
        });
        Gate { addr, state }
    }

    pub fn open(&self) {
        let mut st = self.state.lock().unwrap();
        st.open = true;
        for conn in std::mem::take(&mut st.held) {
            pipe(conn, &st.target);
        }
    }
}

/// Copies `conn` to a new connection to `target` and back until either side closes.
fn pipe(conn: std::net::TcpStream, target: &str) {
    let Ok(up) = std::net::TcpStream::connect(target) else {
        return;
    };
    let (mut a, mut b) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
    let (mut c, mut d) = (conn, up);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut a, &mut b);
        let _ = b.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut d, &mut c);
        let _ = c.shutdown(std::net::Shutdown::Write);
    });
}

/// A processor that turns every `POST /payments` away with a 4XX (429: its queue is
/// full; or, say, 404 at a wrong URL) and answers any other request with a healthy
/// service-health body; it keeps the correlationIds of the payments it was sent.
pub struct Busy {
    pub addr: String,
    posts: Arc<Mutex<Vec<String>>>,
}

impl Busy {
    /// `status` is the status line's code and reason, such as `429 Too Many Requests`.
    pub fn start(status: &str) -> Busy {
        let answer: &'static [u8] =
            format!("HTTP/1.1 {status}\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n")
                .leak()
                .as_bytes();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::clone(&posts);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sent = Arc::clone(&sent);
                std::thread::spawn(move || busy_conn(conn, &sent, answer));
            }
        });
        Busy { addr, posts }
    }

    /// The correlationIds of the `POST /payments` requests answered so far, in order.
    pub fn posts(&self) -> Vec<String> {
        self.posts.lock().unwrap().clone()
    }
}

fn busy_conn(mut conn: std::net::TcpStream, posts: &Mutex<Vec<String>>, turned_away: &[u8]) {
    use http1::request::{parse, Method, Status};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let (len, answer): (usize, &[u8]) = match parse(&buf) {
            Ok(Status::Complete(req)) if req.method == Method::Post => {
                let id = serde_json::from_slice::<serde_json::Value>(req.body)
                    .ok()
                    .and_then(|v| v["correlationId"].as_str().map(str::to_string))
                    .unwrap_or_default();
                posts.lock().unwrap().push(id);
                (req.len(), turned_away)
            }
            Ok(Status::Complete(req)) => (
                req.len(),
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n{\"failing\":false,\"minResponseTime\":0}",
            ),
            Ok(Status::Partial) => match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            },
            Err(_) => return,
        };
        buf.drain(..len);
        if conn.write_all(answer).is_err() {
            return;
        }
    }
}
