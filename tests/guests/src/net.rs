//! The network guest of kiln's tests (wasm32-wasip2 only): `net URL...`
//! GETs each `http(s)://` URL with `wasi:http/outgoing-handler`, following
//! a redirect (3xx with a Location) by a new request, as a client does.
//! The other forms use `wasi:sockets` through Rust's `std::net`:
//!
//! - `tcp://HOST:PORT/WORD` connects (looking HOST up), sends `WORD\n` and
//!   reads one line back: `TCP HOST:PORT -> LINE`;
//! - `listen://ADDR` binds a listener: `LISTEN ADDR -> bound` or failed;
//! - `udp://HOST:PORT` sends one datagram: `UDP HOST:PORT -> sent` or
//!   failed.
//!
//! It prints one line per request, `GET URL -> STATUS BODY` or
//! `GET URL failed: ERROR`, and writes the same lines to `/net.out` in the
//! step's filesystem. Before that it says what secrets it can see:
//! `secrets-dir: N entries` (or `none`) for `/run/secrets`, and
//! `env: NAME,...` for its environment's names. It exits 1 when a request
//! failed.

#[cfg(target_env = "p2")]
fn main() {
    use std::io::Write as _;
    let mut lines = Vec::new();
    match std::fs::read_dir("/run/secrets") {
        Ok(d) => lines.push(format!("secrets-dir: {} entries", d.count())),
        Err(_) => lines.push("secrets-dir: none".to_string()),
    }
    let names: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    lines.push(format!("env: {}", names.join(",")));
    let mut failed = false;
    for url in std::env::args().skip(1) {
        if let Some(line) = sockets(&url) {
            failed |= line.contains(" failed: ");
            lines.push(line);
            continue;
        }
        let mut url = url;
        for _ in 0..3 {
            match get(&url) {
                Ok((status, location, body)) => {
                    lines.push(format!("GET {url} -> {status} {}", body.trim()));
                    match location {
                        Some(next) if (300..400).contains(&status) => url = next,
                        _ => break,
                    }
                }
                Err(e) => {
                    lines.push(format!("GET {url} failed: {e}"));
                    failed = true;
                    break;
                }
            }
        }
    }
    let text = lines.join("\n") + "\n";
    print!("{text}");
    std::fs::write("/net.out", &text).unwrap();
    std::io::stdout().flush().unwrap();
    if failed {
        std::process::exit(1);
    }
}

/// The `wasi:sockets` forms (`tcp://`, `listen://`, `udp://`): the line
/// to print, or `None` for a URL of another scheme.
#[cfg(target_env = "p2")]
fn sockets(url: &str) -> Option<String> {
    use std::io::{BufRead as _, BufReader, Write as _};
    let (scheme, rest) = url.split_once("://")?;
    let result = match scheme {
        "tcp" => {
            let (addr, word) = rest.split_once('/').unwrap_or((rest, "ping"));
            let talk = || -> std::io::Result<String> {
                let mut conn = std::net::TcpStream::connect(addr)?;
                conn.write_all(format!("{word}\n").as_bytes())?;
                let mut line = String::new();
                BufReader::new(conn).read_line(&mut line)?;
                Ok(line.trim().to_string())
            };
            ("TCP", rest.split_once('/').map_or(rest, |(a, _)| a), talk())
        }
        "listen" => (
            "LISTEN",
            rest,
            std::net::TcpListener::bind(rest).map(|_| "bound".to_string()),
        ),
        "udp" => {
            let send = || -> std::io::Result<String> {
                let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
                socket.send_to(b"ping", rest)?;
                Ok("sent".to_string())
            };
            ("UDP", rest, send())
        }
        _ => return None,
    };
    Some(match result {
        (what, addr, Ok(reply)) => format!("{what} {addr} -> {reply}"),
        (what, addr, Err(e)) => format!("{what} {addr} failed: {e}"),
    })
}

/// One GET: the status, the Location header, the body.
#[cfg(target_env = "p2")]
fn get(url: &str) -> Result<(u16, Option<String>, String), String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

    let (scheme, rest) = url.split_once("://").ok_or("not a URL")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    }))
    .map_err(|_| "scheme")?;
    req.set_authority(Some(authority)).map_err(|_| "authority")?;
    req.set_path_with_query(Some(path)).map_err(|_| "path")?;
    let future = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let body = response.consume().map_err(|_| "body")?;
    let stream = body.stream().map_err(|_| "stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the body: {e:?}")),
        }
    }
    Ok((status, location, String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(not(target_env = "p2"))]
fn main() {
    println!("the net guest needs wasm32-wasip2");
    std::process::exit(2);
}
