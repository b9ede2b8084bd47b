//! `kiln login`, `push` and `pull` against a real registry (distribution)
//! configured for the bearer-token flow of the distribution spec, with a
//! token server ([`TokenServer`]) that grants per-repository scopes: the
//! user may pull and push `team/*`, only pull `readonly/*`, and anonymous
//! requests get a token that grants nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::registry_server::RegistryServer;
use crate::token_server::{Access, Grant, TOKEN_SERVICE, TokenRequest, TokenServer};
use crate::util::{Run, Sandbox, kiln_bin};

const USER: &str = "tokenuser";
const PASSWORD: &str = "pw-Kx7q-never-shown";
const WRONG: &str = "pw-wrong-guess";

/// A sandbox with an image `app:1` (`FROM scratch` + `COPY`), a registry
/// with token auth, its token server, and a docker config of its own.
struct Setup {
    sb: Sandbox,
    registry: RegistryServer,
    tokens: TokenServer,
    /// Every kiln command run and what it printed.
    printed: std::cell::RefCell<String>,
}

impl Setup {
    fn new() -> Setup {
        let (registry, tokens) = RegistryServer::with_token_auth(
            USER,
            PASSWORD,
            &[
                Grant::new("team/*", &["pull", "push"]),
                Grant::new("readonly/*", &["pull"]),
            ],
        );
        let sb = Sandbox::new();
        sb.write("ctx/Kilnfile", "FROM scratch\nCOPY hello.txt /hello.txt\n");
        sb.write("ctx/hello.txt", "hello from a token-auth registry\n");
        sb.build("ctx", &["-t", "app:1"]);
        std::fs::create_dir_all(sb.path("docker")).unwrap();
        std::fs::create_dir_all(sb.path("home")).unwrap();
        Setup {
            sb,
            registry,
            tokens,
            printed: Default::default(),
        }
    }

    fn host(&self) -> String {
        self.registry.host()
    }

    /// Runs kiln on `store` with `stdin`, the sandbox's docker config and
    /// home, and no credentials from elsewhere.
    fn kiln_on(&self, store: &Path, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(kiln_bin())
            .args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("REGISTRY_AUTH_FILE")
            .env("KILN_STORE", store)
            .env("DOCKER_CONFIG", self.sb.path("docker"))
            .env("HOME", self.sb.path("home"))
            .current_dir(self.sb.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kiln");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // The transcript: in failure messages, and searched for the password.
        self.printed.borrow_mut().push_str(&format!(
            "$ kiln {}\n[exit {}]\n{}{}\n",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        ));
        run
    }

    fn kiln(&self, args: &[&str]) -> Run {
        self.kiln_on(&self.sb.store(), args, "")
    }

    fn login(&self, password: &str) -> Run {
        let host = self.host();
        let args = ["login", "--username", USER, "--password-stdin", &host];
        self.kiln_on(&self.sb.store(), &args, &format!("{password}\n"))
    }

    /// The kiln commands, the token server's requests and the registry's
    /// log, for failures.
    fn context(&self) -> String {
        format!(
            "kiln:\n{}\ntoken requests:\n{:#?}\nregistry log:\n{}",
            self.printed.borrow(),
            self.tokens.requests(),
            self.registry.log()
        )
    }

    /// The password, raw and base64 (alone and as `user:password`), is in
    /// nothing kiln printed and no file under `dirs`.
    #[track_caller]
    fn assert_password_nowhere(&self, dirs: &[PathBuf]) {
        let needles = [
            PASSWORD.to_string(),
            STANDARD.encode(PASSWORD),
            STANDARD.encode(format!("{USER}:{PASSWORD}")),
        ];
        let printed = self.printed.borrow();
        for needle in &needles {
            assert!(!printed.contains(needle.as_str()), "{needle} was printed");
        }
        for dir in dirs {
            for file in files(dir) {
                let bytes = std::fs::read(&file).unwrap();
                for needle in &needles {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                        "{needle} is in {}",
                        file.display()
                    );
                }
            }
        }
    }
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let e = e.unwrap();
        let path = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(files(&path));
        } else if e.file_type().unwrap().is_file() {
            out.push(path);
        }
    }
    out
}

fn scoped<'a>(requests: &'a [TokenRequest], scope: &str) -> Vec<&'a TokenRequest> {
    requests
        .iter()
        .filter(|r| r.scopes().contains(&scope))
        .collect()
}

