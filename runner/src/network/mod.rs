//! Network for steps: closed by default, opened per step to named hosts.
//!
//! A RUN with `--network=default` gets the build's allowlist
//! (`kiln build --allow-net HOST[:PORT],...`); every other step has no
//! network at all. What a networked step may reach is a [`Policy`]:
//!
//! - an [`Allowlist`] of hosts, each with an optional port (no port: any
//!   port), matched against the authority of each outgoing HTTP request
//!   (`wasi:http`) and against the name a step looks up and the addresses
//!   it connects to (`wasi:sockets`);
//! - the secrets bound to an origin ([`BoundSecret`],
//!   `--mount=type=secret,id=ID,origin=URL`): never a file nor an
//!   environment variable, but a header kiln adds to the step's requests
//!   whose origin (scheme, host, port) is exactly the bound one;
//! - the TLS roots for HTTPS (the system's plus `--ca-cert` files);
//! - where to say what was refused: a line in the step's log naming the
//!   host and the flag that would allow it.
//!
//! Read next: `crate::wasi::p2::http` (the `wasi:http` host that applies a
//! policy) and `tls.rs`.

#[cfg(test)]
mod tests;
mod tls;

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::secrets::Secret;

pub use tls::{load_ca_certs, tls_config};

/// One `--allow-net` entry: a host name or IP address, and a port or any.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllowedHost {
    /// Lowercase host name, or an IP address as text (IPv6 without
    /// brackets).
    pub host: String,
    /// `None`: any port.
    pub port: Option<u16>,
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => f.write_str(&host),
        }
    }
}

/// Splits `HOST[:PORT]` (IPv6 in brackets) into a normalised host and port.
pub fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: an IPv6 address needs a closing ]"))?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{s:?}: expected :PORT after ]"))?,
                ),
            ),
        }
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address, no port.
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{s:?}: port {p:?} is not a number from 1 to 65535"))
        })
        .transpose()?;
    let host = normalise_host(host).ok_or_else(|| {
        format!("{s:?} is not a host: expected a name like registry.npmjs.org or an IP address")
    })?;
    Ok((host, port))
}

/// A host in canonical form: an IP address as Rust prints it, a name in
/// lowercase without a trailing dot; `None` when it is neither.
pub fn normalise_host(host: &str) -> Option<String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    ok.then_some(name)
}

/// The hosts a networked step may reach: sorted, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist(Vec<AllowedHost>);

impl Allowlist {
    /// Adds the entries of one `--allow-net` value: `HOST[:PORT]`,
    /// comma-separated.
    pub fn add(&mut self, flag: &str) -> Result<(), String> {
        for entry in flag.split(',') {
            if entry.trim().is_empty() {
                return Err(format!("--allow-net {flag:?}: an empty entry"));
            }
            let (host, port) = split_host_port(entry).map_err(|e| format!("--allow-net {e}"))?;
            self.0.push(AllowedHost { host, port });
        }
        self.0.sort();
        self.0.dedup();
        Ok(())
    }

    /// The allowlist of every `--allow-net` value.
    pub fn parse<S: AsRef<str>>(flags: &[S]) -> Result<Allowlist, String> {
        let mut list = Allowlist::default();
        for f in flags {
            list.add(f.as_ref())?;
        }
        Ok(list)
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries.
    pub fn entries(&self) -> &[AllowedHost] {
        &self.0
    }

    /// Whether `host` (any form [`normalise_host`] accepts) on `port` is
    /// allowed. Names match exactly: `example.com` does not allow
    /// `www.example.com`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let Some(host) = normalise_host(host) else {
            return false;
        };
        self.0
            .iter()
            .any(|a| a.host == host && a.port.is_none_or(|p| p == port))
    }

    /// Whether `host` is allowed on some port (a name lookup).
    pub fn allows_name(&self, host: &str) -> bool {
        let Some(host) = normalise_host(host) else {
            return false;
        };
        self.0.iter().any(|a| a.host == host)
    }

    /// The canonical text, for cache keys and messages: `a:1,b,c:3`.
    pub fn canonical(&self) -> String {
        let v: Vec<String> = self.0.iter().map(|a| a.to_string()).collect();
        v.join(",")
    }
}

