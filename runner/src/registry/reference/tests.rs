//! Tests of [`Reference`]: a table of docker's cases, round trips, and
//! property tests that parsing never panics and always round-trips.

use proptest::prelude::*;

use super::*;
use crate::proptests::config;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn digest() -> Digest {
    format!("sha256:{HEX}").parse().unwrap()
}

/// What a valid input parses to: registry, repository, tag, whether a
/// digest, the Display form and the familiar form.
struct Ok6(
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
    &'static str,
    &'static str,
);

fn ok_cases() -> Vec<(String, Ok6)> {
    let d = format!("sha256:{HEX}");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    vec![
        (
            "alpine".into(),
            Ok6(
                "docker.io",
                "library/alpine",
                Some("latest"),
                false,
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
        ),
        (
            "alpine:3.20".into(),
            Ok6(
                "docker.io",
                "library/alpine",
                Some("3.20"),
                false,
                "docker.io/library/alpine:3.20",
                "alpine:3.20",
            ),
        ),
        (
            "library/alpine".into(),
            Ok6(
                "docker.io",
                "library/alpine",
                Some("latest"),
                false,
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
        ),
        (
            "docker.io/alpine".into(),
            Ok6(
                "docker.io",
                "library/alpine",
                Some("latest"),
                false,
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
        ),
        (
            "index.docker.io/library/alpine:1".into(),
            Ok6(
                "docker.io",
                "library/alpine",
                Some("1"),
                false,
                "docker.io/library/alpine:1",
                "alpine:1",
            ),
        ),
        (
            "index.docker.io/alpine".into(),
            Ok6(
                "docker.io",
                "library/alpine",
                Some("latest"),
                false,
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
        ),
        (
            "team/app".into(),
            Ok6(
                "docker.io",
                "team/app",
                Some("latest"),
                false,
                "docker.io/team/app:latest",
                "team/app:latest",
            ),
        ),
        (
            "team/app:1".into(),
            Ok6(
                "docker.io",
                "team/app",
                Some("1"),
                false,
                "docker.io/team/app:1",
                "team/app:1",
            ),
        ),
        (
            "library/a/b".into(),
            Ok6(
                "docker.io",
                "library/a/b",
                Some("latest"),
                false,
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
        ),
        (
            "localhost/x".into(),
            Ok6(
                "localhost",
                "x",
                Some("latest"),
                false,
                "localhost/x:latest",
                "localhost/x:latest",
            ),
        ),
        (
            "localhost".into(),
            Ok6(
                "docker.io",
                "library/localhost",
                Some("latest"),
                false,
                "docker.io/library/localhost:latest",
                "localhost:latest",
            ),
        ),
        (
            "localhost:5000".into(),
            Ok6(
                "docker.io",
                "library/localhost",
                Some("5000"),
                false,
                "docker.io/library/localhost:5000",
                "localhost:5000",
            ),
        ),
        (
            "localhost:5000/x".into(),
            Ok6(
                "localhost:5000",
                "x",
                Some("latest"),
                false,
                "localhost:5000/x:latest",
                "localhost:5000/x:latest",
            ),
        ),
        (
            "127.0.0.1:5000/a/b/c:v1".into(),
            Ok6(
                "127.0.0.1:5000",
                "a/b/c",
                Some("v1"),
                false,
                "127.0.0.1:5000/a/b/c:v1",
                "127.0.0.1:5000/a/b/c:v1",
            ),
        ),
        (
            "[::1]:5000/x".into(),
            Ok6(
                "[::1]:5000",
                "x",
                Some("latest"),
                false,
                "[::1]:5000/x:latest",
                "[::1]:5000/x:latest",
            ),
        ),
        (
            "[fe80::1]/x".into(),
            Ok6(
                "[fe80::1]",
                "x",
                Some("latest"),
                false,
                "[fe80::1]/x:latest",
                "[fe80::1]/x:latest",
            ),
        ),
        (
            "registry-1.docker.io/alpine".into(),
            Ok6(
                "registry-1.docker.io",
                "alpine",
                Some("latest"),
                false,
                "registry-1.docker.io/alpine:latest",
                "registry-1.docker.io/alpine:latest",
            ),
        ),
        (
            "Registry/x".into(),
            Ok6(
                "Registry",
                "x",
                Some("latest"),
                false,
                "Registry/x:latest",
                "Registry/x:latest",
            ),
        ),
        (
            "a.b-c/d_e/f__g/h---i.j:T_1.x-y".into(),
            Ok6(
                "a.b-c",
                "d_e/f__g/h---i.j",
                Some("T_1.x-y"),
                false,
                "a.b-c/d_e/f__g/h---i.j:T_1.x-y",
                "a.b-c/d_e/f__g/h---i.j:T_1.x-y",
            ),
        ),
        (
            "x:_tag".into(),
            Ok6(
                "docker.io",
                "library/x",
                Some("_tag"),
                false,
                "docker.io/library/x:_tag",
                "x:_tag",
            ),
        ),
        (
            format!("ghcr.io/o/r@{d}"),
            Ok6(
                "ghcr.io",
                "o/r",
                None,
                true,
                leak(format!("ghcr.io/o/r@{d}")),
                leak(format!("ghcr.io/o/r@{d}")),
            ),
        ),
        (
            format!("x@{d}"),
            Ok6(
                "docker.io",
                "library/x",
                None,
                true,
                leak(format!("docker.io/library/x@{d}")),
                leak(format!("x@{d}")),
            ),
        ),
        (
            format!("x:1@{d}"),
            Ok6(
                "docker.io",
                "library/x",
                Some("1"),
                true,
                leak(format!("docker.io/library/x:1@{d}")),
                leak(format!("x:1@{d}")),
            ),
        ),
        (
            format!("localhost:5000/x@{d}"),
            Ok6(
                "localhost:5000",
                "x",
                None,
                true,
                leak(format!("localhost:5000/x@{d}")),
                leak(format!("localhost:5000/x@{d}")),
            ),
        ),
    ]
}

#[test]
fn valid_references_parse_and_normalise() {
    for (input, Ok6(registry, repository, tag, has_digest, display, familiar)) in ok_cases() {
        let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry(), registry, "{input}");
        assert_eq!(r.repository(), repository, "{input}");
        assert_eq!(r.tag(), tag, "{input}");
        assert_eq!(r.digest(), has_digest.then(digest).as_ref(), "{input}");
        assert_eq!(r.to_string(), display, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
        assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()), "{input}");
        assert_eq!(Reference::parse(&r.familiar()), Ok(r.clone()), "{input}");
        assert_eq!(input.parse::<Reference>(), Ok(r.clone()), "{input}");
    }
}

/// Which error an invalid input gives.
fn error_kind(e: &ReferenceError) -> &'static str {
    match e {
        ReferenceError::Empty => "empty",
        ReferenceError::Whitespace { .. } => "whitespace",
        ReferenceError::MultipleDigests { .. } => "at",
        ReferenceError::InvalidDigest { .. } => "digest",
        ReferenceError::UnsupportedDigest { .. } => "algorithm",
        ReferenceError::InvalidRegistry { .. } => "registry",
        ReferenceError::Uppercase { .. } => "uppercase",
        ReferenceError::EmptyComponent { .. } => "component",
        ReferenceError::InvalidRepository { .. } => "repository",
        ReferenceError::HexName { .. } => "hex",
        ReferenceError::NameTooLong { .. } => "name-length",
        ReferenceError::InvalidTag { .. } => "tag",
        ReferenceError::TagTooLong { .. } => "tag-length",
    }
}

#[test]
fn invalid_references_say_what_is_wrong() {
    let d = format!("sha256:{HEX}");
    let long_name = format!("{}/{}", "a".repeat(200), "b".repeat(60));
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "empty"),
        ("a b".into(), "whitespace"),
        (" alpine".into(), "whitespace"),
        ("alpine\n".into(), "whitespace"),
        ("a\tb".into(), "whitespace"),
        (format!("x@{d}@{d}"), "at"),
        ("x@@".into(), "at"),
        ("x@sha256:abc".into(), "digest"),
        (format!("x@sha256:{}", HEX.to_uppercase()), "digest"),
        (format!("x@sha256:{HEX}0"), "digest"),
        (format!("x@sha256:{}g", &HEX[1..]), "digest"),
        ("x@".into(), "digest"),
        ("x@sha256".into(), "digest"),
        (format!("x@:{HEX}"), "digest"),
        (format!("x@md5:{}", &HEX[..32]), "algorithm"),
        (format!("x@sha512:{HEX}{HEX}"), "algorithm"),
        ("Foo".into(), "uppercase"),
        ("Foo:bar".into(), "uppercase"),
        ("a/B".into(), "uppercase"),
        ("ghcr.io/Team/app".into(), "uppercase"),
        ("x:".into(), "tag"),
        ("x:-a".into(), "tag"),
        ("x:.a".into(), "tag"),
        ("x:a+b".into(), "tag"),
        ("x:tag:tag".into(), "tag"),
        (format!("x:{}", "t".repeat(129)), "tag-length"),
        (":tag".into(), "repository"),
        (format!("@{d}"), "repository"),
        ("ghcr.io/".into(), "repository"),
        ("a/-b".into(), "repository"),
        ("a/b-".into(), "repository"),
        ("a/b._c".into(), "repository"),
        ("a/b___c".into(), "repository"),
        ("a/.b".into(), "repository"),
        ("a/b!".into(), "repository"),
        ("a//b".into(), "component"),
        ("/a".into(), "component"),
        ("a/".into(), "component"),
        ("ghcr.io//a".into(), "component"),
        ("ghcr.io/a/".into(), "component"),
        ("-a.io/x".into(), "registry"),
        ("a-.io/x".into(), "registry"),
        ("a..io/x".into(), "registry"),
        ("localhost:/x".into(), "registry"),
        ("localhost:50a/x".into(), "registry"),
        ("localhost:5000:1/x".into(), "registry"),
        ("[::1/x".into(), "registry"),
        ("[]:5000/x".into(), "registry"),
        ("[::1]5000/x".into(), "registry"),
        ("[::g]/x".into(), "registry"),
        ("a_b.io/x".into(), "registry"),
        (HEX.into(), "hex"),
        (long_name, "name-length"),
        ("a".repeat(250), "name-length"),
    ];
    for (input, kind) in cases {
        match Reference::parse(&input) {
            Ok(r) => panic!("{input:?} parsed as {r}, expected a {kind} error"),
            Err(e) => {
                assert_eq!(error_kind(&e), kind, "{input:?}: {e}");
                let message = e.to_string();
                assert!(message.starts_with("invalid reference"), "{message}");
                if !input.is_empty() {
                    assert!(message.contains(&format!("{input:?}")), "{message}");
                }
            }
        }
    }
}

