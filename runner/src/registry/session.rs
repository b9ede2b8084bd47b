//! A session with registries: one async runtime, one client per registry
//! host (its scheme, TLS roots and credentials settled on first use), and
//! the retry policy every request goes through.
//!
//! kiln's code is synchronous; the session owns a small tokio runtime and
//! blocks on it ([`Session::block_on`]), so the rest of kiln never sees a
//! future.
//!
//! **Schemes.** HTTPS with verified certificates, always, except:
//! - a host named by `--insecure-registry` may answer over plain HTTP or
//!   with a certificate kiln cannot verify (docker's `insecure-registries`);
//! - a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`) may answer over
//!   plain HTTP, as docker allows; its certificate, when it speaks TLS, is
//!   still verified.
//!
//! Either way kiln tries HTTPS first and falls back to HTTP only when the
//! host answers the `/v2/` probe there with a registry's status.
//!
//! **Credentials** come from [`AuthFile`]; they are handed to oci-client,
//! which sends them only to the registry they belong to (basic auth, or
//! the bearer-token flow of the distribution spec with per-repository
//! scopes). They are never logged or put in an error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use secrecy::ExposeSecret;

use super::RegistryError;
use super::credentials::AuthFile;

/// How kiln talks to registries: `--registry-ca`, `--insecure-registry`,
/// parallel transfers.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Hosts (`host[:port]`) that may use plain HTTP or unverified TLS.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM files) to trust, besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// Blobs transferred at once.
    pub jobs: usize,
    /// Where credentials are read; `None` reads the default place
    /// ([`AuthFile::locate`]).
    pub auth_file: Option<PathBuf>,
    /// Blobs larger than this are pushed in chunks
    /// ([`super::push::CHUNKED_ABOVE`] by default).
    pub chunked_above: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            ca_files: Vec::new(),
            jobs: 4,
            auth_file: None,
            chunked_above: super::push::CHUNKED_ABOVE,
        }
    }
}

/// Whether `host` (`host[:port]`) is a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One registry host, connected.
pub(crate) struct Remote {
    /// The client, configured for this host's scheme and roots.
    pub(crate) client: oci_client::Client,
    /// The credentials it was given.
    pub(crate) auth: RegistryAuth,
    /// Whether any were found.
    pub(crate) has_credentials: bool,
    /// The host, as references name it.
    pub(crate) host: String,
    /// `https` or `http`, as the probe settled.
    pub(crate) scheme: &'static str,
    /// A plain HTTP client for this host (its roots, `--insecure-registry`),
    /// for what kiln asks the registry itself.
    pub(crate) http: reqwest::Client,
}

impl Remote {
    /// A token for `scopes` (`repository:NAME:ACTIONS`, all in one
    /// request, as docker and crane ask) from the registry's bearer realm,
    /// with the credentials kiln has for it; `None` when the registry does
    /// not use tokens, or the realm answers anything but a token.
    ///
    /// oci-client asks for one repository's scope at a time; this is for
    /// what needs two (a cross-repository mount). Credentials never go
    /// from an HTTPS registry to a plain HTTP realm.
    pub(crate) async fn bearer_token(&self, scopes: &[String]) -> Option<String> {
        let url = format!("{}://{}/v2/", self.scheme, api_host(&self.host));
        let first = self.http.get(&url).send().await.ok()?;
        if first.status().as_u16() != 401 {
            return None;
        }
        let challenge = first
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)?
            .to_str()
            .ok()?;
        let params = super::login::strip_scheme(challenge, "bearer")?;
        let realm = reqwest::Url::parse(&super::login::param(params, "realm")?).ok()?;
        let mut query: Vec<(&str, String)> = scopes.iter().map(|s| ("scope", s.clone())).collect();
        if let Some(service) = super::login::param(params, "service") {
            query.push(("service", service));
        }
        let mut request = self.http.get(realm.clone()).query(&query);
        if let RegistryAuth::Basic(user, password) = &self.auth {
            if self.scheme == "https" && realm.scheme() != "https" {
                return None;
            }
            request = request.basic_auth(user, Some(password));
        }
        let answer = request.send().await.ok()?;
        if !answer.status().is_success() {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body: Token = serde_json::from_slice(&answer.bytes().await.ok()?).ok()?;
        body.token.or(body.access_token).filter(|t| !t.is_empty())
    }
}

