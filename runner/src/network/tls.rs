//! TLS for steps' HTTPS requests: the system's roots (through the platform
//! verifier, as kiln's registry client does) plus `--ca-cert` files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Reads every certificate of the PEM files `paths` (`--ca-cert`).
pub fn load_ca_certs<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
        let before = out.len();
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            out.push(cert.map_err(|e| {
                format!("--ca-cert {}: not a PEM certificate: {e}", path.display())
            })?);
        }
        if out.len() == before {
            return Err(format!(
                "--ca-cert {}: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
    }
    Ok(out)
}

/// A client configuration trusting the system's roots and `extra`.
pub fn tls_config(
    extra: Vec<CertificateDer<'static>>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = if extra.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
    }
    .map_err(|e| format!("setting up TLS for steps: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("setting up TLS for steps: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
