//! A tiny hand-written HTTP/1.1 server for tests: one request per connection, every
//! request recorded, the response left to a handler that may misbehave on purpose
//! (drop the connection mid-body, send a forged header, stream without end).
//!
//! It stands next to the real registry as a fault injector; it is not a registry.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The head of one request as the server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent (`/v2/x/blobs/uploads/1?digest=…`).
    pub target: String,
    /// Header names in lowercase, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Values of query parameter `key`, percent-decoded.
    pub fn query_values(&self, key: &str) -> Vec<String> {
        self.query()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One request on its connection: read the body, then answer (or not).
#[derive(Debug)]
pub struct Exchange {
    pub request: Request,
    reader: BufReader<TcpStream>,
    /// Body bytes still unread when the body has a known length.
    remaining: Option<u64>,
    chunked: bool,
}

impl Exchange {
    /// The whole request body (Content-Length or chunked).
    pub fn body(&mut self) -> io::Result<Vec<u8>> {
        self.body_upto(u64::MAX)
    }

    /// At most `limit` bytes of the request body; the rest stays unread.
    pub fn body_upto(&mut self, limit: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if self.chunked {
            while (out.len() as u64) < limit {
                let mut line = String::new();
                self.reader.read_line(&mut line)?;
                let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if size == 0 {
                    self.reader.read_line(&mut line)?;
                    self.chunked = false;
                    break;
                }
                let take = size.min(limit - out.len() as u64);
                let start = out.len();
                out.resize(start + take as usize, 0);
                self.reader.read_exact(&mut out[start..])?;
                if take < size {
                    break;
                }
                let mut crlf = [0u8; 2];
                self.reader.read_exact(&mut crlf)?;
            }
            return Ok(out);
        }
        let want = self.remaining.unwrap_or(0).min(limit);
        (&mut self.reader).take(want).read_to_end(&mut out)?;
        self.remaining = self.remaining.map(|r| r - out.len() as u64);
        Ok(out)
    }

    /// A complete response with `body` (Content-Length set, connection closed after).
    pub fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        if self.head(status, headers, Some(body.len() as u64)).is_ok() {
            let _ = self.write(body);
        }
    }

    /// The status line and headers; `content_length` None sends no length (the body
    /// then ends when the connection closes).
    pub fn head(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        content_length: Option<u64>,
    ) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(len) = content_length {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        self.write(head.as_bytes())
    }

    /// Raw bytes on the connection.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let s = self.reader.get_mut();
        s.write_all(bytes)?;
        s.flush()
    }

    /// Close the connection now, whatever was or was not sent.
    pub fn close(self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Both);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

type Handler = dyn Fn(Exchange) + Send + Sync;

/// A running server on a loopback address; stopped on drop.
pub struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Listen on a free port of `ip` (`127.0.0.1`, `127.0.0.2`, …) and answer each
    /// request with `handler`, on its own thread.
    pub fn start(ip: &str, handler: impl Fn(Exchange) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| {
            panic!("cannot listen on {ip}: {e} (is {ip} a loopback address here?)")
        });
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (requests, connections, stop) =
                (requests.clone(), connections.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (requests, handler) = (requests.clone(), handler.clone());
                    std::thread::spawn(move || serve(stream, &requests, &*handler));
                }
            })
        };
        Server {
            addr,
            requests,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// `ip:port`
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `http://ip:port{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, requests: &Mutex<Vec<Request>>, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // a wake-up or probe connection
    }
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m.to_owned(), t.to_owned()),
        _ => return,
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let request = Request {
        method,
        target,
        headers,
    };
    requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(request.clone());
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let remaining = request
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    handler(Exchange {
        request,
        reader,
        remaining,
        chunked,
    });
}
