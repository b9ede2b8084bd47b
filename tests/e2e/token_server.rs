//! A token server for the bearer-token flow of the distribution spec
//! ("Token Authentication Specification"), for a real registry configured
//! with `auth: token:` ([`RegistryServer::with_token_auth`]).
//!
//! A client asks the registry, gets `401` with
//! `WWW-Authenticate: Bearer realm=...,service=...,scope=...`, asks the
//! realm (this server) for a token for the scopes, with basic auth or
//! anonymously, and sends the token back to the registry. This server
//! grants what its policy lets the one user do, nothing to anonymous
//! requests, and answers a wrong password with `401`. Tokens are JWTs
//! signed RS256 with an RSA key made by the `openssl` CLI for this server,
//! whose self-signed certificate travels in the `x5c` header and is the
//! registry's `rootcertbundle`.
//!
//! Every request is recorded ([`TokenServer::requests`]) so tests can
//! check the scopes a client asked for.
//!
//! [`RegistryServer::with_token_auth`]: crate::registry_server::RegistryServer::with_token_auth

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tempfile::TempDir;

use crate::util::tool;

/// The registry's `service`: the audience of the tokens.
pub const TOKEN_SERVICE: &str = "kiln-test-registry";
/// The tokens' issuer, which the registry trusts.
pub const TOKEN_ISSUER: &str = "kiln-test-issuer";
/// How long a token lasts, in seconds.
const TOKEN_LIFETIME: u64 = 300;
/// Largest request head read.
const MAX_HEAD: usize = 64 << 10;

/// What the user may do in the repositories a pattern names: one name, or
/// every name under a prefix (`team/*`).
#[derive(Debug, Clone)]
pub struct Grant {
    pattern: String,
    actions: Vec<String>,
}

impl Grant {
    /// `actions` (`pull`, `push`, `delete`...) in `pattern`'s repositories.
    pub fn new(pattern: &str, actions: &[&str]) -> Grant {
        Grant {
            pattern: pattern.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.pattern,
        }
    }
}

/// One access a token grants: a repository and actions on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub name: String,
    pub actions: Vec<String>,
}

/// A request the token server answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The path, without the query.
    pub path: String,
    /// The query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Whether it had an `Authorization` header.
    pub had_credentials: bool,
    /// The status answered.
    pub status: u16,
    /// What the token answered grants (none unless the status is 200).
    pub granted: Vec<Access>,
}