#[test]
fn the_longest_names_and_tags_are_accepted() {
    // docker.io/library/ is 18 characters of the 255.
    let name = "a".repeat(255 - "docker.io/library/".len());
    let tag = "t".repeat(128);
    let r = Reference::parse(&format!("{name}:{tag}")).unwrap();
    assert_eq!(r.name().len(), 255);
    assert_eq!(r.tag(), Some(tag.as_str()));
    assert!(Reference::parse(&format!("{name}a")).is_err());
    assert!(Reference::parse(&format!("x:{tag}t")).is_err());
}

#[test]
fn messages_explain_the_expected_form() {
    let e = Reference::parse("Foo").unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid reference \"Foo\": repository name \"Foo\" must be lowercase; a repository \
         is lowercase letters, digits and separators (. _ - /), like alpine or \
         localhost:5000/team/app"
    );
    let e = Reference::parse("x@sha256:abc").unwrap_err().to_string();
    assert!(e.contains("sha256:<64 lowercase hex digits>"), "{e}");
    let e = Reference::parse("x@md5:abc").unwrap_err().to_string();
    assert!(e.contains("\"md5\"") && e.contains("only sha256"), "{e}");
    let e = Reference::parse("x:-a").unwrap_err().to_string();
    assert!(e.contains("a tag is 1 to 128"), "{e}");
}