/// `scheme://host:port`, with the default port filled in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Normalised host (see [`normalise_host`]).
    pub host: String,
    /// The port; 80 or 443 when the URL has none.
    pub port: u16,
}

impl Origin {
    /// Parses `http://HOST[:PORT]` or `https://HOST[:PORT]` (a trailing `/`
    /// allowed; no path, user or query).
    pub fn parse(url: &str) -> Result<Origin, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!(
                "origin={url:?}: expected scheme://host[:port], like https://registry.npmjs.org"
            )
        })?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => {
                return Err(format!("origin={url:?}: the scheme must be http or https"));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '@', '?', '#']) {
            return Err(format!(
                "origin={url:?}: an origin is scheme://host[:port], without a path, user or query"
            ));
        }
        let (host, port) = split_host_port(rest).map_err(|e| format!("origin={e}"))?;
        Ok(Origin {
            scheme,
            host,
            port: port.unwrap_or(default_port),
        })
    }

    /// The origin of a request to `scheme` and `authority` (`host[:port]`).
    pub fn of_request(scheme: &str, authority: &str) -> Option<Origin> {
        Origin::parse(&format!("{scheme}://{authority}")).ok()
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{}://{host}:{}", self.scheme, self.port)
    }
}

/// A secret that travels only as a header of requests to one origin.
#[derive(Clone)]
pub struct BoundSecret {
    /// Where the header goes.
    pub origin: Origin,
    /// The header's name (`Authorization` by default).
    pub header: http::HeaderName,
    /// Written before the value with a space (`Bearer` by default for
    /// `Authorization`), or nothing.
    pub scheme: Option<String>,
    /// The value.
    pub secret: Arc<Secret>,
}

impl std::fmt::Debug for BoundSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BoundSecret({:?} to {} as {})",
            self.secret.id(),
            self.origin,
            self.header
        )
    }
}