/// A session with registries. See the module docs.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    options: RegistryOptions,
    remotes: Mutex<HashMap<String, Arc<Remote>>>,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session; `cancel` set stops transfers between chunks.
    pub fn new(
        options: RegistryOptions,
        cancel: Arc<AtomicBool>,
    ) -> Result<Session, RegistryError> {
        // rustls needs one process-wide crypto provider; a second install
        // (another session) is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.jobs.clamp(1, 8))
            .enable_all()
            .thread_name("kiln-registry")
            .build()
            .map_err(|e| RegistryError::Io(format!("starting the network runtime: {e}")))?;
        Ok(Session {
            runtime,
            options,
            remotes: Mutex::new(HashMap::new()),
            cancel,
        })
    }

    /// The options.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// Runs `fut` to completion on the session's runtime.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }

    /// Whether the user asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The flag that stops transfers.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// An error if the user asked to stop.
    pub fn check_cancel(&self) -> Result<(), RegistryError> {
        if self.cancelled() {
            Err(RegistryError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The client for `host`, connecting on first use.
    pub(crate) async fn remote(&self, host: &str) -> Result<Arc<Remote>, RegistryError> {
        if let Some(r) = self.remotes.lock().expect("remotes lock").get(host) {
            return Ok(Arc::clone(r));
        }
        let remote = Arc::new(self.connect(host).await?);
        self.remotes
            .lock()
            .expect("remotes lock")
            .insert(host.to_string(), Arc::clone(&remote));
        Ok(remote)
    }

    fn auth_file(&self) -> AuthFile {
        match &self.options.auth_file {
            Some(p) => AuthFile::at(p.clone()),
            None => AuthFile::locate(),
        }
    }

    fn roots(&self) -> Result<Vec<Certificate>, RegistryError> {
        self.options
            .ca_files
            .iter()
            .map(|path| {
                let data = std::fs::read(path).map_err(|e| {
                    RegistryError::Usage(format!(
                        "cannot read the CA certificate {}: {e}",
                        path.display()
                    ))
                })?;
                if !data.windows(11).any(|w| w == b"-----BEGIN ") {
                    return Err(RegistryError::Usage(format!(
                        "{} is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)",
                        path.display()
                    )));
                }
                Ok(Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                })
            })
            .collect()
    }

    fn is_insecure(&self, host: &str) -> bool {
        self.options.insecure.iter().any(|h| h == host)
    }

    /// How to reach `host`: its scheme (`https` or `http`) and a plain HTTP
    /// client set up for it (the roots, `--insecure-registry`), settled by
    /// the `/v2/` probe described in the module docs.
    pub(crate) async fn endpoint(
        &self,
        host: &str,
    ) -> Result<(&'static str, reqwest::Client), RegistryError> {
        let insecure = self.is_insecure(host);
        let plain_allowed = insecure || is_loopback(host);
        let roots = self.roots()?;
        let api_host = api_host(host);
        let https = probe_client(&roots, insecure)?;
        let unreachable = |cause: String| {
            // A loopback host that speaks TLS but not plain HTTP lands
            // here too: its certificate problem is the one to explain.
            let hint = (!insecure && cause.to_ascii_lowercase().contains("certificate")).then(|| {
                format!(
                    "if {host} uses a private CA, pass it with --registry-ca FILE; to skip verification for this host, --insecure-registry {host}"
                )
            });
            RegistryError::Unreachable {
                registry: host.to_string(),
                cause,
                hint,
            }
        };
        match probe(&https, "https", &api_host).await {
            Ok(()) => Ok(("https", https)),
            Err(tls_error) if plain_allowed => {
                let http = probe_client(&[], false)?;
                match probe(&http, "http", &api_host).await {
                    Ok(()) => Ok(("http", http)),
                    Err(_) => Err(unreachable(tls_error)),
                }
            }
            Err(cause) => Err(unreachable(cause)),
        }
    }

    /// Settles `host`'s scheme and credentials.
    async fn connect(&self, host: &str) -> Result<Remote, RegistryError> {
        let insecure = self.is_insecure(host);
        let roots = self.roots()?;
        let api_host = api_host(host);
        let (scheme, http) = self.endpoint(host).await?;
        let protocol = match scheme {
            "https" => ClientProtocol::Https,
            _ => ClientProtocol::Http,
        };
        let config = ClientConfig {
            protocol,
            accept_invalid_certificates: insecure,
            use_monolithic_push: true,
            extra_root_certificates: roots,
            platform_resolver: None,
            max_concurrent_upload: self.options.jobs.max(1),
            max_concurrent_download: self.options.jobs.max(1),
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("kiln/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = oci_client::Client::new(config);
        let found = self
            .auth_file()
            .get(host)
            .map_err(|e| RegistryError::Credentials(e.to_string()))?;
        let has_credentials = found.is_some();
        let auth = match found {
            Some(c) => {
                RegistryAuth::Basic(c.username.clone(), c.secret.expose_secret().to_string())
            }
            None => RegistryAuth::Anonymous,
        };
        client.store_auth_if_needed(&api_host, &auth).await;
        Ok(Remote {
            client,
            auth,
            has_credentials,
            host: host.to_string(),
            scheme,
            http,
        })
    }

    /// Runs `op` until it succeeds, fails for good, or has been retried
    /// [`ATTEMPTS`] times: 5xx answers, 429, dropped connections and
    /// timeouts are retried with exponential backoff.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        mut op: F,
        mut on_retry: impl FnMut(u32, &str),
    ) -> Result<T, OciDistributionError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < ATTEMPTS && retryable(&e) && !self.cancelled() => {
                    on_retry(attempt, &describe(&e));
                    let backoff = BACKOFF_START * 2u32.pow(attempt - 1);
                    tokio::time::sleep(backoff.min(BACKOFF_MAX)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Tries per request before giving up.
pub(crate) const ATTEMPTS: u32 = 5;
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);

/// Where a registry's API lives: oci-client's name for it, which is what
/// it keys credentials and tokens by (`docker.io` is `index.docker.io`).
pub(crate) fn api_host(host: &str) -> String {
    if host == super::reference::DOCKER_HUB {
        "index.docker.io".into()
    } else {
        host.to_string()
    }
}

fn probe_client(roots: &[Certificate], insecure: bool) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(insecure);
    for root in roots {
        let cert = reqwest::Certificate::from_pem(&root.data)
            .map_err(|e| RegistryError::Usage(format!("a --registry-ca file: {}", chain(&e))))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| RegistryError::Io(format!("setting up HTTPS: {}", chain(&e))))
}

/// `GET /v2/`: any answer a registry gives (200, or 401 asking for
/// credentials) proves the scheme; anything else is the error text.
async fn probe(client: &reqwest::Client, scheme: &str, host: &str) -> Result<(), String> {
    let url = format!("{scheme}://{host}/v2/");
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() || r.status().as_u16() == 401 => Ok(()),
        Ok(r) => Err(format!("{url} answered {}", r.status())),
        Err(e) => Err(chain(&e)),
    }
}

/// An error and its causes, `: `-joined, the way kiln prints errors.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// An oci-client error as one line.
pub(crate) fn describe(e: &OciDistributionError) -> String {
    chain(e)
}

/// Whether another try may succeed.
pub(crate) fn retryable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => {
            r.is_connect()
                || r.is_timeout()
                || r.is_body()
                || r.is_request()
                || r.status()
                    .is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn server_errors_and_throttling_are_retried_client_errors_are_not() {
        let server = |code| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: "m".into(),
        };
        assert!(retryable(&server(500)));
        assert!(retryable(&server(503)));
        assert!(retryable(&server(429)));
        assert!(!retryable(&server(404)));
        assert!(!retryable(&server(401)));
    }
}
