//! HTTP from a step: a small blocking client over `wasi:http`.
//!
//! ```no_run
//! use kiln_guest::{Context, http};
//!
//! # fn main() -> kiln_guest::Result<()> {
//! // A whole body in memory.
//! let index = http::get("https://registry.example.com/-/ping")?.bytes()?;
//!
//! // A body streamed to a file, with a header and a status check.
//! let mut file = std::fs::File::create("left-pad-1.3.0.tgz")?;
//! http::Request::get("https://registry.example.com/left-pad/-/left-pad-1.3.0.tgz")?
//!     .header("Accept", "application/octet-stream")?
//!     .send()?
//!     .error_for_status()?
//!     .copy_to(&mut file)
//!     .context("downloading left-pad")?;
//! # Ok(()) }
//! ```
//!
//! # What a step needs for it
//!
//! - It is built for **`wasm32-wasip2`** (a component): `wasi:http` is a
//!   WASI 0.2 interface. On every other target (`wasm32-wasip1`, the host
//!   running `cargo test`) the module compiles, and sending a request
//!   returns an error saying so; [`Response::from_reader`] lets a step's
//!   logic be unit-tested on the host without a network.
//! - Its `RUN` has **`--network=default`**, and the build allows the
//!   origin: **`kiln build --allow-net HOST[:PORT]`**. A request to any
//!   other origin fails with "HTTP request denied" before a connection is
//!   made. Steps without `--network=default` have no network at all.
//!
//! # Tokens: let kiln send them
//!
//! A secret bound to an origin (see `docs/writing-steps.md`, "HTTP from a
//! step") is added by kiln, as `Authorization: Bearer ...`, to the requests
//! that go to that origin: the step sends no token and never sees one.
//! That is the way to use a registry token. Where a step must send a
//! token itself, [`Request::bearer`] takes a [`Secret`] without copying
//! it anywhere that prints.
//!
//! # What it does and does not do
//!
//! Blocking, one request at a time, HTTP and HTTPS (TLS is the host's).
//! Bodies stream both ways: [`Response`] is a [`Read`]er, and
//! [`Response::copy_to`] writes it to a file without holding it in memory.
//! Redirects are not followed (a `3xx` is returned as it is), bodies are
//! not decompressed, there are no cookies, proxies or retries.
//!
//! Nothing here prints or logs, and no error or `Debug` output holds a
//! header's value: errors name the method, the URL and the header's name.
//! A URL with credentials in it (`https://user:pass@host/`) is refused.
//!
//! # Why the `wasip2` crate
//!
//! The transport (`http/transport.rs`) is built on [`wasip2`], the Bytecode
//! Alliance's generated bindings for all of WASI 0.2 (the crate named
//! `wasi` 0.14.x before it was renamed; the same code). It is the layer
//! every other Rust `wasi:http` client sits on, has no dependencies but
//! `wit-bindgen`'s runtime, and is already in kiln's lockfile (Rust's
//! `getrandom` uses it on `wasm32-wasip2`). `waki` and `wstd` would add
//! their own request types, an async runtime (`wstd`) or a macro crate on
//! top of the same bindings, for features (async, servers) a step has no
//! use for; the client here is a few hundred lines over the bindings.
//! Only `wasm32-wasip2` builds depend on it: on other targets this SDK's
//! one dependency is still `zeroize`.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Context, Error, Result};
use crate::secret::Secret;

#[cfg(all(target_os = "wasi", target_env = "p2"))]
mod transport;

/// What sending a request says on targets without `wasi:http`.
pub const NEEDS_WASIP2: &str = "HTTP needs a wasm32-wasip2 step with --network=default \
     (this step was built for another target)";

/// `GET url`, sent, with a non-success status turned into an error: the
/// common case in one call. Use [`Request`] for headers, bodies, other
/// methods, or to look at a `4xx`/`5xx` response yourself.
pub fn get(url: &str) -> Result<Response> {
    Request::get(url)?.send()?.error_for_status()
}

/// An HTTP method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `OPTIONS`
    Options,
    /// Any other method token, as given.
    Other(String),
}