impl BoundSecret {
    /// The header value: `SCHEME value`, marked sensitive (hyper never
    /// prints it), the value without surrounding whitespace (secret files
    /// often end with a newline, as `kiln_guest`'s `Request::bearer`
    /// trims too). `None` when the secret cannot be a header value (a
    /// newline or other control bytes inside it).
    pub fn header_value(&self) -> Option<http::HeaderValue> {
        let mut bytes = Vec::new();
        if let Some(s) = &self.scheme {
            bytes.extend_from_slice(s.as_bytes());
            bytes.push(b' ');
        }
        bytes.extend_from_slice(self.secret.expose().trim_ascii());
        let value = http::HeaderValue::from_bytes(&bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        let mut value = value.ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// Where a step's refusals are told: its stderr, so they show in the build
/// log beside what the guest prints (and go through the same masking).
pub type NetLog = Arc<Mutex<Box<dyn Write + Send>>>;

/// What one networked step may do. See the module docs.
pub struct Policy {
    /// The hosts it may reach.
    pub allow: Allowlist,
    /// Secrets sent as headers to their origin.
    pub bound: Vec<BoundSecret>,
    /// TLS for HTTPS requests.
    pub tls: Arc<rustls::ClientConfig>,
    /// Where refusals are told, if anywhere.
    pub log: Option<NetLog>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("allow", &self.allow.canonical())
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Tells the step's log `line` (prefixed `kiln:`).
    pub fn note(&self, line: &str) {
        tell(self.log.as_ref(), line);
    }

    /// Whether a request to `host:port` may go; when not, tells the log
    /// which flag would allow it.
    pub fn check(&self, what: &str, host: &str, port: u16) -> bool {
        if self.allow.allows(host, port) {
            return true;
        }
        self.refuse(
            what,
            &AllowedHost {
                host: normalise_host(host).unwrap_or_else(|| host.to_string()),
                port: Some(port),
            },
        );
        false
    }

    /// Tells the log that `what` `shown` was refused, and the flag that
    /// would allow it.
    pub fn refuse(&self, what: &str, shown: &AllowedHost) {
        self.note(&format!(
            "refused {what}{shown}: not in this build's network allowlist (allow it with --allow-net {shown})"
        ));
    }

    /// The headers to add to a request to `origin`: the secrets bound to
    /// exactly that origin, none for any other.
    pub fn headers_for(&self, origin: &Origin) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let mut out = Vec::new();
        for b in self.bound.iter().filter(|b| &b.origin == origin) {
            match b.header_value() {
                Some(v) => out.push((b.header.clone(), v)),
                None => self.note(&format!(
                    "secret {:?} cannot be sent as the {} header (it holds control characters); the request goes without it",
                    b.secret.id(),
                    b.header
                )),
            }
        }
        out
    }
}

/// What a step without `--network=default` is told when it tries the
/// network.
pub const NO_NETWORK: &str = "this step has no network: add --network=default to its RUN and give the hosts with --allow-net HOST[:PORT]";

/// Tells `log` that a step without network tried to reach `what`.
pub fn note_no_network(log: Option<&NetLog>, what: &str) {
    tell(log, &format!("refused {what}: {NO_NETWORK}"));
}

/// Writes `line` to a step's `log` (prefixed `kiln:`), if it has one.
pub fn tell(log: Option<&NetLog>, line: &str) {
    if let Some(log) = log {
        let mut w = log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(w, "kiln: {line}");
        let _ = w.flush();
    }
}

/// The build's (or run's) network settings: `--allow-net` and `--ca-cert`.
#[derive(Clone, Debug, Default)]
pub struct NetworkOptions {
    /// The hosts a step with `--network=default` may reach.
    pub allow: Allowlist,
    /// Extra roots for HTTPS (`--ca-cert`), besides the system's.
    pub ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The TLS configuration, made once when a step first needs it.
    tls: Arc<std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
}

impl NetworkOptions {
    /// Settings from the `--allow-net` values and `--ca-cert` files.
    pub fn new<S: AsRef<str>, P: AsRef<std::path::Path>>(
        allow: &[S],
        ca_files: &[P],
    ) -> Result<NetworkOptions, String> {
        Ok(NetworkOptions {
            allow: Allowlist::parse(allow)?,
            ca_certs: load_ca_certs(ca_files)?,
            tls: Arc::default(),
        })
    }

    /// The policy of one networked step with secrets `bound`, telling
    /// refusals to `log`.
    pub fn policy(&self, bound: Vec<BoundSecret>, log: Option<NetLog>) -> Result<Policy, String> {
        let tls = self
            .tls
            .get_or_init(|| tls_config(self.ca_certs.clone()))
            .clone()?;
        Ok(Policy {
            allow: self.allow.clone(),
            bound,
            tls,
            log,
        })
    }
}

/// The error for `--network=default` with nothing allowed.
pub const EMPTY_ALLOWLIST: &str = "--network=default opens the network to the hosts given with --allow-net, and none was given: pass --allow-net HOST[:PORT] (repeatable, comma-separated)";

/// The error for a secret bound to an origin in a step without network.
pub fn bound_without_network(id: &str) -> String {
    format!(
        "secret {id:?} is bound to an origin, but this step has no network: add --network=default (and --allow-net for the origin's host)"
    )
}

/// The secret `secret` bound as `mount` asks (`origin=`, `header=`,
/// `scheme=`).
pub fn bind(mount: &crate::frontend::Mount, secret: Arc<Secret>) -> Option<BoundSecret> {
    let origin = mount.origin.clone()?;
    let header = match &mount.header {
        Some(h) => http::HeaderName::from_bytes(h.as_bytes()).ok()?,
        None => http::header::AUTHORIZATION,
    };
    let scheme = match mount.scheme.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("none") => None,
        Some(s) => Some(s.to_string()),
        None if header == http::header::AUTHORIZATION => Some("Bearer".into()),
        None => None,
    };
    Some(BoundSecret {
        origin,
        header,
        scheme,
        secret,
    })
}

/// Checks `header=` of a bound secret: an HTTP header name.
pub fn check_header(v: &str) -> Result<(), String> {
    http::HeaderName::from_bytes(v.as_bytes())
        .map(drop)
        .map_err(|_| format!("header={v:?} is not an HTTP header name"))
}

/// Checks `scheme=` of a bound secret: one token, like `Bearer`.
pub fn check_scheme(v: &str) -> Result<(), String> {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "scheme={v:?} is not an authentication scheme like Bearer or Basic"
        ))
    }
}
