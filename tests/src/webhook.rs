//! A webhook receiver for tests: a small HTTP/1.1 server on 127.0.0.1 that records every
//! request and answers 200, or 503 while it is [`Webhook::set_down`] (a receiver outage).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lock;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub method: String,
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether it was answered 200 (false: refused during an outage).
    pub accepted: bool,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "webhook body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

struct State {
    deliveries: Mutex<Vec<Delivery>>,
    down: AtomicBool,
    stop: AtomicBool,
}

/// A running receiver (stopped on drop).
pub struct Webhook {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("webhook: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("webhook: local_addr: {e}"));
        let state = Arc::new(State {
            deliveries: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let state = Arc::clone(&shared);
                    std::thread::spawn(move || serve(stream, &state));
                }
            }
        });
        Webhook { addr, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// While down, every request is recorded as refused and answered 503.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<Delivery> {
        lock(&self.state.deliveries).clone()
    }

    /// The accepted requests to `path`.
    pub fn accepted(&self, path: &str) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| d.accepted && d.path == path)
            .collect()
    }

    /// How many requests were refused (answered 503).
    pub fn refused(&self) -> usize {
        self.all().iter().filter(|d| !d.accepted).count()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(mut stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    // Keep-alive: answer requests on this connection until the client closes it.
    let mut buf = Vec::new();
    loop {
        let Some(delivery) = read_request(&mut stream, &mut buf) else {
            return;
        };
        let down = state.down.load(Ordering::SeqCst);
        let mut delivery = delivery;
        delivery.accepted = !down;
        lock(&state.deliveries).push(delivery);
        let response: &[u8] = if down {
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\ndown\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n"
        };
        if stream.write_all(response).is_err() {
            return;
        }
    }
}

/// Reads one request (Content-Length or chunked body); `None` at end of stream or on error.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Delivery> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = loop {
        let rest = &buf[head_end..];
        if chunked {
            if let Ok(Some((body, used))) = crate::http::decode_chunked_prefix(rest) {
                buf.drain(..head_end + used);
                break body;
            }
        } else if rest.len() >= length {
            let body = rest[..length].to_vec();
            buf.drain(..head_end + length);
            break body;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    Some(Delivery {
        method,
        path,
        headers,
        body,
        accepted: true,
    })
}