#[test]
fn familiar_keeps_docker_io_when_the_short_form_would_name_a_registry() {
    for (input, familiar) in [
        ("docker.io/localhost/x", "docker.io/localhost/x:latest"),
        ("docker.io/a.b/c", "docker.io/a.b/c:latest"),
        ("docker.io/library/a.b", "a.b:latest"),
        ("docker.io/ab/c", "ab/c:latest"),
    ] {
        let r = Reference::parse(input).unwrap();
        assert_eq!(r.familiar(), familiar);
        assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
    }
}

#[test]
fn hub_names_share_a_config_key() {
    for host in [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://index.docker.io/v1/",
    ] {
        assert_eq!(registry_key(host), "https://index.docker.io/v1/", "{host}");
    }
    for host in ["ghcr.io", "localhost:5000", "[::1]:5000", "127.0.0.1:5000"] {
        assert_eq!(registry_key(host), host);
    }
}

#[test]
fn api_host_is_the_hub_api_or_the_registry() {
    let hub = Reference::parse("alpine").unwrap();
    assert!(hub.is_docker_hub());
    assert_eq!(hub.api_host(), "registry-1.docker.io");
    assert_eq!(registry_key(hub.registry()), "https://index.docker.io/v1/");
    let local = Reference::parse("localhost:5000/x").unwrap();
    assert!(!local.is_docker_hub());
    assert_eq!(local.api_host(), "localhost:5000");
    assert_eq!(registry_key(local.registry()), "localhost:5000");
}

