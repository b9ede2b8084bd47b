//! `wasi:http/outgoing-handler` for components: wasmtime-wasi-http's
//! implementation (its sync bindings, resources in the step's one resource
//! table, so its body streams and response futures are ordinary
//! wasmtime-wasi streams and pollables that `streams.rs` and `poll.rs`
//! pass through), with kiln's hooks deciding what is sent:
//!
//! - a step without network ([`Net::policy`] `None`) has every request
//!   refused (`HTTP-request-denied`) and its log told which flags open it;
//! - a networked step's request goes only to a host:port on its
//!   [`Allowlist`](crate::network::Allowlist); any other is refused the
//!   same way, the log naming the host and the `--allow-net` that allows it;
//! - headers of the secrets bound to the request's exact origin are added
//!   (replacing any the guest set); no other request carries them. Redirects
//!   are not followed here: a redirect is a response, and the guest's next
//!   request is checked again from scratch;
//! - kiln sends the request itself ([`send`]): HTTP/1.1 over TCP, HTTPS
//!   with the step policy's TLS roots.
//!
//! Errors returned to the guest are `wasi:http` error codes; none carries a
//! request header, so a bound secret cannot come back in an error message.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::network::{NetLog, Origin, Policy, note_no_network};

/// The network of a step, as the `wasi:http` and `wasi:sockets` hosts see
/// it.
#[derive(Default)]
pub struct Net {
    /// `None`: the step has no network.
    pub policy: Option<Arc<Policy>>,
    /// Where refusals are told when the step has no network.
    pub log: Option<NetLog>,
}

/// How long a connection (TCP and TLS) may take when the guest says nothing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the response head may take when the guest says nothing.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(300);

type Response = http::Response<WasiBody>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(Response, IoFuture), Error>> + Send>;

impl WasiHttpHooks for Net {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        drop(fut);
        match self.admit(request) {
            Ok((request, policy)) => Box::new(send(request, options, policy)),
            Err(e) => Box::new(async move { Err(e) }),
        }
    }
}

impl Net {
    /// Checks a request against the step's policy and adds the headers of
    /// the secrets bound to its origin.
    fn admit(
        &self,
        mut request: http::Request<WasiBody>,
    ) -> Result<(http::Request<WasiBody>, Arc<Policy>), Error> {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(authority) = uri.authority() else {
            return Err(Error::HttpRequestUriInvalid);
        };
        let Some(policy) = self.policy.clone() else {
            note_no_network(self.log.as_ref(), &format!("{scheme}://{authority}"));
            return Err(Error::HttpRequestDenied);
        };
        let origin =
            Origin::of_request(&scheme, authority.as_str()).ok_or(Error::HttpRequestUriInvalid)?;
        if !policy.check(&format!("{scheme}://"), &origin.host, origin.port) {
            return Err(Error::HttpRequestDenied);
        }
        for (name, value) in policy.headers_for(&origin) {
            request.headers_mut().insert(name, value);
        }
        Ok((request, policy))
    }
}

/// A connection, plain or TLS.
trait Conn: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Conn for T {}

/// Sends an admitted request: connect, TLS for `https`, HTTP/1.1.
async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    policy: Arc<Policy>,
) -> Result<(Response, IoFuture), Error> {
    let uri = request.uri().clone();
    let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(FIRST_BYTE_TIMEOUT);

    let connect = tokio::net::TcpStream::connect((host, port));
    let tcp = match tokio::time::timeout(connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Error::ConnectionRefused);
        }
        Ok(Err(e)) => return Err(Error::Connect(e)),
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    let stream: Box<dyn Conn> = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let connector = tokio_rustls::TlsConnector::from(policy.tls.clone());
        match tokio::time::timeout(connect_timeout, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Box::new(s),
            Ok(Err(e)) => {
                policy.note(&format!(
                    "TLS with {host}:{port} failed: {e} (a private CA? pass --ca-cert FILE)"
                ));
                return Err(Error::TlsCertificateError);
            }
            Err(_) => return Err(Error::ConnectionTimeout),
        }
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Error::from)?;
    // The connection runs on its own until the response body is read.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // On the wire, the request line has the path only.
    let path = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<http::Uri>()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.uri_mut() = path;
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
    let io: IoFuture = Box::new(async { Ok(()) });
    Ok((response, io))
}

/// The body type wasmtime-wasi-http hands over, for tests.
#[cfg(test)]
pub(super) fn empty_body() -> WasiBody {
    http_body_util::Empty::<bytes::Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
pub(super) fn admit_for_test(
    net: &Net,
    request: http::Request<WasiBody>,
) -> Result<http::HeaderMap, String> {
    net.admit(request)
        .map(|(r, _)| r.headers().clone())
        .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Allowlist, bind, tls_config};

    fn request(uri: &str, auth: Option<&str>) -> http::Request<WasiBody> {
        let mut b = http::Request::get(uri);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(empty_body()).unwrap()
    }

    fn net() -> Net {
        let m = crate::frontend::Mount::parse("type=secret,id=tok,origin=http://127.0.0.1:4873")
            .unwrap();
        let s = Arc::new(crate::secrets::Secret::new("tok", b"v4lue".to_vec()));
        Net {
            policy: Some(Arc::new(Policy {
                allow: Allowlist::parse(&["127.0.0.1", "localhost:8080"]).unwrap(),
                bound: vec![bind(&m, s).unwrap()],
                tls: tls_config(Vec::new()).unwrap(),
                log: None,
            })),
            log: None,
        }
    }

    #[test]
    fn requests_are_checked_and_get_their_origin_headers() {
        let n = net();
        let h = admit_for_test(&n, request("http://127.0.0.1:4873/pkg", None)).unwrap();
        assert_eq!(h["authorization"], "Bearer v4lue");
        // The guest's own Authorization is replaced, not doubled.
        let h =
            admit_for_test(&n, request("http://127.0.0.1:4873/", Some("Bearer guess"))).unwrap();
        assert_eq!(h.get_all("authorization").iter().count(), 1);
        assert_eq!(h["authorization"], "Bearer v4lue");
        // Allowed, another origin: no secret.
        let h = admit_for_test(&n, request("http://127.0.0.1:9999/", None)).unwrap();
        assert!(h.get("authorization").is_none());
        let h = admit_for_test(&n, request("https://127.0.0.1:4873/", None)).unwrap();
        assert!(h.get("authorization").is_none());
        admit_for_test(&n, request("http://localhost:8080/", None)).unwrap();
        // Not allowed.
        for uri in [
            "http://localhost:8081/",
            "http://example.com/",
            "https://10.0.0.1/",
        ] {
            let e = admit_for_test(&n, request(uri, None)).unwrap_err();
            assert!(e.contains("HttpRequestDenied"), "{uri}: {e}");
        }
        // No network at all.
        let e = admit_for_test(&Net::default(), request("http://127.0.0.1/", None)).unwrap_err();
        assert!(e.contains("HttpRequestDenied"), "{e}");
    }
}