impl Method {
    /// The method for `name`: the common ones by name (case-sensitive, as
    /// HTTP methods are), any other valid token as [`Method::Other`].
    pub fn parse(name: &str) -> Result<Method> {
        Ok(match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ if is_token(name) => Method::Other(name.to_string()),
            _ => return Err(Error::new(format!("invalid HTTP method {name:?}"))),
        })
    }

    /// The method as it is sent.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// An absolute `http://` or `https://` URL, split the way `wasi:http`
/// takes it.
///
/// ```
/// use kiln_guest::http::{Scheme, Url};
///
/// let url = Url::parse("https://registry.example.com:8443/@scope%2fpkg?write=true#top")?;
/// assert_eq!(url.scheme(), Scheme::Https);
/// assert_eq!(url.authority(), "registry.example.com:8443");
/// assert_eq!(url.path_with_query(), "/@scope%2fpkg?write=true");
/// assert_eq!(url.to_string(), "https://registry.example.com:8443/@scope%2fpkg?write=true");
/// # Ok::<(), kiln_guest::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Url {
    /// Parses `text`: a scheme (`http` or `https`, any case), `://`, an
    /// authority (`host`, `host:port`, `[v6]:port`, no `user:pass@`), then
    /// an optional path and query. A fragment (`#...`) is dropped, as
    /// clients do; an empty path is `/`. Characters are sent as given (no
    /// percent-encoding is added): spaces and control characters are
    /// refused.
    pub fn parse(text: &str) -> Result<Url> {
        let invalid = |why: &str| Error::new(format!("invalid URL {text:?}: {why}"));
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it has spaces or control characters"));
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| invalid("expected http:// or https://"))?;
        let scheme = if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else {
            return Err(invalid("only http:// and https:// are supported"));
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            // Credentials in a URL end up in logs; kiln adds tokens itself.
            return Err(Error::new(format!(
                "invalid URL {}://{}: credentials in a URL are not supported \
                 (kiln adds an origin's token itself; or use Request::bearer)",
                scheme_str(scheme),
                authority.rsplit_once('@').map_or("", |(_, host)| host)
            )));
        }
        check_authority(authority).map_err(|why| invalid(&why))?;
        let path_with_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Url {
            scheme,
            authority: authority.to_ascii_lowercase(),
            path_with_query,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `host` or `host:port`, lowercased, as given (no default port added).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path and query, starting with `/`.
    pub fn path_with_query(&self) -> &str {
        &self.path_with_query
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            scheme_str(self.scheme),
            self.authority,
            self.path_with_query
        )
    }
}

fn scheme_str(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

/// Checks `host[:port]`, `[v6][:port]`.
fn check_authority(authority: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address without its closing ']'")?;
        if v6.is_empty()
            || !v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
        {
            return Err(format!("invalid IPv6 address [{v6}]"));
        }
        match after {
            "" => (None, None),
            _ => (
                None,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or("expected ':PORT' after the IPv6 address")?,
                ),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err("no host".into());
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || "-._~%!$&'()*+,;=".contains(c);
        if !host.chars().all(ok) {
            return Err(format!("invalid host {host:?}"));
        }
    }
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return Err(format!("invalid port {port:?}"));
    }
    Ok(())
}

/// `tchar` of RFC 9110: what a method or header name is made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a header: a token name; a value without CR, LF or NUL (which
/// would end the header early or smuggle another). Errors never show the
/// value.
fn check_header(name: &str, value: &[u8]) -> Result<()> {
    if !is_token(name) {
        return Err(Error::new(format!("invalid HTTP header name {name:?}")));
    }
    if value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(Error::new(format!(
            "invalid value for the HTTP header {name}: it has a line break or NUL \
             (the value is not shown)"
        )));
    }
    Ok(())
}

