use std::sync::{Arc, Mutex};

use super::*;
use crate::frontend::Mount;

#[test]
fn allowlist_parses_normalises_and_matches() {
    let list = Allowlist::parse(&[
        "Registry.NPMjs.org.,127.0.0.1:4873",
        "[::1]:8080",
        "127.0.0.1:4873",
    ])
    .unwrap();
    assert_eq!(
        list.canonical(),
        "127.0.0.1:4873,[::1]:8080,registry.npmjs.org"
    );
    assert!(list.allows("registry.npmjs.org", 443));
    assert!(list.allows("REGISTRY.npmjs.org.", 80), "no port: any port");
    assert!(list.allows("127.0.0.1", 4873));
    assert!(!list.allows("127.0.0.1", 4874), "the port is checked");
    assert!(list.allows("[::1]", 8080));
    assert!(list.allows("0:0:0:0:0:0:0:1", 8080), "IPv6 in any spelling");
    assert!(!list.allows("www.registry.npmjs.org", 443), "no subdomains");
    assert!(!list.allows("npmjs.org", 443));
    assert!(!list.allows("localhost", 4873), "a name is not its address");
    assert!(list.allows_name("registry.npmjs.org"));
    assert!(!list.allows_name("evil.example"));
    // Order and duplicates do not change the list (the cache key).
    let again = Allowlist::parse(&["[::1]:8080,127.0.0.1:4873", "registry.npmjs.org"]).unwrap();
    assert_eq!(list, again);
}

#[test]
fn allowlist_refuses_nonsense() {
    for bad in [
        "",
        "a,,b",
        "host:0",
        "host:99999",
        "host:x",
        "http://host",
        "a b",
        "[::1",
        "h/p",
    ] {
        assert!(Allowlist::parse(&[bad]).is_err(), "{bad:?} accepted");
    }
    let e = Allowlist::parse(&["host:x"]).unwrap_err();
    assert!(e.starts_with("--allow-net"), "{e}");
}

#[test]
fn origins_parse_with_default_ports_and_compare_exactly() {
    let o = Origin::parse("https://Registry.npmjs.org/").unwrap();
    assert_eq!(o.to_string(), "https://registry.npmjs.org:443");
    assert_eq!(o, Origin::parse("https://registry.npmjs.org:443").unwrap());
    assert_ne!(
        o,
        Origin::parse("http://registry.npmjs.org:443").unwrap(),
        "scheme counts"
    );
    assert_ne!(
        o,
        Origin::parse("https://registry.npmjs.org:8443").unwrap(),
        "port counts"
    );
    assert_eq!(Origin::parse("http://127.0.0.1").unwrap().port, 80);
    assert_eq!(
        Origin::of_request("http", "127.0.0.1:4873"),
        Origin::parse("http://127.0.0.1:4873").ok()
    );
    for bad in [
        "registry.npmjs.org",
        "ftp://h",
        "https://h/path",
        "https://u@h",
        "https://h?q",
        "https://",
    ] {
        assert!(Origin::parse(bad).is_err(), "{bad:?} accepted");
    }
}

fn secret(id: &str, value: &str) -> Arc<Secret> {
    Arc::new(Secret::new(id, value.as_bytes().to_vec()))
}

fn policy(bound: Vec<BoundSecret>, log: Option<NetLog>) -> Policy {
    Policy {
        allow: Allowlist::parse(&["127.0.0.1"]).unwrap(),
        bound,
        tls: tls_config(Vec::new()).unwrap(),
        log,
    }
}

