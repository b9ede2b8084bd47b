use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "hunter2-s3cr3t-value";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn write_config(dir: &Path, value: &Value) -> AuthFile {
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    AuthFile::at(path).with_helper_path(vec![dir.join("no-helpers-here")])
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn get(file: &AuthFile, registry: &str) -> Option<(String, String)> {
    file.get(registry)
        .unwrap()
        .map(|c| (c.username.clone(), c.secret.expose_secret().to_owned()))
}

fn pair(user: &str, secret: &str) -> Option<(String, String)> {
    Some((user.to_owned(), secret.to_owned()))
}

#[test]
fn reads_auth_identitytoken_and_username_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &json!({
            "auths": {
                "localhost:5000": { "auth": b64("alice:pa:ss") },
                "ghcr.io": { "auth": b64("bob:x"), "identitytoken": "tok-123" },
                "quay.io": { "username": "carol", "password": "pw" },
                "empty.example": {},
                "blank.example": { "auth": "" },
                "nopad.example": { "auth": b64("dave:pw1").trim_end_matches('=') },
            }
        }),
    );
    assert_eq!(get(&file, "localhost:5000"), pair("alice", "pa:ss"));
    assert_eq!(get(&file, "ghcr.io"), pair("<token>", "tok-123"));
    assert!(file.get("ghcr.io").unwrap().unwrap().is_identity_token());
    assert_eq!(get(&file, "quay.io"), pair("carol", "pw"));
    assert_eq!(get(&file, "nopad.example"), pair("dave", "pw1"));
    assert_eq!(get(&file, "empty.example"), None);
    assert_eq!(get(&file, "blank.example"), None);
    assert_eq!(get(&file, "other.example"), None);
    assert_eq!(get(&file, "localhost:5001"), None);
}

#[test]
fn reads_url_form_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &json!({
            "auths": {
                "https://localhost:5000": { "auth": b64("a:1") },
                "http://registry.example/v1/": { "auth": b64("b:2") },
                "HTTPS://Upper.Example/v2/": { "auth": b64("c:3") },
            }
        }),
    );
    assert_eq!(get(&file, "localhost:5000"), pair("a", "1"));
    assert_eq!(get(&file, "registry.example"), pair("b", "2"));
    assert_eq!(get(&file, "upper.example"), pair("c", "3"));
    assert_eq!(get(&file, "https://localhost:5000/v2/"), pair("a", "1"));
}

#[test]
fn exact_key_wins_over_other_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &json!({
            "auths": {
                "http://localhost:5000": { "auth": b64("old:1") },
                "localhost:5000": { "auth": b64("new:2") },
            }
        }),
    );
    assert_eq!(get(&file, "localhost:5000"), pair("new", "2"));
}

#[test]
fn reads_docker_hub_variants() {
    for key in [
        "https://index.docker.io/v1/",
        "index.docker.io",
        "docker.io",
        "registry-1.docker.io",
        "https://registry-1.docker.io/v2/",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = write_config(
            dir.path(),
            &json!({ "auths": { key: { "auth": b64("hub:pw") } } }),
        );
        for registry in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                get(&file, registry),
                pair("hub", "pw"),
                "key {key}, registry {registry}"
            );
        }
        assert_eq!(get(&file, "localhost"), None);
    }
}

#[test]
fn missing_file_is_anonymous_and_erase_is_false() {
    let dir = tempfile::tempdir().unwrap();
    let file = AuthFile::at(dir.path().join("nope/config.json"));
    assert!(file.get("docker.io").unwrap().is_none());
    assert!(!file.erase("docker.io").unwrap());
    assert!(!dir.path().join("nope").exists());
}

#[test]
fn empty_file_is_an_empty_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, " \n").unwrap();
    let file = AuthFile::at(path.clone());
    assert!(file.get("docker.io").unwrap().is_none());
    file.store("docker.io", &Credential::new("u", SecretString::from("p")))
        .unwrap();
    assert_eq!(get(&file, "docker.io"), pair("u", "p"));
}

