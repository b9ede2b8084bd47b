//! `kiln login`: checks credentials with the registry before they are
//! saved, the way `docker login` does: `GET /v2/`, and the challenge it
//! answers with decides how (basic auth on `/v2/` itself, or a token
//! request to the bearer realm with the credentials).

use secrecy::ExposeSecret;

use super::RegistryError;
use super::credentials::Credential;
use super::session::{Session, api_host, chain};

/// What the registry said of the credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Accepted,
    /// The registry needs no credentials at all (they are saved anyway).
    NotNeeded,
}

/// Checks `credential` against `host`.
pub fn verify(
    session: &Session,
    host: &str,
    credential: &Credential,
) -> Result<Verdict, RegistryError> {
    session.block_on(verify_async(session, host, credential))
}

async fn verify_async(
    session: &Session,
    host: &str,
    credential: &Credential,
) -> Result<Verdict, RegistryError> {
    let (scheme, client) = session.endpoint(host).await?;
    let url = format!("{scheme}://{}/v2/", api_host(host));
    let unreachable = |e: reqwest::Error| RegistryError::Unreachable {
        registry: host.to_string(),
        cause: chain(&e),
        hint: None,
    };
    let first = client.get(&url).send().await.map_err(unreachable)?;
    if first.status().is_success() {
        return Ok(Verdict::NotNeeded);
    }
    let challenge = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let password = credential.secret.expose_secret();
    let answer = if let Some(params) = strip_scheme(&challenge, "bearer") {
        let realm = param(params, "realm").ok_or_else(|| RegistryError::Protocol {
            what: format!("logging in to {host}"),
            cause: "its bearer challenge names no realm".into(),
        })?;
        let mut query = vec![("account", credential.username.clone())];
        if let Some(service) = param(params, "service") {
            query.push(("service", service));
        }
        client
            .get(realm)
            .query(&query)
            .basic_auth(&credential.username, Some(password))
            .send()
            .await
            .map_err(unreachable)?
    } else {
        client
            .get(&url)
            .basic_auth(&credential.username, Some(password))
            .send()
            .await
            .map_err(unreachable)?
    };
    match answer.status().as_u16() {
        200..=299 => Ok(Verdict::Accepted),
        401 | 403 => Err(RegistryError::LoginRefused {
            registry: host.to_string(),
            username: credential.username.clone(),
        }),
        code => Err(RegistryError::Protocol {
            what: format!("logging in to {host}"),
            cause: format!("the registry answered {code}"),
        }),
    }
}

/// The parameters of a `WWW-Authenticate` challenge of `scheme`.
pub(crate) fn strip_scheme<'a>(challenge: &'a str, scheme: &str) -> Option<&'a str> {
    let (first, rest) = challenge.trim().split_once(' ')?;
    first.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// One `key="value"` parameter of a challenge.
pub(crate) fn param(params: &str, key: &str) -> Option<String> {
    let mut rest = params;
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=')?;
        let k = k.trim().trim_start_matches(',').trim();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (
                    &quoted[..end],
                    quoted[end + 1..].trim_start_matches([',', ' ']),
                )
            }
            None => match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            },
        };
        if k.eq_ignore_ascii_case(key) {
            return Some(value.trim().to_string());
        }
        rest = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read() {
        let c = r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a:pull""#;
        let params = strip_scheme(c, "bearer").unwrap();
        assert_eq!(
            param(params, "realm").unwrap(),
            "https://auth.example.com/token"
        );
        assert_eq!(param(params, "service").unwrap(), "registry.example.com");
        assert_eq!(param(params, "scope").unwrap(), "repository:a:pull");
        assert_eq!(param(params, "missing"), None);
        assert!(strip_scheme(r#"Basic realm="x""#, "bearer").is_none());
        assert_eq!(param("realm=plain, service=s", "service").unwrap(), "s");
    }
}
