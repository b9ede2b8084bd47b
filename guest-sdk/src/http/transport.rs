//! The transport on `wasm32-wasip2`: a [`Request`] sent through
//! `wasi:http/outgoing-handler`, the response's body read from its
//! `wasi:io` input stream.
//!
//! Resource order matters in `wasi:http`: a child resource (a body's
//! stream, a response's body) must be dropped before its parent, so
//! [`WasiBody`] holds all three and drops them stream first.

use std::io::{self, Read};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, HeaderError, IncomingBody, IncomingResponse, Method as WasiMethod,
    OutgoingBody, OutgoingRequest, RequestOptions, Scheme as WasiScheme,
};
use wasip2::io::streams::{InputStream, StreamError};

use super::{Failure, Method, Request, Response, Scheme};
use crate::error::{Error, Result};

/// The most `blocking-write-and-flush` takes in one call.
const WRITE_CHUNK: usize = 4096;

/// Sends `request`; see [`Request::send`].
pub(super) fn send(request: Request) -> Result<Response> {
    let what = format!("{} {}", request.method, request.url);
    let authority = request.url.authority().to_string();
    let failed = |code: ErrorCode| Error::new(failure(&code).words(&authority));

    let mut entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.to_vec()))
        .collect();
    if !request.body.is_empty() && !request.headers.iter().any(|(n, _)| n == "content-length") {
        entries.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let fields = Fields::from_list(&entries);
    // The copies of the values made for the host are wiped here; the host
    // keeps its own.
    for (_, value) in &mut entries {
        zeroize::Zeroize::zeroize(value);
    }
    let fields = fields.map_err(|e| header_error(e, &request))?;

    let outgoing = OutgoingRequest::new(fields);
    outgoing
        .set_method(&wasi_method(&request.method))
        .map_err(|()| Error::new(format!("the host refused the method {}", request.method)))?;
    let scheme = match request.url.scheme() {
        Scheme::Http => WasiScheme::Http,
        Scheme::Https => WasiScheme::Https,
    };
    outgoing
        .set_scheme(Some(&scheme))
        .and_then(|()| outgoing.set_authority(Some(request.url.authority())))
        .and_then(|()| outgoing.set_path_with_query(Some(request.url.path_with_query())))
        .map_err(|()| Error::new("the host refused the URL"))?;
    let options = match request.timeout {
        None => None,
        Some(timeout) => {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            options
                .set_connect_timeout(Some(nanos))
                .and_then(|()| options.set_first_byte_timeout(Some(nanos)))
                .and_then(|()| options.set_between_bytes_timeout(Some(nanos)))
                .map_err(|()| Error::new("the host does not support request timeouts"))?;
            Some(options)
        }
    };

    let body = outgoing
        .body()
        .map_err(|()| Error::new("the request's body was already taken"))?;
    // Sent before the body is written: the host reads the body as it sends
    // it, so a body larger than its buffer would otherwise never finish.
    let future = outgoing_handler::handle(outgoing, options).map_err(failed)?;
    write_body(&body, &request.body).map_err(|e| match e {
        Some(code) => failed(code),
        None => Error::new("writing the request body: the host closed it"),
    })?;
    OutgoingBody::finish(body, None).map_err(failed)?;

    let incoming = loop {
        match future.get() {
            Some(Ok(result)) => break result.map_err(failed)?,
            Some(Err(())) => return Err(Error::new("the response was already taken")),
            None => future.subscribe().block(),
        }
    };
    drop(future);

    let status = incoming.status();
    let headers = {
        let fields = incoming.headers();
        fields.entries()
    };
    let body = incoming
        .consume()
        .map_err(|()| Error::new("the response's body was already taken"))?;
    let stream = body
        .stream()
        .map_err(|()| Error::new("the response's body stream was already taken"))?;
    let body = WasiBody {
        stream: Some(stream),
        body: Some(body),
        response: Some(incoming),
        authority,
    };
    Ok(Response::new(status, headers, what, Box::new(body)))
}

/// Writes `bytes` to the request body; `Err(Some(code))` when the host
/// says why it failed.
fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), Option<ErrorCode>> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body.write().map_err(|()| None)?;
    let result = bytes
        .chunks(WRITE_CHUNK)
        .try_for_each(|chunk| stream.blocking_write_and_flush(chunk));
    drop(stream);
    result.map_err(|e| match e {
        StreamError::Closed => None,
        StreamError::LastOperationFailed(e) => wasip2::http::types::http_error_code(&e),
    })
}