#[test]
fn store_preserves_other_fields_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let original = json!({
        "auths": {
            "other.example": { "auth": b64("x:y"), "email": "x@example.com" },
            "http://localhost:5000": { "auth": b64("stale:old") },
        },
        "credHelpers": { "gcr.io": "gcloud" },
        "HttpHeaders": { "User-Agent": "Docker-Client" },
        "psFormat": "table {{.ID}}",
        "experimental": { "nested": [1, 2, { "deep": true }] },
    });
    let file = write_config(dir.path(), &original);
    let cred = Credential::new("alice", SecretString::from(SECRET));
    let saved = file.store("localhost:5000", &cred).unwrap();
    assert_eq!(saved, Where::File(file.path().to_path_buf()));
    assert_eq!(saved.to_string(), file.path().display().to_string());

    let now = read_json(file.path());
    assert_eq!(now["credHelpers"], original["credHelpers"]);
    assert_eq!(now["HttpHeaders"], original["HttpHeaders"]);
    assert_eq!(now["psFormat"], original["psFormat"]);
    assert_eq!(now["experimental"], original["experimental"]);
    assert_eq!(
        now["auths"]["other.example"],
        original["auths"]["other.example"]
    );
    assert_eq!(
        now["auths"]["localhost:5000"],
        json!({ "auth": b64(&format!("alice:{SECRET}")) })
    );
    assert!(
        now["auths"].get("http://localhost:5000").is_none(),
        "stale spelling removed"
    );
    assert_eq!(get(&file, "localhost:5000"), pair("alice", SECRET));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsString::from("config.json")]);
}