#[test]
fn with_tag_drops_the_digest_and_with_digest_keeps_the_tag() {
    let r = Reference::parse("ghcr.io/o/r:1").unwrap();
    let pinned = r.with_digest(digest());
    assert_eq!(pinned.tag(), Some("1"));
    assert_eq!(pinned.digest(), Some(&digest()));
    assert_eq!(pinned.to_string(), format!("ghcr.io/o/r:1@sha256:{HEX}"));
    assert_eq!(pinned.familiar(), format!("ghcr.io/o/r:1@sha256:{HEX}"));

    let retagged = pinned.with_tag("2").unwrap();
    assert_eq!(retagged.tag(), Some("2"));
    assert_eq!(retagged.digest(), None);
    assert_eq!(retagged.to_string(), "ghcr.io/o/r:2");

    let only_digest = Reference::parse(&format!("x@sha256:{HEX}")).unwrap();
    assert_eq!(only_digest.with_tag("v").unwrap().familiar(), "x:v");
    assert_eq!(only_digest.with_digest(digest()), only_digest);

    let e = r.with_tag("-bad").unwrap_err();
    assert!(
        matches!(e, ReferenceError::InvalidTag { ref tag, .. } if tag == "-bad"),
        "{e}"
    );
    assert!(r.with_tag("").is_err());
    assert!(r.with_tag(&"t".repeat(129)).is_err());
}

#[test]
fn to_oci_gives_oci_client_the_registry_repository_and_tag_or_digest() {
    let r = Reference::parse("alpine:3.20").unwrap();
    let oci = r.to_oci();
    assert_eq!(oci.registry(), "docker.io");
    assert_eq!(oci.repository(), "library/alpine");
    assert_eq!(oci.tag(), Some("3.20"));
    assert_eq!(oci.digest(), None);

    let pinned = r.with_digest(digest()).to_oci();
    assert_eq!(pinned.repository(), "library/alpine");
    assert_eq!(pinned.digest(), Some(format!("sha256:{HEX}").as_str()));

    let local = Reference::parse(&format!("localhost:5000/team/app@sha256:{HEX}")).unwrap();
    let oci = local.to_oci();
    assert_eq!(oci.registry(), "localhost:5000");
    assert_eq!(oci.repository(), "team/app");
    assert_eq!(oci.tag(), None);
}

/// Text made mostly of the pieces references are made of, so cases reach
/// past the first check; sometimes any text at all.
fn reference_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "docker.io",
        "index.docker.io",
        "ghcr.io",
        "localhost",
        "127.0.0.1",
        "[::1]",
        "[",
        "]",
        ":5000",
        ":",
        "/",
        "//",
        "@",
        "sha256:",
        HEX,
        "md5:",
        "library",
        "alpine",
        "a",
        "B",
        "0",
        ".",
        "_",
        "__",
        "-",
        "--",
        "latest",
        "3.20",
        " ",
        "é",
    ]);
    prop_oneof![
        4 => prop::collection::vec(pieces, 0..12).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

/// References built from the grammar, which must all parse.
fn valid_reference() -> impl Strategy<Value = String> {
    let registry = prop::option::of(prop::sample::select(vec![
        "docker.io",
        "index.docker.io",
        "ghcr.io",
        "localhost",
        "localhost:5000",
        "127.0.0.1:5000",
        "[::1]:5000",
        "my-registry.example.com",
        "Upper.Case:1",
    ]));
    let component = "[a-z0-9]{1,5}(([._]|__|-{1,3})[a-z0-9]{1,5}){0,2}";
    let path = prop::collection::vec(component, 1..4).prop_map(|c| c.join("/"));
    let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}");
    let pinned = any::<bool>();
    (registry, path, tag, pinned).prop_map(|(registry, path, tag, pinned)| {
        let mut s = match registry {
            Some(registry) => format!("{registry}/{path}"),
            // A first component that looks like a host is one (docker
            // would try to reach `a.b` for `a.b/c`): say docker.io.
            None => match path.split_once('/') {
                Some((first, _)) if names_registry(first) => format!("docker.io/{path}"),
                _ => path,
            },
        };
        if let Some(tag) = tag {
            s.push(':');
            s.push_str(&tag);
        }
        if pinned {
            s.push_str("@sha256:");
            s.push_str(HEX);
        }
        s
    })
}

/// Every successfully parsed reference prints and re-parses to itself, in
/// both its forms.
fn assert_round_trips(r: &Reference) -> Result<(), TestCaseError> {
    prop_assert_eq!(&Reference::parse(&r.to_string()), &Ok(r.clone()));
    prop_assert_eq!(&Reference::parse(&r.familiar()), &Ok(r.clone()));
    prop_assert!(r.tag().is_some() || r.digest().is_some());
    let _ = r.to_oci();
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn parse_never_panics_and_round_trips(s in reference_text()) {
        if let Ok(r) = Reference::parse(&s) {
            assert_round_trips(&r)?;
        }
    }

    #[test]
    fn grammatical_references_parse(s in valid_reference()) {
        let r = Reference::parse(&s);
        prop_assert!(r.is_ok(), "{:?}: {:?}", s, r);
        assert_round_trips(&r.unwrap())?;
    }
}