/// One HTTP request, built and then [sent](Request::send).
///
/// Header values are wiped from memory when the request is dropped, and
/// `Debug` shows header names only.
///
/// ```
/// use kiln_guest::Secret;
/// use kiln_guest::http::Request;
///
/// let token = Secret::from_bytes("npm_token", b"s3cr3t\n".to_vec());
/// let request = Request::new("PUT", "http://127.0.0.1:4873/pkg")?
///     .header("Content-Type", "application/json")?
///     .bearer(&token)?
///     .body(br#"{"name":"pkg"}"#.to_vec());
/// let shown = format!("{request:?}");
/// assert!(!shown.contains("s3cr3t"));
/// assert!(shown.contains("authorization"));
/// # Ok::<(), kiln_guest::Error>(())
/// ```
pub struct Request {
    method: Method,
    url: Url,
    /// Names lowercased; values wiped on drop (any of them may be a token).
    headers: Vec<(String, Zeroizing<Vec<u8>>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with `method` (`"GET"`, `"PUT"`, ...) to `url`.
    pub fn new(method: &str, url: &str) -> Result<Request> {
        Ok(Request {
            method: Method::parse(method)?,
            url: Url::parse(url)?,
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        })
    }

    /// A `GET` request to `url`.
    pub fn get(url: &str) -> Result<Request> {
        Request::new("GET", url)
    }

    /// Adds the header `name: value` (after any of the same name). `Host`
    /// comes from the URL and `Content-Length` from the body; headers the
    /// host manages (`Connection`, `Transfer-Encoding`, ...) are refused
    /// when the request is sent.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Result<Request> {
        let value = value.as_ref();
        check_header(name, value)?;
        self.headers
            .push((name.to_ascii_lowercase(), Zeroizing::new(value.to_vec())));
        Ok(self)
    }

    /// Adds `Authorization: Bearer <token>`, the token being `secret`'s
    /// value without surrounding whitespace (secret files often end with a
    /// newline). The value is copied only into this request, which wipes it
    /// when dropped.
    ///
    /// Prefer a secret bound to the origin, which kiln adds for the step
    /// (see the [module docs](self)); this is for a token the step must
    /// send itself.
    pub fn bearer(self, secret: &Secret) -> Result<Request> {
        let token = secret.expose().trim_ascii();
        if token.is_empty() {
            return Err(Error::new(format!(
                "secret {:?} is empty: no bearer token to send",
                secret.id()
            )));
        }
        let mut value = Zeroizing::new(Vec::with_capacity(7 + token.len()));
        value.extend_from_slice(b"Bearer ");
        value.extend_from_slice(token);
        check_header("authorization", &value)
            .with_context(|| format!("using the secret {:?} as a bearer token", secret.id()))?;
        let mut this = self;
        this.headers.push(("authorization".into(), value));
        Ok(this)
    }

    /// The body to send (none by default). `Content-Length` is set from it.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Request {
        self.body = bytes.into();
        self
    }

    /// Fails the request when connecting, the first byte of the response,
    /// or any gap between bytes of it takes longer than `timeout`. Without
    /// it, the host's limits apply.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Sends the request and waits for the response's status and headers;
    /// the body is read from the [`Response`]. Any status is a response:
    /// [`Response::error_for_status`] turns `4xx`/`5xx` into errors.
    ///
    /// Errors say what was asked (`GET https://...`) and why it failed,
    /// in words: DNS, connection refused, TLS, "HTTP request denied" when
    /// kiln's allowlist refused the origin.
    pub fn send(self) -> Result<Response> {
        let what = format!("{} {}", self.method, self.url);
        self.transport().with_context(|| what)
    }

    #[cfg(all(target_os = "wasi", target_env = "p2"))]
    fn transport(self) -> Result<Response> {
        transport::send(self)
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p2")))]
    fn transport(self) -> Result<Response> {
        Err(Error::new(NEEDS_WASIP2))
    }
}

/// Method, URL, header names and the body's length; never header values.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method.as_str())
            .field("url", &self.url.to_string())
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A response: status and headers, and the body to [read](Read), to
/// [copy](Response::copy_to) or to take [whole](Response::bytes).
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    /// `METHOD URL`, for errors.
    what: String,
    body: Box<dyn Read>,
}