#[test]
fn login_push_and_pull_go_through_tokens_scoped_to_the_repository() {
    let s = Setup::new();
    let host = s.host();
    let team = format!("{host}/team/app:1");

    // Anonymous: the token server hands out a token that grants nothing,
    // and the registry refuses it.
    let out = s.kiln(&["push", "-q", "app:1", &team]).fails(1);
    assert!(
        out.stderr.contains(&format!("kiln login {host}")),
        "{}\n{}",
        out.stderr,
        s.context()
    );
    let requests = s.tokens.requests();
    assert!(!requests.is_empty(), "{}", s.context());
    assert!(
        requests
            .iter()
            .all(|r| !r.had_credentials && r.granted.is_empty()),
        "{}",
        s.context()
    );
    // Denied is final: no retry loop.
    assert!(requests.len() <= 4, "{}", s.context());

    // A wrong password: the token server says 401, nothing is saved.
    s.tokens.clear();
    let out = s.login(WRONG).fails(1);
    assert!(
        out.stderr.contains(&format!(
            "logging in to {host} as {USER}: {host} refused the user name or password"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(WRONG) && !out.stdout.contains(WRONG));
    assert!(
        !s.sb.path("docker/config.json").exists() || {
            let saved = std::fs::read_to_string(s.sb.path("docker/config.json")).unwrap();
            !saved.contains(&host)
        }
    );
    let requests = s.tokens.requests();
    let logins: Vec<_> = requests
        .iter()
        .filter(|r| !r.params("account").is_empty())
        .collect();
    assert_eq!(logins.len(), 1, "{}", s.context());
    assert_eq!(logins[0].status, 401);
    assert!(logins[0].had_credentials);

    // The right one: kiln follows the bearer challenge to the realm with
    // basic auth, as docker login does.
    s.tokens.clear();
    let out = s.login(PASSWORD).ok();
    assert!(out.stdout.contains("Login Succeeded"), "{}", out.stdout);
    let requests = s.tokens.requests();
    let logins: Vec<_> = requests
        .iter()
        .filter(|r| !r.params("account").is_empty())
        .collect();
    assert_eq!(logins.len(), 1, "{}", s.context());
    let login = logins[0];
    assert_eq!(login.path, "/token");
    assert_eq!((login.status, login.had_credentials), (200, true));
    assert_eq!(login.params("account"), [USER]);
    assert_eq!(login.params("service"), [TOKEN_SERVICE]);

    // Push: a token for pull,push on team/app, with the credentials.
    s.tokens.clear();
    let out = s.kiln(&["push", "-q", "app:1", &team]).ok();
    let id = s.sb.inspect("app:1")["Id"].as_str().unwrap().to_string();
    assert_eq!(out.stdout.trim(), format!("{team}@{id}"));
    let requests = s.tokens.requests();
    let push = scoped(&requests, "repository:team/app:pull,push");
    assert!(!push.is_empty(), "{}", s.context());
    for r in &push {
        assert!(r.had_credentials && r.status == 200, "{r:#?}");
        assert_eq!(r.params("service"), [TOKEN_SERVICE]);
        assert_eq!(
            r.granted,
            [Access {
                name: "team/app".into(),
                actions: vec!["pull".into(), "push".into()],
            }]
        );
    }
    // Only team/app was asked for, and every request carried credentials.
    for r in &requests {
        assert!(r.had_credentials, "{r:#?}");
        for scope in r.scopes() {
            assert!(scope.starts_with("repository:team/app:"), "{scope}");
        }
    }

    // Pull into a fresh store: a pull-only scope.
    s.tokens.clear();
    let fresh = s.sb.path("fresh-store");
    s.kiln_on(&fresh, &["pull", "-q", &team], "").ok();
    let requests = s.tokens.requests();
    assert!(
        !scoped(&requests, "repository:team/app:pull").is_empty(),
        "{}",
        s.context()
    );
    for r in &requests {
        assert_eq!(r.scopes(), ["repository:team/app:pull"], "{r:#?}");
        assert!(r.had_credentials && r.status == 200, "{r:#?}");
    }
    let inspect = s.kiln_on(&fresh, &["inspect", &team], "").ok();
    let pulled: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(pulled[0]["Id"], id.as_str());

    // From the fresh store to another repository the user may push to:
    // the blobs are on the registry under team/app, where the store's
    // image came from, so they are mounted, with one token for the
    // target's pull,push and the source's pull (what a mount needs).
    s.tokens.clear();
    let copy = format!("{host}/team/copy:1");
    let out = s
        .kiln_on(&fresh, &["push", "--progress", "plain", &team, &copy], "")
        .ok();
    assert_eq!(
        out.stderr.matches("mounted from team/app").count(),
        2,
        "{}\n{}",
        out.stderr,
        s.context()
    );
    let requests = s.tokens.requests();
    assert!(
        requests.iter().any(|r| r.scopes()
            == ["repository:team/copy:pull,push", "repository:team/app:pull"]
            && r.granted
                == [
                    Access {
                        name: "team/copy".into(),
                        actions: vec!["pull".into(), "push".into()],
                    },
                    Access {
                        name: "team/app".into(),
                        actions: vec!["pull".into()],
                    },
                ]),
        "{}",
        s.context()
    );

    s.assert_password_nowhere(&[s.sb.store(), fresh]);
}

#[test]
fn a_pull_only_repository_refuses_the_push_with_a_clear_message() {
    let s = Setup::new();
    let host = s.host();
    s.login(PASSWORD).ok();

    s.tokens.clear();
    let readonly = format!("{host}/readonly/app:1");
    let out = s.kiln(&["push", "-q", "app:1", &readonly]).fails(1);
    let err = &out.stderr;
    assert!(
        err.contains("readonly/app") && err.contains("no access to this repository"),
        "{err}\n{}",
        s.context()
    );
    assert!(!err.contains("panicked") && !err.contains("retry"), "{err}");
    let requests = s.tokens.requests();
    let push = scoped(&requests, "repository:readonly/app:pull,push");
    assert!(!push.is_empty(), "{}", s.context());
    for r in &push {
        // Asked for pull,push; granted pull only.
        assert_eq!(
            r.granted,
            [Access {
                name: "readonly/app".into(),
                actions: vec!["pull".into()],
            }]
        );
    }
    // Denied is final: a handful of token requests, not a retry loop.
    assert!(requests.len() <= 6, "{}", s.context());

    // Not logged in, a pull of a repository the user may read is refused
    // with the way to log in.
    s.kiln(&["logout", &host]).ok();
    let out = s
        .kiln(&["pull", "-q", &format!("{host}/readonly/app:1")])
        .fails(1);
    assert!(
        out.stderr.contains(&format!("kiln login {host}")),
        "{}",
        out.stderr
    );

    s.assert_password_nowhere(&[s.sb.store()]);
}
