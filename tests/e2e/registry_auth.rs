//! `kiln login`, `logout` and pushes and pulls with credentials, against a
//! TLS registry with basic auth: credentials in the docker config file and
//! from a credential helper, the CA hint, and the password nowhere kiln
//! writes or prints.

use std::fs;

use crate::registry::{Env, assert_check_clean, forms_of_login, pushed_digest};
use crate::registry_server::RegistryServer;
use crate::secrets::{files_containing, forms};

const USER: &str = "kiln-user";
const PASSWORD: &str = "Pa55w0rd-registry-7c1e!";

/// Every flow of a TLS registry with basic auth, credentials in the
/// docker config file: refused without login, the CA hint, a wrong
/// password refused (and not saved), login, push and pull, the CA skipped
/// with `--insecure-registry`, logout.
#[test]
fn tls_registry_with_auth_login_push_pull_logout_and_the_password_is_nowhere() {
    let env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n")]);
    let server = RegistryServer::tls_with_auth(USER, PASSWORD);
    let host = server.host();
    let ca = server.ca_pem().unwrap().to_str().unwrap().to_string();
    let dest = format!("{host}/test/small:1");

    // Not logged in.
    let denied = env
        .kiln(&["--registry-ca", &ca, "push", "small", &dest])
        .fails(1);
    assert!(
        denied.stderr.contains(&format!("kiln login {host}")),
        "{}",
        denied.stderr
    );
    // The server's CA is not the system's.
    let untrusted = env.kiln(&["push", "small", &dest]).fails(1);
    assert!(
        untrusted.stderr.contains("--registry-ca")
            && untrusted.stderr.contains("--insecure-registry"),
        "{}",
        untrusted.stderr
    );

    // A wrong password: refused, nothing saved, and not echoed.
    let wrong = "Wr0ng-pa55word-echo-9d2f";
    let login_with = |password: &str| {
        env.kiln_in(
            "store",
            &[
                "--registry-ca",
                &ca,
                "login",
                "--username",
                USER,
                "--password-stdin",
                &host,
            ],
            &format!("{password}\n"),
        )
    };
    let refused = login_with(wrong).fails(1);
    assert!(refused.stderr.contains("refused"), "{}", refused.stderr);
    for form in forms(wrong.as_bytes()) {
        let form = String::from_utf8(form).unwrap();
        assert!(!refused.stderr.contains(&form) && !refused.stdout.contains(&form));
    }
    let saved = fs::read_to_string(env.docker_config()).unwrap_or_default();
    assert!(!saved.contains(&host), "{saved}");

    // The right one.
    let login = login_with(PASSWORD).ok();
    assert_eq!(login.stdout.trim(), "Login Succeeded");
    let saved = fs::read_to_string(env.docker_config()).unwrap();
    assert!(saved.contains(&host), "{saved}");
    // The search below looks for what is really there: the config's
    // base64 `user:password` is one of its forms.
    assert_eq!(
        files_containing(&env.path("docker"), &forms_of_login(USER, PASSWORD)),
        [env.docker_config().display().to_string()]
    );

    let digest = pushed_digest(
        &env.kiln(&["--registry-ca", &ca, "push", "small", &dest])
            .ok(),
    );
    let pulled = env
        .kiln_in("fresh", &["--registry-ca", &ca, "pull", &dest], "")
        .ok();
    assert!(
        pulled.stderr.contains(&format!("Digest: {digest}")),
        "{}",
        pulled.stderr
    );
    assert_check_clean(&env, "fresh");
    // No CA, but the host is insecure: its certificate is not checked.
    env.kiln_in("fresh2", &["--insecure-registry", &host, "pull", &dest], "")
        .ok();
    env.kiln(&[
        "--insecure-registry",
        &host,
        "push",
        "small",
        &format!("{host}/test/small:2"),
    ])
    .ok();

    let logout = env.kiln(&["logout", &host]).ok();
    assert!(logout.stdout.contains("Removed"), "{}", logout.stdout);
    let again = env
        .kiln(&["--registry-ca", &ca, "push", "small", &dest])
        .fails(1);
    assert!(
        again.stderr.contains(&format!("kiln login {host}")),
        "{}",
        again.stderr
    );

    // The docker config held the base64 auth while logged in, by design;
    // nothing else did, nor any output.
    env.assert_password_nowhere(USER, PASSWORD, &[env.docker_config()]);
    let after = fs::read_to_string(env.docker_config()).unwrap();
    assert!(!after.contains(&host), "logout left {after}");
}

/// The same registry with a `credHelpers` entry: the helper stores and
/// supplies the password, and the docker config never holds it.
#[test]
fn a_credential_helper_supplies_the_password_and_the_config_never_holds_it() {
    let mut env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n")]);
    let server = RegistryServer::tls_with_auth(USER, PASSWORD);
    let host = server.host();
    let ca = server.ca_pem().unwrap().to_str().unwrap().to_string();
    let dest = format!("{host}/test/small:1");

    // A helper that keeps one credential in a file of its own.
    let helper_dir = env.path("helper");
    let keychain = helper_dir.join("keychain.json");
    let script = format!(
        r#"#!/bin/sh
set -e
keychain='{keychain}'
case "$1" in
  store) cat > "$keychain" ;;
  get)
    url=$(cat)
    if [ -s "$keychain" ]; then cat "$keychain"
    else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) url=$(cat); rm -f "$keychain" ;;
  *) echo "unknown action $1" >&2; exit 1 ;;
esac
"#,
        keychain = keychain.display()
    );
    let program = env
        .sb
        .write("helper/bin/docker-credential-kilntest", script);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.vars.push((
        "PATH".into(),
        format!(
            "{}:{}",
            helper_dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    ));
    fs::write(
        env.docker_config(),
        serde_json::json!({ "credHelpers": { &host: "kilntest" } }).to_string(),
    )
    .unwrap();

    let denied = env
        .kiln(&["--registry-ca", &ca, "push", "small", &dest])
        .fails(1);
    assert!(
        denied.stderr.contains(&format!("kiln login {host}")),
        "{}",
        denied.stderr
    );
    let login = env
        .kiln_in(
            "store",
            &[
                "--registry-ca",
                &ca,
                "login",
                "-u",
                USER,
                "--password-stdin",
                &host,
            ],
            PASSWORD,
        )
        .ok();
    assert_eq!(login.stdout.trim(), "Login Succeeded");
    assert!(
        login.stderr.contains("docker-credential-kilntest") || login.stderr.contains("kilntest"),
        "{}",
        login.stderr
    );
    assert!(
        fs::read_to_string(&keychain).unwrap().contains(PASSWORD),
        "the helper was not given the password"
    );
    let digest = pushed_digest(
        &env.kiln(&["--registry-ca", &ca, "push", "small", &dest])
            .ok(),
    );
    let pulled = env
        .kiln_in("fresh", &["--registry-ca", &ca, "pull", &dest], "")
        .ok();
    assert!(pulled.stderr.contains(&digest), "{}", pulled.stderr);
    env.kiln(&["logout", &host]).ok();
    assert!(
        !keychain.exists(),
        "logout did not erase the helper's entry"
    );
    let denied = env
        .kiln(&["--registry-ca", &ca, "push", "small", &dest])
        .fails(1);
    assert!(
        denied.stderr.contains(&format!("kiln login {host}")),
        "{}",
        denied.stderr
    );

    // Only the helper's keychain ever held it: not even the docker config.
    env.assert_password_nowhere(USER, PASSWORD, &[keychain]);
}
