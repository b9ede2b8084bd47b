//! Network for steps, continued: HTTPS to a host with a private CA (the
//! handshake fails without `--ca-cert` and says so, works with it), and the
//! allowlist in the step cache key. The HTTPS host is a real registry
//! (`registry_server`) with a CA the test makes.

use std::fs;

use crate::registry_server::RegistryServer;
use crate::util::Sandbox;

const NET_GUEST: &str = env!("KILN_GUEST_NET");

/// A context with the net guest at /bin/net and a Kilnfile that GETs `url`.
fn setup(url: &str) -> Sandbox {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(NET_GUEST, sb.path("ctx/bin/net")).unwrap();
    sb.write(
        "ctx/Kilnfile",
        format!("FROM scratch\nCOPY bin/ /bin/\nRUN --network=default [\"net\", \"{url}\"]\n"),
    );
    sb
}

fn build(sb: &Sandbox, extra: &[&str]) -> crate::util::Run {
    let mut args = vec!["build", "--progress", "plain", "-t", "net:tls"];
    args.extend_from_slice(extra);
    args.push("ctx");
    sb.kiln(&args)
}

#[test]
fn https_to_a_private_ca_needs_ca_cert_and_then_works() {
    let server = RegistryServer::tls_with_auth("u", "p");
    let host = server.host();
    let url = format!("https://{host}/v2/");
    let sb = setup(&url);

    // The system roots do not know the test's CA: the handshake fails, the
    // step says so, and kiln's log names --ca-cert.
    let refused = build(&sb, &["--allow-net", &host]).fails(1);
    let log = format!("{}{}", refused.stdout, refused.stderr);
    assert!(log.contains(&format!("GET {url} failed")), "{log}");
    assert!(log.contains("--ca-cert"), "{log}");

    // With the CA the request goes through: the registry answers 401
    // (it wants credentials), which is an HTTP answer, not a TLS failure.
    let ca = server.ca_pem().expect("a TLS server has a CA");
    let ok = build(
        &sb,
        &["--allow-net", &host, "--ca-cert", ca.to_str().unwrap()],
    )
    .ok();
    let log = format!("{}{}", ok.stdout, ok.stderr);
    assert!(log.contains(&format!("GET {url} -> 401")), "{log}");
}

/// Whether the RUN ran (the guest prints its requests) rather than being
/// reused from the cache.
fn ran(run: &crate::util::Run) -> bool {
    format!("{}{}", run.stdout, run.stderr).contains("GET http")
}

#[test]
fn the_allowlist_is_part_of_a_networked_steps_cache_key() {
    let server = RegistryServer::plain();
    let host = server.host();
    let sb = setup(&format!("http://{host}/v2/"));
    assert!(ran(&build(&sb, &["--allow-net", &host]).ok()));
    let same = build(&sb, &["--allow-net", &host]).ok();
    assert!(
        !ran(&same),
        "the same allowlist reuses the step:\n{}",
        same.stderr
    );
    let wider = build(&sb, &["--allow-net", &format!("{host},example.com")]).ok();
    assert!(
        ran(&wider),
        "a step allowed more hosts runs again:\n{}",
        wider.stderr
    );
    // The same hosts in another order and case: the same key.
    let reordered = build(&sb, &["--allow-net", &format!("EXAMPLE.COM,{host}")]).ok();
    assert!(!ran(&reordered), "{}", reordered.stderr);
}