#[test]
fn store_hub_uses_dockers_key_and_tokens_as_identitytoken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/config.json");
    let file = AuthFile::at(path.clone());
    file.store(
        "docker.io",
        &Credential::new("hub", SecretString::from("pw")),
    )
    .unwrap();
    file.store(
        "ghcr.io",
        &Credential::new("<token>", SecretString::from("tok")),
    )
    .unwrap();
    let now = read_json(&path);
    assert_eq!(
        now["auths"][DOCKER_HUB_KEY],
        json!({ "auth": b64("hub:pw") })
    );
    assert_eq!(now["auths"]["ghcr.io"], json!({ "identitytoken": "tok" }));
    assert_eq!(get(&file, "index.docker.io"), pair("hub", "pw"));
    assert_eq!(get(&file, "ghcr.io"), pair("<token>", "tok"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("a/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

#[cfg(unix)]
#[test]
fn store_through_a_symlink_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.json");
    std::fs::write(&real, r#"{"auths":{}}"#).unwrap();
    let link = dir.path().join("config.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let file = AuthFile::at(link.clone());
    file.store("localhost", &Credential::new("u", SecretString::from("p")))
        .unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        read_json(&real)["auths"]["localhost"]["auth"],
        json!(b64("u:p"))
    );
}

#[test]
fn erase_removes_every_spelling_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &json!({
            "auths": {
                "localhost:5000": { "auth": b64("a:1") },
                "https://localhost:5000/v2/": { "auth": b64("b:2") },
                "keep.example": { "auth": b64("c:3") },
            },
            "unknown": 42,
        }),
    );
    assert!(file.erase("localhost:5000").unwrap());
    assert_eq!(get(&file, "localhost:5000"), None);
    assert!(!file.erase("localhost:5000").unwrap());
    let now = read_json(file.path());
    assert_eq!(now["unknown"], json!(42));
    assert_eq!(
        now["auths"],
        json!({ "keep.example": { "auth": b64("c:3") } })
    );
}

#[test]
fn invalid_json_is_an_error_naming_the_file_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let broken = format!(
        r#"{{"auths": {{"x": {{"auth": "{}"}}"#,
        b64(&format!("u:{SECRET}"))
    );
    std::fs::write(&path, &broken).unwrap();
    let file = AuthFile::at(path.clone());
    let cred = Credential::new("u", SecretString::from(SECRET));
    let errors = [
        file.get("x").unwrap_err(),
        file.store("x", &cred).unwrap_err(),
        file.erase("x").unwrap_err(),
    ];
    for err in errors {
        assert!(matches!(err, CredentialError::Invalid { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            !msg.contains(SECRET) && !msg.contains(&b64(&format!("u:{SECRET}"))),
            "{msg}"
        );
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);

    std::fs::write(&path, "[1, 2]").unwrap();
    assert!(matches!(
        file.store("x", &cred),
        Err(CredentialError::Invalid { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "[1, 2]");
}

#[test]
fn malformed_entries_name_the_field_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &json!({ "auths": { "a.example": { "auth": SECRET }, "b.example": { "password": 7 } } }),
    );
    let err = file.get("a.example").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("auths[\"a.example\"].auth"), "{msg}");
    assert!(msg.contains(&file.path().display().to_string()), "{msg}");
    assert!(!msg.contains(SECRET) && !format!("{err:?}").contains(SECRET));
    let msg = file.get("b.example").unwrap_err().to_string();
    assert!(msg.contains("password is not a string"), "{msg}");

    let file = write_config(dir.path(), &json!({ "auths": [SECRET] }));
    let err = file.get("a.example").unwrap_err();
    assert!(!err.to_string().contains(SECRET));
    let cred = Credential::new("u", SecretString::from("p"));
    assert!(file.store("a.example", &cred).is_err());
}

#[test]
fn bad_registry_names_are_errors() {
    let file = AuthFile::at(PathBuf::from("/nonexistent/config.json"));
    for bad in ["", "  ", "https://", "a b", "user@host"] {
        assert!(
            matches!(file.get(bad), Err(CredentialError::Registry { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn locate_order() {
    let env = |vars: &[(&str, &str)]| {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name: &str| map.get(name).cloned()
    };
    let home = Some(PathBuf::from("/home/u"));
    let all = [
        ("REGISTRY_AUTH_FILE", "/run/auth.json"),
        ("DOCKER_CONFIG", "/etc/docker-cfg"),
    ];
    assert_eq!(
        AuthFile::locate_from(env(&all), home.clone()).path(),
        Path::new("/run/auth.json")
    );
    assert_eq!(
        AuthFile::locate_from(env(&all[1..]), home.clone()).path(),
        Path::new("/etc/docker-cfg/config.json")
    );
    assert_eq!(
        AuthFile::locate_from(
            env(&[("REGISTRY_AUTH_FILE", ""), ("DOCKER_CONFIG", "")]),
            home.clone()
        )
        .path(),
        Path::new("/home/u/.docker/config.json")
    );
    assert_eq!(
        AuthFile::locate_from(env(&[]), home).path(),
        Path::new("/home/u/.docker/config.json")
    );
    assert_eq!(
        AuthFile::locate_from(env(&[]), None).path(),
        Path::new(".docker/config.json")
    );
}

#[test]
fn debug_and_where_never_show_the_secret() {
    let cred = Credential::new("alice", SecretString::from(SECRET));
    let debug = format!("{cred:?}");
    assert!(
        debug.contains("alice") && debug.contains("[REDACTED]"),
        "{debug}"
    );
    assert!(!debug.contains(SECRET), "{debug}");
    let file = AuthFile::at(PathBuf::from("config.json"));
    assert!(!format!("{file:?}").contains(SECRET));
}

/// Helper programs: shell scripts named `docker-credential-kilntest`.
#[cfg(unix)]
mod helpers {
    use std::sync::Mutex;

    use super::*;

    /// Writing a script while another test forks can make exec fail with
    /// ETXTBSY; the helper tests take turns.
    static SCRIPTS: Mutex<()> = Mutex::new(());

    struct Setup {
        dir: tempfile::TempDir,
        file: AuthFile,
    }

    impl Setup {
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    /// A config whose `config` names helper `kilntest`, and that helper with
    /// `body` as its shell script (`$LOG` is a directory for its records).
    fn setup(config: Value, body: &str) -> Setup {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let script = bin.join("docker-credential-kilntest");
        let log = dir.path().display().to_string();
        std::fs::write(&script, format!("#!/bin/sh\nLOG='{log}'\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let file = AuthFile::at(path).with_helper_path(vec![dir.path().join("empty"), bin]);
        Setup { dir, file }
    }

    const GET_FOUND: &str = r#"
case "$1" in
get) cat > "$LOG/get-stdin"; printf '{"ServerURL":"x","Username":"alice","Secret":"hunter2-s3cr3t-value"}' ;;
*) exit 9 ;;
esac"#;

    #[test]
    fn get_found_through_cred_helpers() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(
            json!({
                "credHelpers": { "localhost:5000": "kilntest" },
                "credsStore": "not-installed",
                "auths": { "localhost:5000": { "auth": b64("file:pw") } },
            }),
            GET_FOUND,
        );
        assert_eq!(get(&s.file, "localhost:5000"), pair("alice", SECRET));
        assert_eq!(
            std::fs::read_to_string(s.path("get-stdin")).unwrap(),
            "localhost:5000"
        );
        // Another registry goes to credsStore, which is not installed.
        let err = s.file.get("other.example").unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, CredentialError::HelperMissing { .. }),
            "{msg}"
        );
        assert!(
            msg.contains("docker-credential-not-installed") && msg.contains("credsStore"),
            "{msg}"
        );
        assert!(msg.contains(&s.file.path().display().to_string()), "{msg}");
    }

    #[test]
    fn get_through_creds_store_sends_hubs_server_url() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(json!({ "credsStore": "kilntest" }), GET_FOUND);
        assert_eq!(get(&s.file, "docker.io"), pair("alice", SECRET));
        assert_eq!(
            std::fs::read_to_string(s.path("get-stdin")).unwrap(),
            DOCKER_HUB_KEY
        );
    }

    #[test]
    fn get_not_found_falls_back_to_the_file() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(
            json!({
                "credsStore": "kilntest",
                "auths": { "inline.example": { "auth": b64("file:pw") } },
            }),
            r#"cat >/dev/null; echo "credentials not found in native keychain"; exit 1"#,
        );
        assert_eq!(get(&s.file, "localhost:5000"), None);
        assert_eq!(get(&s.file, "inline.example"), pair("file", "pw"));
    }

    #[test]
    fn failing_helper_names_itself_and_its_message() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(
            json!({ "credsStore": "kilntest" }),
            r#"cat >/dev/null; echo "keychain is locked: unlock it" >&2; exit 3"#,
        );
        let err = s.file.get("localhost").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("docker-credential-kilntest get"), "{msg}");
        assert!(msg.contains("keychain is locked: unlock it"), "{msg}");
        assert!(msg.contains("exit status 3"), "{msg}");
    }

    #[test]
    fn garbage_from_get_is_not_quoted() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(
            json!({ "credsStore": "kilntest" }),
            r#"cat >/dev/null; echo "hunter2-s3cr3t-value""#,
        );
        let err = s.file.get("localhost").unwrap_err();
        assert!(
            matches!(err, CredentialError::HelperReply { .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains(SECRET) && !format!("{err:?}").contains(SECRET));
    }

    #[test]
    fn store_sends_json_on_stdin_and_strips_the_file() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(
            json!({
                "credHelpers": { "localhost:5000": "kilntest" },
                "auths": { "localhost:5000": { "auth": b64("old:pw"), "email": "e@x" } },
                "keep": "me",
            }),
            r#"echo "$@" > "$LOG/args"; cat > "$LOG/stdin""#,
        );
        let cred = Credential::new("alice", SecretString::from(SECRET));
        let saved = s.file.store("localhost:5000", &cred).unwrap();
        assert_eq!(saved, Where::Helper("docker-credential-kilntest".into()));
        assert_eq!(saved.to_string(), "docker-credential-kilntest");
        assert_eq!(std::fs::read_to_string(s.path("args")).unwrap(), "store\n");
        let sent = read_json(&s.path("stdin"));
        assert_eq!(
            sent,
            json!({ "ServerURL": "localhost:5000", "Username": "alice", "Secret": SECRET })
        );
        let now = read_json(s.file.path());
        assert_eq!(now["keep"], json!("me"));
        assert_eq!(now["auths"]["localhost:5000"], json!({ "email": "e@x" }));
        assert!(
            !std::fs::read_to_string(s.file.path())
                .unwrap()
                .contains(&b64("old:pw"))
        );
    }

    #[test]
    fn store_failure_never_echoes_the_secret() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        // A badly behaved helper that prints what it was sent.
        let s = setup(json!({ "credsStore": "kilntest" }), "cat >&2; exit 1");
        let cred = Credential::new("alice", SecretString::from(SECRET));
        let err = s.file.store("localhost", &cred).unwrap_err();
        let (msg, debug) = (err.to_string(), format!("{err:?}"));
        assert!(msg.contains("docker-credential-kilntest store"), "{msg}");
        assert!(!msg.contains(SECRET) && !debug.contains(SECRET), "{msg}");
        assert!(msg.contains("[REDACTED]"), "{msg}");
    }

    #[test]
    fn erase_sends_the_server_url() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(
            json!({
                "credsStore": "kilntest",
                "auths": { DOCKER_HUB_KEY: {}, "keep.example": { "auth": b64("k:k") } },
            }),
            r#"echo "$@" > "$LOG/args"; cat > "$LOG/stdin""#,
        );
        assert!(s.file.erase("docker.io").unwrap());
        assert_eq!(std::fs::read_to_string(s.path("args")).unwrap(), "erase\n");
        assert_eq!(
            std::fs::read_to_string(s.path("stdin")).unwrap(),
            DOCKER_HUB_KEY
        );
        let now = read_json(s.file.path());
        assert_eq!(
            now["auths"],
            json!({ "keep.example": { "auth": b64("k:k") } })
        );
    }

    #[test]
    fn erase_not_found_is_false() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(
            json!({ "credsStore": "kilntest" }),
            r#"cat >/dev/null; echo "credentials not found in native keychain"; exit 1"#,
        );
        assert!(!s.file.erase("localhost").unwrap());
    }

    #[test]
    fn invalid_helper_names_are_refused() {
        let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let s = setup(json!({ "credsStore": "../../bin/sh" }), "exit 0");
        let err = s.file.get("localhost").unwrap_err();
        assert!(matches!(err, CredentialError::HelperName { .. }), "{err:?}");
    }
}