impl TokenRequest {
    /// The values of the query parameter `key`.
    pub fn params(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The scopes asked for (`scope` may repeat, or hold several separated
    /// by spaces).
    pub fn scopes(&self) -> Vec<&str> {
        self.params("scope")
            .into_iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// What a connection needs: the policy and the signing key.
struct Issuer {
    user: String,
    password: String,
    policy: Vec<Grant>,
    key: PathBuf,
    /// The certificate, base64 DER, for `x5c`.
    x5c: String,
    /// Makes `jti` unique.
    serial: AtomicU64,
    requests: Mutex<Vec<TokenRequest>>,
    /// Connections accepted and not yet answered.
    in_flight: AtomicU64,
}

/// A running token server; stopped on drop.
pub struct TokenServer {
    addr: SocketAddr,
    issuer: Arc<Issuer>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Last: the key is removed after the thread is gone.
    dir: TempDir,
}

impl TokenServer {
    /// A server on a free port of 127.0.0.1 that knows one user, with a
    /// new RSA key and certificate.
    pub fn start(user: &str, password: &str, policy: &[Grant]) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("signer.key");
        let crt = dir.path().join("signer.crt");
        let der = dir.path().join("signer.der");
        let p = |p: &Path| p.to_str().unwrap().to_string();
        tool(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-sha256",
                "-days",
                "2",
                "-subj",
                "/CN=kiln e2e token signer",
                "-keyout",
                &p(&key),
                "-out",
                &p(&crt),
            ],
        );
        tool(
            "openssl",
            &["x509", "-in", &p(&crt), "-outform", "DER", "-out", &p(&der)],
        );
        let issuer = Arc::new(Issuer {
            user: user.to_string(),
            password: password.to_string(),
            policy: policy.to_vec(),
            key,
            x5c: STANDARD.encode(fs::read(&der).unwrap()),
            serial: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicU64::new(0),
        });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let issuer = Arc::clone(&issuer);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let issuer = Arc::clone(&issuer);
                    issuer.in_flight.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        serve(stream, &issuer);
                        issuer.in_flight.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        TokenServer {
            addr,
            issuer,
            stop,
            thread: Some(thread),
            dir,
        }
    }

    /// `http://127.0.0.1:PORT/token`: the registry's realm.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The signing certificate (PEM): the registry's `rootcertbundle`.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("signer.crt")
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.settle();
        self.issuer.requests.lock().unwrap().clone()
    }

    /// Forgets the requests answered so far: those of a command that has
    /// exited, including any it left in flight when it failed.
    pub fn clear(&self) {
        self.settle();
        self.issuer.requests.lock().unwrap().clear();
    }

    /// Waits (a while) until every connection accepted is answered.
    fn settle(&self) {
        let start = Instant::now();
        while self.issuer.in_flight.load(Ordering::SeqCst) > 0
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one connection: one request, then closes it.
fn serve(mut stream: TcpStream, issuer: &Issuer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let (status, body, record) = answer(&head, issuer);
    if let Some(record) = record {
        issuer.requests.lock().unwrap().push(record);
    }
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 401 {
        response += "WWW-Authenticate: Basic realm=\"kiln-test-token\"\r\n";
    }
    response += "\r\n";
    response += &body;
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// The request line and headers, up to the blank line.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}

/// The status, body and record for a request head.
fn answer(head: &str, issuer: &Issuer) -> (u16, String, Option<TokenRequest>) {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let mut record = TokenRequest {
        path: path.to_string(),
        query: parse_query(raw_query),
        had_credentials: authorization.is_some(),
        status: 0,
        granted: Vec::new(),
    };
    let (status, body) = if method != "GET" || path != "/token" {
        (404, error_body("NOT_FOUND", "no such endpoint"))
    } else {
        match authorization.as_deref().map(|a| basic_user(a, issuer)) {
            Some(None) => (401, error_body("UNAUTHORIZED", "bad credentials")),
            Some(Some(user)) => {
                record.granted = grants(&record, &issuer.policy);
                (200, token_body(issuer, Some(&user), &record))
            }
            // Anonymous: a token, granting nothing.
            None => (200, token_body(issuer, None, &record)),
        }
    };
    record.status = status;
    (status, body, Some(record))
}

/// The user an `Authorization: Basic` value names, if its password is the
/// user's.
fn basic_user(authorization: &str, issuer: &Issuer) -> Option<String> {
    let (scheme, encoded) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (user == issuer.user && password == issuer.password).then(|| user.to_string())
}

/// What the policy lets the user do of what `request` asks for.
fn grants(request: &TokenRequest, policy: &[Grant]) -> Vec<Access> {
    let mut out: Vec<Access> = Vec::new();
    for scope in request.scopes() {
        // `repository:NAME:ACTIONS`; a name may hold no `:`, but be lenient.
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        if kind != "repository" {
            continue;
        }
        let allowed: Vec<String> = actions
            .split(',')
            .filter(|a| {
                policy
                    .iter()
                    .any(|g| g.matches(name) && g.actions.iter().any(|x| x == a))
            })
            .map(str::to_string)
            .collect();
        if allowed.is_empty() {
            continue;
        }
        match out.iter_mut().find(|a| a.name == name) {
            Some(access) => {
                for a in allowed {
                    if !access.actions.contains(&a) {
                        access.actions.push(a);
                    }
                }
            }
            None => out.push(Access {
                name: name.to_string(),
                actions: allowed,
            }),
        }
    }
    out
}

/// `{"token": JWT, "access_token": JWT, "expires_in", "issued_at"}`.
fn token_body(issuer: &Issuer, user: Option<&str>, request: &TokenRequest) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [issuer.x5c],
    });
    let access: Vec<serde_json::Value> = request
        .granted
        .iter()
        .map(|a| serde_json::json!({"type": "repository", "name": a.name, "actions": a.actions}))
        .collect();
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": user.unwrap_or(""),
        "aud": TOKEN_SERVICE,
        "exp": now + TOKEN_LIFETIME,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("kiln-e2e-{}", issuer.serial.fetch_add(1, Ordering::Relaxed)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = rs256(&issuer.key, signing_input.as_bytes());
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    serde_json::json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": TOKEN_LIFETIME,
        "issued_at": rfc3339(now),
    })
    .to_string()
}

/// The RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of `data`, by
/// `openssl dgst -sign`.
fn rs256(key: &Path, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is needed by the token server (.ci/run installs it)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.len() == 256,
        "openssl dgst -sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string()
}

/// `a=b&c=d`, percent-decoded (`+` is a space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn queries_are_decoded() {
        assert_eq!(
            parse_query("scope=repository%3Ateam%2Fapp%3Apull%2Cpush&service=s+t&x"),
            vec![
                ("scope".into(), "repository:team/app:pull,push".into()),
                ("service".into(), "s t".into()),
                ("x".into(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn the_policy_grants_only_what_it_names() {
        let policy = [
            Grant::new("team/*", &["pull", "push"]),
            Grant::new("readonly/*", &["pull"]),
        ];
        let request = |scope: &str| TokenRequest {
            path: "/token".into(),
            query: vec![("scope".into(), scope.into())],
            had_credentials: true,
            status: 0,
            granted: Vec::new(),
        };
        let access = |name: &str, actions: &[&str]| Access {
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(
            grants(&request("repository:team/app:pull,push"), &policy),
            [access("team/app", &["pull", "push"])]
        );
        assert_eq!(
            grants(&request("repository:readonly/app:pull,push"), &policy),
            [access("readonly/app", &["pull"])]
        );
        assert!(grants(&request("repository:other/app:pull"), &policy).is_empty());
        assert!(grants(&request("registry:catalog:*"), &policy).is_empty());
    }
}