/// A response body: the stream, and the resources it is a child of.
struct WasiBody {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    response: Option<IncomingResponse>,
    /// For errors.
    authority: String,
}

impl Read for WasiBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = &self.stream else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        match stream.blocking_read(len) {
            Ok(chunk) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(StreamError::Closed) => {
                // The end: the stream, then the body (its trailers are not
                // wanted), then the response.
                self.stream = None;
                if let Some(body) = self.body.take() {
                    drop(IncomingBody::finish(body));
                }
                self.response = None;
                Ok(0)
            }
            Err(StreamError::LastOperationFailed(e)) => {
                let words = match wasip2::http::types::http_error_code(&e) {
                    Some(code) => failure(&code).words(&self.authority),
                    None => e.to_debug_string(),
                };
                Err(io::Error::other(words))
            }
        }
    }
}

impl Drop for WasiBody {
    fn drop(&mut self) {
        self.stream = None;
        self.body = None;
        self.response = None;
    }
}

fn wasi_method(method: &Method) -> WasiMethod {
    match method {
        Method::Get => WasiMethod::Get,
        Method::Head => WasiMethod::Head,
        Method::Post => WasiMethod::Post,
        Method::Put => WasiMethod::Put,
        Method::Delete => WasiMethod::Delete,
        Method::Patch => WasiMethod::Patch,
        Method::Options => WasiMethod::Options,
        Method::Other(name) => WasiMethod::Other(name.clone()),
    }
}

/// Which header the host refused, by name only.
fn header_error(e: HeaderError, request: &Request) -> Error {
    let names: Vec<&str> = request.headers.iter().map(|(n, _)| n.as_str()).collect();
    let why = match e {
        HeaderError::Forbidden => {
            "one of them is managed by the host (Host, Connection, \
                                   Transfer-Encoding, ...) and cannot be set by a step"
        }
        HeaderError::InvalidSyntax => "one of them is not valid HTTP",
        HeaderError::Immutable => "the headers could not be changed",
    };
    Error::new(format!(
        "the host refused the request's headers [{}]: {why}",
        names.join(", ")
    ))
}

/// `wasi:http`'s error code as a [`Failure`].
fn failure(code: &ErrorCode) -> Failure {
    match code {
        ErrorCode::HttpRequestDenied => Failure::Denied,
        ErrorCode::DnsTimeout => Failure::DnsTimeout,
        ErrorCode::DnsError(p) => Failure::Dns(p.rcode.clone()),
        ErrorCode::DestinationNotFound => Failure::Dns(Some("not found".into())),
        ErrorCode::ConnectionRefused => Failure::Refused,
        ErrorCode::DestinationUnavailable => Failure::Connection("destination unavailable"),
        ErrorCode::DestinationIpProhibited => Failure::Connection("destination IP prohibited"),
        ErrorCode::DestinationIpUnroutable => Failure::Connection("destination IP unroutable"),
        ErrorCode::ConnectionTerminated => Failure::Connection("terminated by the server"),
        ErrorCode::ConnectionTimeout => Failure::Connection("timed out connecting"),
        ErrorCode::ConnectionReadTimeout => Failure::Connection("timed out reading"),
        ErrorCode::ConnectionWriteTimeout => Failure::Connection("timed out writing"),
        ErrorCode::ConnectionLimitReached => Failure::Connection("connection limit reached"),
        ErrorCode::HttpResponseTimeout => Failure::Connection("timed out waiting for the response"),
        ErrorCode::HttpResponseIncomplete => Failure::Connection("the response ended early"),
        ErrorCode::HttpProtocolError => Failure::Connection("HTTP protocol error"),
        ErrorCode::TlsProtocolError => Failure::Tls("protocol error", None),
        ErrorCode::TlsCertificateError => Failure::Tls("certificate not trusted", None),
        ErrorCode::TlsAlertReceived(p) => Failure::Tls("alert received", p.alert_message.clone()),
        ErrorCode::HttpRequestBodySize(_) => Failure::Limit("the request body"),
        ErrorCode::HttpRequestHeaderSectionSize(_) | ErrorCode::HttpRequestHeaderSize(_) => {
            Failure::Limit("the request headers")
        }
        ErrorCode::HttpResponseBodySize(_) => Failure::Limit("the response body"),
        ErrorCode::HttpResponseHeaderSectionSize(_) | ErrorCode::HttpResponseHeaderSize(_) => {
            Failure::Limit("the response headers")
        }
        ErrorCode::InternalError(detail) => Failure::Other("internal-error".into(), detail.clone()),
        other => Failure::Other(format!("{other:?}"), None),
    }
}