impl Response {
    /// A response with a body read from `body`: for testing a step's logic
    /// on the host, where nothing is sent. Header names are lowercased.
    ///
    /// ```
    /// use kiln_guest::http::Response;
    ///
    /// let ok = Response::from_reader(200, vec![("Content-Type".into(), b"text/plain".to_vec())], &b"hi"[..]);
    /// assert_eq!(ok.header("content-type"), Some("text/plain"));
    /// assert_eq!(ok.bytes()?, b"hi");
    /// # Ok::<(), kiln_guest::Error>(())
    /// ```
    pub fn from_reader(
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: impl Read + 'static,
    ) -> Response {
        Response::new(status, headers, "the response".into(), Box::new(body))
    }

    pub(crate) fn new(
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        what: String,
        body: Box<dyn Read>,
    ) -> Response {
        let headers = headers
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();
        Response {
            status,
            headers,
            what,
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Every header, names lowercased, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The first header `name` (any case), if it is present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The same response if its status is `1xx`-`3xx`; otherwise an error
    /// naming the request and the status, with the start of the body (a
    /// registry's reason), e.g. `GET https://r.example/pkg: 401
    /// Unauthorized: {"error":"authorization required"}`.
    pub fn error_for_status(mut self) -> Result<Response> {
        if self.status < 400 {
            return Ok(self);
        }
        let mut start = Vec::new();
        let _ = (&mut self.body).take(512).read_to_end(&mut start);
        let mut err = Error::new(format!(
            "{}: {} {}",
            self.what,
            self.status,
            reason(self.status)
        ));
        let text = String::from_utf8_lossy(&start);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() {
            err = err.caused_by(format!("the server said: {text}"));
        }
        Err(err)
    }

    /// The whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        self.body
            .read_to_end(&mut body)
            .with_context(|| format!("reading the body of {}", self.what))?;
        Ok(body)
    }

    /// Streams the body into `out` (a file, a hasher) and returns its
    /// length, without holding it in memory.
    pub fn copy_to(mut self, out: &mut impl Write) -> Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match self.body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::from(e))
                        .with_context(|| format!("reading the body of {}", self.what));
                }
            };
            out.write_all(&buf[..n])
                .with_context(|| format!("writing the body of {}", self.what))?;
            total += n as u64;
        }
        out.flush()
            .with_context(|| format!("writing the body of {}", self.what))?;
        Ok(total)
    }
}

/// The body, read as it arrives.
impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.body.read(buf)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

/// The reason phrase of the statuses a step is likely to meet.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ if status < 500 => "(client error)",
        _ => "(server error)",
    }
}

