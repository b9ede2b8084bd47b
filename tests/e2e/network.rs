//! Network for steps end to end: `RUN --network=default` with
//! `--allow-net`, refusals and their messages, and secrets bound to an
//! origin (sent as a header to that origin only, never readable by the
//! step, never written anywhere), against small HTTP servers on loopback
//! that record what kiln sends.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::run::GUESTS;
use crate::secrets::{files_containing, forms};
use crate::util::Sandbox;

const NET_GUEST: &str = env!("KILN_GUEST_NET");
const TOKEN: &str = "npm_N3tw0rkB0undT0k3n_4242";

/// A loopback HTTP server recording each request's line and headers.
/// `/redirect?to=URL` answers 302 to URL; anything else 200 `ok PORT`.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(head);
                let response = match path.strip_prefix("/redirect?to=") {
                    Some(to) => format!(
                        "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    None => {
                        let body = format!("ok {port}");
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                let _ = conn.write_all(response.as_bytes());
            }
        });
        Server { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A sandbox with `guest` at ctx/bin/net, the token outside the context.
fn setup(guest: &str, kilnfile: &str) -> Sandbox {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(guest, sb.path("ctx/bin/net")).unwrap();
    sb.write("ctx/Kilnfile", kilnfile);
    sb.write("npm_token.txt", TOKEN);
    fs::create_dir_all(sb.path("tmp")).unwrap();
    sb
}

fn build(sb: &Sandbox, extra: &[&str]) -> crate::util::Run {
    let mut args = vec!["build", "--progress", "plain", "-t", "net:test"];
    args.extend_from_slice(extra);
    args.push("ctx");
    let tmp = sb.path("tmp");
    sb.kiln_env(&args, &[("TMPDIR", tmp.to_str().unwrap())])
}

/// `RUN --network=default ["net", urls...]`, with `mount` flags.
fn kilnfile(mount: &str, urls: &[String]) -> String {
    let argv: Vec<String> = std::iter::once("net".to_string())
        .chain(urls.iter().cloned())
        .collect();
    format!(
        "FROM scratch\nCOPY bin/ /bin/\nRUN --network=default {mount} {}\n",
        serde_json::to_string(&argv).unwrap()
    )
}

#[test]
fn allowed_hosts_work_and_bound_secrets_go_to_their_origin_only() {
    let a = Server::start();
    let b = Server::start();
    let urls = vec![
        a.url("/pkg"),
        b.url("/other"),
        a.url(&format!("/redirect?to={}", b.url("/after-redirect"))),
    ];
    let origin = format!("http://127.0.0.1:{}", a.port);
    let sb = setup(
        NET_GUEST,
        &kilnfile(
            &format!("--mount=type=secret,id=npm_token,origin={origin}"),
            &urls,
        ),
    );
    let out = build(
        &sb,
        &[
            "--allow-net",
            "127.0.0.1",
            "--secret",
            "id=npm_token,src=npm_token.txt",
        ],
    )
    .ok();
    let log = format!("{}{}", out.stdout, out.stderr);
    for want in [
        format!("GET {} -> 200 ok {}", urls[0], a.port),
        format!("GET {} -> 200 ok {}", urls[1], b.port),
        format!("GET {} -> 302", urls[2]),
        format!("GET {} -> 200 ok {}", b.url("/after-redirect"), b.port),
        // The step cannot read the secret: no file, no variable.
        "secrets-dir: none".to_string(),
    ] {
        assert!(log.contains(&want), "{want:?} not in\n{log}");
    }
    let env = log
        .lines()
        .find(|l| l.contains("env: "))
        .expect("the env line");
    assert!(!env.to_lowercase().contains("token"), "{env}");
    let auth = format!("authorization: Bearer {TOKEN}");
    let a_reqs = a.requests();
    assert_eq!(a_reqs.len(), 2, "{a_reqs:?}");
    for r in &a_reqs {
        assert!(
            r.to_lowercase().contains(&auth.to_lowercase()),
            "A got no token:\n{r}"
        );
    }
    let b_reqs = b.requests();
    assert_eq!(b_reqs.len(), 2, "{b_reqs:?}");
    for r in &b_reqs {
        assert!(!r.contains(TOKEN), "another origin got the token:\n{r}");
        assert!(!r.to_lowercase().contains("authorization"), "{r}");
    }
    // The value is nowhere kiln wrote: store, temp files, the log.
    assert!(!log.contains(TOKEN), "{log}");
    for dir in ["store", "tmp", "ctx"] {
        assert_eq!(
            files_containing(&sb.path(dir), &forms(TOKEN.as_bytes())),
            Vec::<String>::new(),
            "{dir}"
        );
    }
}

#[test]
fn hosts_off_the_list_are_refused_naming_the_flag() {
    let a = Server::start();
    let b = Server::start();
    let urls = vec![a.url("/fine"), b.url("/refused")];
    let sb = setup(NET_GUEST, &kilnfile("", &urls));
    let allow = format!("127.0.0.1:{}", a.port);
    let out = build(&sb, &["--allow-net", &allow]).fails(1);
    let log = format!("{}{}", out.stdout, out.stderr);
    assert!(log.contains(&format!("GET {} -> 200", urls[0])), "{log}");
    assert!(
        log.contains(&format!(
            "GET {} failed: ErrorCode::HttpRequestDenied",
            urls[1]
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("--allow-net 127.0.0.1:{}", b.port)),
        "the log names the host and flag:\n{log}"
    );
    assert!(b.requests().is_empty(), "nothing reached the refused host");
}

#[test]
fn steps_without_network_are_told_which_flags_open_it() {
    let a = Server::start();
    let argv = serde_json::to_string(&["net", &a.url("/x")]).unwrap();
    let sb = setup(
        NET_GUEST,
        &format!("FROM scratch\nCOPY bin/ /bin/\nRUN {argv}\n"),
    );
    let out = build(&sb, &["--allow-net", "127.0.0.1"]).fails(1);
    let log = format!("{}{}", out.stdout, out.stderr);
    assert!(
        log.contains("failed: ErrorCode::HttpRequestDenied"),
        "{log}"
    );
    assert!(log.contains("add --network=default"), "{log}");
    assert!(log.contains("--allow-net HOST"), "{log}");
    assert!(a.requests().is_empty());
}

#[test]
fn network_default_needs_an_allowlist_and_a_component() {
    let sb = setup(NET_GUEST, &kilnfile("", &["http://127.0.0.1:9/".into()]));
    let out = build(&sb, &[]).fails(1);
    assert!(
        out.stderr.contains("--allow-net HOST[:PORT]"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Kilnfile:3"),
        "at the line: {}",
        out.stderr
    );

    let sb = setup(
        GUESTS[0].1,
        "FROM scratch\nCOPY bin/ /bin/\nRUN --network=default net\n",
    );
    let out = build(&sb, &["--allow-net", "127.0.0.1"]).fails(1);
    assert!(
        out.stderr.contains("preview 1 has no network API"),
        "{}",
        out.stderr
    );

    let sb = setup(NET_GUEST, "FROM scratch\nRUN --network=host net\n");
    let out = build(&sb, &[]).fails(1);
    assert!(
        out.stderr.contains("--network=host is not available"),
        "{}",
        out.stderr
    );

    let sb = setup(
        NET_GUEST,
        "FROM scratch\nRUN --mount=type=secret,id=t,origin=http://127.0.0.1 net\n",
    );
    let out = build(&sb, &["--allow-net", "127.0.0.1"]).fails(1);
    assert!(
        out.stderr
            .contains("bound to an origin, but this step has no network"),
        "{}",
        out.stderr
    );
}
