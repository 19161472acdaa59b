//! A small HTTP/1.1 proxy on loopback between berth and moto: it counts every AWS call (and
//! which of them mutate), and can add latency, answer with injected errors (HTTP 500,
//! throttling) without reaching moto, and rewrite moto's answers (an instance still `creating`,
//! one still `deleting` after moto already forgot it), so that await loops, timeouts and retries
//! are tested as they behave against real AWS.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One AWS call as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub service: String,
    /// The API action (`CreateDBInstance`), or for S3 `<METHOD> <path>?<query>`.
    pub action: String,
    pub mutating: bool,
    /// Answered by the proxy (an injected fault), not by moto.
    pub injected: bool,
}

struct Fault {
    action: String,
    status: u16,
    code: String,
    times: usize,
}

struct Rewrite {
    action: String,
    from: String,
    to: String,
    times: usize,
    /// Answer with the last successful response to `action`, not a fresh one.
    replay: bool,
}

#[derive(Default)]
struct State {
    delay: Duration,
    faults: Vec<Fault>,
    rewrites: Vec<Rewrite>,
    calls: Vec<Call>,
    last_ok: HashMap<String, (String, Vec<u8>)>,
}

/// The proxy; stops when dropped.
pub struct Proxy {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:5599`) on a free loopback port.
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port for the test proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, upstream) = (s.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &upstream, &s));
            }
        });
        Proxy { url, state, stop }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("proxy state"))
    }

    /// Every request waits this long before it is forwarded.
    pub fn set_delay(&self, delay: Duration) {
        self.with(|s| s.delay = delay);
    }

    /// The next `times` calls of `action` (or `*`) get `status` with error `code`.
    pub fn fail(&self, action: &str, status: u16, code: &str, times: usize) {
        self.with(|s| s.faults.push(Fault { action: action.into(), status, code: code.into(), times }));
    }

    /// The next `times` answers to `action` have `from` replaced by `to`.
    pub fn rewrite(&self, action: &str, from: &str, to: &str, times: usize) {
        self.with(|s| s.rewrites.push(Rewrite { action: action.into(), from: from.into(), to: to.into(), times, replay: false }));
    }

    /// The next `times` calls of `action` get its last successful answer, with `from` replaced
    /// by `to` (a resource moto deleted at once still shows as `deleting`).
    pub fn replay(&self, action: &str, from: &str, to: &str, times: usize) {
        self.with(|s| s.rewrites.push(Rewrite { action: action.into(), from: from.into(), to: to.into(), times, replay: true }));
    }

    /// Drops every pending rewrite and replay.
    pub fn clear_rewrites(&self) {
        self.with(|s| s.rewrites.clear());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    pub fn clear_calls(&self) {
        self.with(|s| s.calls.clear());
    }

    /// Calls that would change something in AWS (and reached it, or were meant to).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| c.mutating).map(|c| format!("{} {}", c.service, c.action)).collect()
    }

    pub fn count(&self, action: &str) -> usize {
        self.calls().iter().filter(|c| c.action == action).count()
    }

    /// Calls of `action` answered by an injected fault.
    pub fn injected(&self, action: &str) -> usize {
        self.calls().iter().filter(|c| c.action == action && c.injected).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

struct Request {
    head: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn read_message(reader: &mut BufReader<TcpStream>, has_body: bool) -> Option<Request> {
    let mut head = String::new();
    if reader.read_line(&mut head).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut request = Request { head: head.trim_end().to_string(), headers, body: Vec::new() };
    if !has_body {
        return Some(request);
    }
    if request.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        request.body = read_chunked(reader)?;
    } else if let Some(len) = request.header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        request.body = vec![0; len];
        reader.read_exact(&mut request.body).ok()?;
    }
    Some(request)
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if size == 0 {
            let mut trailer = String::new();
            while reader.read_line(&mut trailer).ok()? > 2 {
                trailer.clear();
            }
            return Some(body);
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Service (from the SigV4 credential scope) and action of a request.
fn identify(request: &Request) -> (String, String, bool) {
    let service = request
        .header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string();
    let method = request.head.split(' ').next().unwrap_or_default().to_string();
    let target = request.head.split(' ').nth(1).unwrap_or_default().to_string();
    if let Some(t) = request.header("x-amz-target") {
        let action = t.rsplit('.').next().unwrap_or(t).to_string();
        let read = ["Describe", "List", "Get"].iter().any(|p| action.starts_with(p));
        // KMS data-key calls create nothing in AWS.
        let mutating = !read && !["GenerateDataKey", "Decrypt", "Encrypt"].contains(&action.as_str());
        return (service, action, mutating);
    }
    let body = String::from_utf8_lossy(&request.body);
    if let Some(action) = body.split('&').find_map(|p| p.strip_prefix("Action=")) {
        let read = ["Describe", "List", "Get", "Head"].iter().any(|p| action.starts_with(p));
        return (service, action.to_string(), !read);
    }
    let mutating = matches!(method.as_str(), "PUT" | "POST" | "DELETE");
    (service, format!("{method} {target}"), mutating)
}

fn error_body(service: &str, code: &str, json: bool) -> (String, Vec<u8>) {
    let message = format!("injected by the test proxy: {code}");
    if json {
        return ("application/x-amz-json-1.1".into(), format!(r#"{{"__type":"{code}","message":"{message}"}}"#).into_bytes());
    }
    let xml = match service {
        "ec2" => format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>proxy</RequestID></Response>"
        ),
        "s3" => format!("<Error><Code>{code}</Code><Message>{message}</Message><RequestId>proxy</RequestId></Error>"),
        _ => format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>"
        ),
    };
    ("text/xml".into(), xml.into_bytes())
}

fn respond(conn: &mut TcpStream, status: u16, content_type: &str, extra: &[(String, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}

/// An answer: status, headers, body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Forwards one request to moto and returns its answer.
fn forward(upstream: &str, request: &Request) -> std::io::Result<Answer> {
    let mut up = TcpStream::connect(upstream)?;
    let mut head = format!("{}\r\n", request.head);
    for (k, v) in &request.headers {
        if !["connection", "transfer-encoding", "content-length"].contains(&k.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", request.body.len()));
    up.write_all(head.as_bytes())?;
    up.write_all(&request.body)?;
    let mut reader = BufReader::new(up);
    let is_head = request.head.starts_with("HEAD ");
    let response = read_message(&mut reader, !is_head).ok_or_else(|| std::io::Error::other("moto closed the connection"))?;
    let status = response.head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(502);
    let mut body = response.body.clone();
    if !is_head && response.header("content-length").is_none() && response.header("transfer-encoding").is_none() {
        reader.read_to_end(&mut body)?;
    }
    Ok((status, response.headers, body))
}

fn serve(conn: TcpStream, upstream: &str, state: &Mutex<State>) {
    let Ok(read_half) = conn.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut conn = conn;
    while let Some(request) = read_message(&mut reader, true) {
        let (service, action, mutating) = identify(&request);
        let json = request.header("x-amz-target").is_some();
        let (delay, fault) = {
            let Ok(mut s) = state.lock() else { return };
            let fault = s.faults.iter_mut().find(|f| f.times > 0 && (f.action == action || f.action == "*")).map(|f| {
                f.times -= 1;
                (f.status, f.code.clone())
            });
            s.calls.push(Call { service: service.clone(), action: action.clone(), mutating, injected: fault.is_some() });
            (s.delay, fault)
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if let Some((status, code)) = fault {
            let (content_type, body) = error_body(&service, &code, json);
            if respond(&mut conn, status, &content_type, &[], &body).is_err() {
                return;
            }
            continue;
        }
        let replayed = {
            let Ok(mut s) = state.lock() else { return };
            let last = s.last_ok.get(&action).cloned();
            match s.rewrites.iter_mut().find(|r| r.times > 0 && r.replay && r.action == action) {
                Some(r) if last.is_some() => {
                    r.times -= 1;
                    last.map(|(ct, body)| (ct, String::from_utf8_lossy(&body).replace(&r.from, &r.to).into_bytes()))
                }
                _ => None,
            }
        };
        if let Some((content_type, body)) = replayed {
            if respond(&mut conn, 200, &content_type, &[], &body).is_err() {
                return;
            }
            continue;
        }
        let Ok((status, headers, mut body)) = forward(upstream, &request) else {
            let _ = respond(&mut conn, 502, "text/plain", &[], b"the test proxy could not reach moto");
            return;
        };
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "text/xml".into());
        if (200..300).contains(&status) {
            let Ok(mut s) = state.lock() else { return };
            s.last_ok.insert(action.clone(), (content_type.clone(), body.clone()));
            if let Some(r) = s.rewrites.iter_mut().find(|r| r.times > 0 && !r.replay && r.action == action) {
                r.times -= 1;
                body = String::from_utf8_lossy(&body).replace(&r.from, &r.to).into_bytes();
            }
        }
        let extra: Vec<(String, String)> = headers
            .into_iter()
            .filter(|(k, _)| {
                !["content-length", "content-type", "connection", "transfer-encoding", "date", "server"]
                    .contains(&k.to_ascii_lowercase().as_str())
            })
            .collect();
        if respond(&mut conn, status, &content_type, &extra, &body).is_err() {
            return;
        }
    }
}