/// Why a request failed, from `wasi:http`'s `error-code`, in the words an
/// error shows. Kept apart from the bindings so the words are tested on
/// the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(all(target_os = "wasi", target_env = "p2")), allow(dead_code))]
pub(crate) enum Failure {
    /// The host's allowlist refused the origin.
    Denied,
    /// The name did not resolve (`detail`: the DNS rcode, if any).
    Dns(Option<String>),
    DnsTimeout,
    Refused,
    /// A connection-level failure: its kind in words.
    Connection(&'static str),
    /// TLS: its kind and the host's detail.
    Tls(&'static str, Option<String>),
    /// A limit of the request or response was exceeded: which one.
    Limit(&'static str),
    /// Anything else: `wasi:http`'s name for it, and any detail.
    Other(String, Option<String>),
}

impl Failure {
    /// The words for this failure of a request to `authority`.
    #[cfg_attr(not(all(target_os = "wasi", target_env = "p2")), allow(dead_code))]
    pub(crate) fn words(&self, authority: &str) -> String {
        match self {
            Failure::Denied => format!(
                "HTTP request denied: {authority} is not allowed for this step \
                 (the RUN needs --network=default, and the build \
                 `kiln build --allow-net {authority}`)"
            ),
            Failure::Dns(None) => format!("DNS lookup of {authority} failed"),
            Failure::Dns(Some(rcode)) => format!("DNS lookup of {authority} failed ({rcode})"),
            Failure::DnsTimeout => format!("DNS lookup of {authority} timed out"),
            Failure::Refused => format!("connection to {authority} refused (is the server up?)"),
            Failure::Connection(what) => format!("connection to {authority}: {what}"),
            Failure::Tls(what, None) => format!("TLS with {authority}: {what}"),
            Failure::Tls(what, Some(detail)) => format!("TLS with {authority}: {what} ({detail})"),
            Failure::Limit(what) => format!("{what} exceeds the host's limit"),
            Failure::Other(name, None) => format!("wasi:http error {name}"),
            Failure::Other(name, Some(detail)) => format!("wasi:http error {name}: {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let cases = [
            ("http://127.0.0.1:4873", Scheme::Http, "127.0.0.1:4873", "/"),
            (
                "HTTPS://Registry.NPMjs.org/",
                Scheme::Https,
                "registry.npmjs.org",
                "/",
            ),
            (
                "http://127.0.0.1:4873/@kiln-test%2fleft-pad",
                Scheme::Http,
                "127.0.0.1:4873",
                "/@kiln-test%2fleft-pad",
            ),
            ("http://h?x=1", Scheme::Http, "h", "/?x=1"),
            ("http://h/a/b?x=1&y#frag", Scheme::Http, "h", "/a/b?x=1&y"),
            ("http://[::1]:8080/p", Scheme::Http, "[::1]:8080", "/p"),
            ("http://[::1]", Scheme::Http, "[::1]", "/"),
        ];
        for (text, scheme, authority, path) in cases {
            let url = Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.scheme(), scheme, "{text}");
            assert_eq!(url.authority(), authority, "{text}");
            assert_eq!(url.path_with_query(), path, "{text}");
        }
        assert_eq!(
            Url::parse("http://h:1/p?q").unwrap().to_string(),
            "http://h:1/p?q"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        let cases = [
            ("ftp://h/", "only http:// and https://"),
            ("registry.npmjs.org/x", "expected http:// or https://"),
            ("http:///path", "no host"),
            ("http://h:/", "invalid port \"\""),
            ("http://h:99999/", "invalid port \"99999\""),
            ("http://h:8o/", "invalid port \"8o\""),
            ("http://[::1/", "closing ']'"),
            ("http://[::1]x/", "expected ':PORT'"),
            ("http://h/a b", "spaces or control characters"),
            ("http://h/\r\nX: y", "spaces or control characters"),
            ("http://h<>/", "invalid host"),
        ];
        for (text, why) in cases {
            let err = Url::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.starts_with("invalid URL"), "{text}: {err}");
        }
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_showing_them() {
        let err = Url::parse("https://kiln:hunter2@registry.example/pkg")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2") && !err.contains("kiln:"), "{err}");
        assert!(err.contains("registry.example"), "{err}");
        assert!(err.contains("credentials in a URL"), "{err}");
    }

    #[test]
    fn headers_are_validated_and_values_never_shown() {
        let ok = Request::get("http://h/")
            .unwrap()
            .header("X-Custom_1", "a value; with=things")
            .unwrap();
        assert_eq!(ok.headers[0].0, "x-custom_1");
        for name in ["", "Bad Name", "bad:name", "bad\nname", "é"] {
            let err = Request::get("http://h/")
                .unwrap()
                .header(name, "v")
                .unwrap_err();
            assert!(
                err.to_string().contains("invalid HTTP header name"),
                "{name:?}: {err}"
            );
        }
        for value in ["hunter2\r\nX-Evil: 1", "hunter2\n", "hunter2\0"] {
            let err = Request::get("http://h/")
                .unwrap()
                .header("Authorization", value)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("Authorization") && err.contains("line break"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn methods_parse() {
        assert_eq!(Method::parse("GET").unwrap(), Method::Get);
        assert_eq!(
            Method::parse("PROPFIND").unwrap(),
            Method::Other("PROPFIND".into())
        );
        assert_eq!(Method::parse("PUT").unwrap().to_string(), "PUT");
        assert!(Method::parse("GE T").is_err());
        assert!(Method::parse("").is_err());
        assert!(Request::new("GET\r\n", "http://h/").is_err());
    }

    #[test]
    fn bearer_trims_the_secret_and_hides_it() {
        let token = Secret::from_bytes("npm_token", b"  s3cr3t\n".to_vec());
        let request = Request::get("http://h/").unwrap().bearer(&token).unwrap();
        assert_eq!(request.headers[0].0, "authorization");
        assert_eq!(&request.headers[0].1[..], b"Bearer s3cr3t");
        let shown = format!("{request:?} {request:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("\"authorization\""), "{shown}");

        let empty = Secret::from_bytes("npm_token", b"\n".to_vec());
        let err = Request::get("http://h/")
            .unwrap()
            .bearer(&empty)
            .unwrap_err();
        assert!(err.to_string().contains("\"npm_token\" is empty"), "{err}");

        let broken = Secret::from_bytes("npm_token", b"s3cr3t\nX-Evil: 1".to_vec());
        let err = Request::get("http://h/")
            .unwrap()
            .bearer(&broken)
            .unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("line break") && err.contains("npm_token"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p2")))]
    #[test]
    fn sending_off_wasip2_says_what_is_needed() {
        let err = get("http://127.0.0.1:4873/-/ping").unwrap_err();
        assert_eq!(err.message(), "GET http://127.0.0.1:4873/-/ping");
        assert_eq!(err.causes().collect::<Vec<_>>(), [NEEDS_WASIP2]);
        assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
        assert!(err.to_string().contains("--network=default"), "{err}");
    }

    #[test]
    fn responses_read_copy_and_check_status() {
        let ok = Response::from_reader(200, vec![], &b"tarball bytes"[..]);
        let mut out = Vec::new();
        assert_eq!(
            ok.error_for_status().unwrap().copy_to(&mut out).unwrap(),
            13
        );
        assert_eq!(out, b"tarball bytes");

        let big = vec![7u8; 200_000];
        let mut out = Vec::new();
        let n = Response::from_reader(200, vec![], io::Cursor::new(big.clone()))
            .copy_to(&mut out)
            .unwrap();
        assert_eq!((n, out), (200_000, big));

        let denied = Response::new(
            401,
            vec![("WWW-Authenticate".into(), b"Bearer".to_vec())],
            "GET http://h/pkg".into(),
            Box::new(&br#"{"error":"authorization required to access package pkg"}"#[..]),
        );
        assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
        let err = denied.error_for_status().unwrap_err();
        assert_eq!(err.message(), "GET http://h/pkg: 401 Unauthorized");
        assert_eq!(
            err.causes().collect::<Vec<_>>(),
            [r#"the server said: {"error":"authorization required to access package pkg"}"#]
        );
        let gone = Response::from_reader(503, vec![], io::empty());
        assert_eq!(
            gone.error_for_status().unwrap_err().to_string(),
            "the response: 503 Service Unavailable"
        );
        assert!(
            Response::from_reader(304, vec![], io::empty())
                .error_for_status()
                .is_ok()
        );
    }

    #[test]
    fn a_body_that_fails_midway_says_which_request() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("connection to h: reset"))
            }
        }
        let response = Response::new(200, vec![], "GET http://h/x.tgz".into(), Box::new(Broken));
        let err = response.bytes().unwrap_err();
        assert_eq!(
            err.to_string(),
            "reading the body of GET http://h/x.tgz: connection to h: reset"
        );
    }

    #[test]
    fn failures_in_words() {
        let host = "127.0.0.1:4873";
        let denied = Failure::Denied.words(host);
        assert!(
            denied.starts_with("HTTP request denied: 127.0.0.1:4873 is not allowed"),
            "{denied}"
        );
        assert!(denied.contains("--network=default"), "{denied}");
        assert!(
            denied.contains("kiln build --allow-net 127.0.0.1:4873"),
            "{denied}"
        );
        assert_eq!(
            Failure::Refused.words(host),
            "connection to 127.0.0.1:4873 refused (is the server up?)"
        );
        assert_eq!(
            Failure::Dns(Some("NXDOMAIN".into())).words("nope.invalid"),
            "DNS lookup of nope.invalid failed (NXDOMAIN)"
        );
        assert_eq!(
            Failure::Tls("certificate not trusted", None).words("h:443"),
            "TLS with h:443: certificate not trusted"
        );
        assert_eq!(
            Failure::Other("loop-detected".into(), None).words(host),
            "wasi:http error loop-detected"
        );
    }
}