#[test]
fn bound_headers_go_to_their_origin_only() {
    let m = Mount::parse("type=secret,id=tok,origin=http://127.0.0.1:4873").unwrap();
    assert_eq!(
        (m.target.as_deref(), m.env.as_deref()),
        (None, None),
        "not a file, not a variable"
    );
    let b = bind(&m, secret("tok", "s3cret-value")).unwrap();
    let custom =
        Mount::parse("type=secret,id=key,origin=https://h.example,header=X-Api-Key").unwrap();
    let c = bind(&custom, secret("key", "k-value")).unwrap();
    let basic = Mount::parse("type=secret,id=b,origin=http://127.0.0.1:9,scheme=Basic").unwrap();
    let d = bind(&basic, secret("b", "dXNlcjpwdw==")).unwrap();
    let raw = Mount::parse("type=secret,id=r,origin=http://127.0.0.1:10,scheme=none").unwrap();
    let e = bind(&raw, secret("r", "raw")).unwrap();
    let p = policy(vec![b, c, d, e], None);

    let h = p.headers_for(&Origin::parse("http://127.0.0.1:4873").unwrap());
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].0, http::header::AUTHORIZATION);
    assert_eq!(h[0].1.as_bytes(), b"Bearer s3cret-value");
    assert!(h[0].1.is_sensitive());
    // Another port, another scheme, another host: nothing.
    for other in [
        "http://127.0.0.1:4874",
        "https://127.0.0.1:4873",
        "http://localhost:4873",
    ] {
        assert!(
            p.headers_for(&Origin::parse(other).unwrap()).is_empty(),
            "{other}"
        );
    }
    let h = p.headers_for(&Origin::parse("https://h.example").unwrap());
    assert_eq!(
        (h[0].0.as_str(), h[0].1.as_bytes()),
        ("x-api-key", &b"k-value"[..])
    );
    let h = p.headers_for(&Origin::parse("http://127.0.0.1:9").unwrap());
    assert_eq!(h[0].1.as_bytes(), b"Basic dXNlcjpwdw==");
    let h = p.headers_for(&Origin::parse("http://127.0.0.1:10").unwrap());
    assert_eq!(h[0].1.as_bytes(), b"raw");
    // A secret file's trailing newline is not part of the token.
    let nl = bind(&m, secret("tok", "s3cret-value\r\n")).unwrap();
    let h = policy(vec![nl], None).headers_for(&Origin::parse("http://127.0.0.1:4873").unwrap());
    assert_eq!(h[0].1.as_bytes(), b"Bearer s3cret-value");
    // The policy's debug form never shows a value.
    assert!(!format!("{p:?}").contains("s3cret"), "{p:?}");
}

#[test]
fn origin_mount_keys_are_checked() {
    for (spec, want) in [
        (
            "type=secret,id=t,origin=http://h,target=/x",
            "cannot also have target",
        ),
        (
            "type=secret,id=t,origin=http://h,env=T",
            "cannot also have target",
        ),
        ("type=secret,id=t,header=X-K", "add origin=URL"),
        ("type=secret,id=t,origin=h.example", "scheme://host"),
        (
            "type=secret,id=t,origin=http://h,header=bad header",
            "not an HTTP header name",
        ),
        ("type=cache,target=/c,origin=http://h", "does not apply"),
    ] {
        let (_, e) = Mount::parse(spec).unwrap_err();
        assert!(e.contains(want), "{spec}: {e}");
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn refusals_name_the_host_and_the_flag() {
    let out = Shared::default();
    let log: NetLog = Arc::new(Mutex::new(Box::new(out.clone())));
    let p = policy(Vec::new(), Some(log.clone()));
    assert!(p.check("http://", "127.0.0.1", 80));
    assert!(!p.check("http://", "Evil.Example", 8080));
    note_no_network(Some(&log), "http://h.example:80");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("refused http://evil.example:8080"), "{text}");
    assert!(text.contains("--allow-net evil.example:8080"), "{text}");
    assert!(text.contains("add --network=default"), "{text}");
}

#[test]
fn network_options_read_ca_files() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a cert\n").unwrap();
    let e = NetworkOptions::new(&["h"], &[&empty]).unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
    let e = NetworkOptions::new(&["h"], &[dir.path().join("missing.pem")]).unwrap_err();
    assert!(e.starts_with("--ca-cert"), "{e}");
    let o = NetworkOptions::new(&["h:1"], &[] as &[&std::path::Path]).unwrap();
    assert_eq!(o.allow.canonical(), "h:1");
}
