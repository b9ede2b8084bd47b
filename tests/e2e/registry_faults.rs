//! Pushes and pulls when things go wrong: a push killed with SIGKILL
//! completes when run again, tampered blobs and manifests are refused, and a
//! connection dropped mid-blob is retried.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::registry::{Env, assert_check_clean, assert_no_images, copy_out, count, pushed_digest};
use crate::registry_server::RegistryServer;
use crate::util::kiln_bin;

/// Total size of the files under `dir` (0 if it does not exist).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// A file of `size` bytes nothing compresses.
fn random_file(path: &Path, size: u64) {
    let mut random = fs::File::open("/dev/urandom").unwrap().take(size);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = fs::File::create(path).unwrap();
    std::io::copy(&mut random, &mut out).unwrap();
}

/// Builds `FROM scratch` + `COPY` of a random file of `mib` MiB as `tag`.
fn build_random(env: &Env, tag: &str, mib: u64) {
    random_file(&env.path(&format!("ctx-{tag}/blob.bin")), mib << 20);
    env.sb.write(
        &format!("ctx-{tag}/Kilnfile"),
        "FROM scratch\nCOPY blob.bin /blob.bin\n",
    );
    env.kiln(&[
        "build",
        "-q",
        "-t",
        tag,
        "--output",
        "type=image,compression=uncompressed",
        &format!("ctx-{tag}"),
    ])
    .ok();
}

#[test]
fn a_push_killed_in_the_big_layer_completes_when_run_again() {
    let env = Env::new();
    build_random(&env, "big", 300);
    let server = RegistryServer::plain();
    let dest = format!("{}/test/big:1", server.host());
    let uploads = server
        .data_dir()
        .join("docker/registry/v2/repositories/test/big/_uploads");

    let mut child = Command::new(kiln_bin())
        .args(["push", "-q", "big", &dest])
        .env_remove("SOURCE_DATE_EPOCH")
        .env("KILN_STORE", env.path("store"))
        .env("HOME", env.path("home"))
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("TMPDIR", env.path("tmp"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed at a place in the upload, not a time: once the registry
    // holds 50 MiB of the layer.
    let deadline = Instant::now() + Duration::from_secs(120);
    while tree_size(&uploads) <= 50 << 20 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before 50 MiB of its layer reached the registry"
        );
        assert!(Instant::now() < deadline, "the upload never started");
        thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Manifests go last: the tag does not exist yet.
    let missing = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(!missing.status.success(), "the killed push left a tag");

    let again = env
        .kiln(&["push", "--progress", "plain", "big", &dest])
        .ok();
    let digest = pushed_digest(&again);
    let layout = env.path("copied");
    assert_eq!(copy_out(&server, &dest, &layout), digest);
    assert_check_clean(&env, "store");
}

#[test]
fn tampered_blobs_and_manifests_are_refused_and_leave_the_store_sound() {
    let env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n"), ("b.txt", b"beta\n")]);
    let server = RegistryServer::plain();
    let dest = format!("{}/test/small:1", server.host());
    let digest = pushed_digest(&env.kiln(&["push", "-q", "small", &dest]).ok());
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(server.blob_path(&digest)).unwrap()).unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // Same length, other bytes: only the digest can tell.
    let blob = server.blob_path(&layer);
    let original = fs::read(&blob).unwrap();
    fs::write(&blob, original.iter().map(|b| b ^ 0xff).collect::<Vec<_>>()).unwrap();
    let refused = env.kiln_in("fresh", &["pull", &dest], "").fails(1);
    assert!(
        refused.stderr.contains(&format!("blob {layer}"))
            && refused.stderr.contains("does not match its digest"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("attempt 1 of"),
        "tampered content is not retried:\n{}",
        refused.stderr
    );
    assert_no_images(&env, "fresh");
    assert_check_clean(&env, "fresh");
    fs::write(&blob, &original).unwrap();

    // A manifest changed in place (one digit of a size, still JSON),
    // pulled by its digest.
    let path = server.blob_path(&digest);
    let text = fs::read_to_string(&path).unwrap();
    let at = text.find("\"size\":").unwrap() + 7;
    let digit = if &text[at..=at] == "1" { "2" } else { "1" };
    fs::write(&path, format!("{}{digit}{}", &text[..at], &text[at + 1..])).unwrap();
    let by_digest = format!("{}/test/small@{digest}", server.host());
    let refused = env.kiln_in("fresh", &["pull", &by_digest], "").fails(1);
    assert!(
        refused.stderr.contains("does not match its digest"),
        "{}",
        refused.stderr
    );
    assert_no_images(&env, "fresh");
    assert_check_clean(&env, "fresh");
}

/// A TCP proxy in front of a registry that cuts the first connection to
/// carry more than `cut_after` bytes towards the client, once: a network
/// that drops in the middle of a blob, at a byte position.
struct CuttingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn new(upstream: String, cut_after: u64) -> CuttingProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let (stop2, cut2) = (Arc::clone(&stop), Arc::clone(&cut));
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = std::io::copy(&mut &c2, &mut &s2);
                    let _ = s2.shutdown(Shutdown::Write);
                });
                let cut = Arc::clone(&cut2);
                thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut sent = 0u64;
                    loop {
                        let n = match (&server).read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if (&client).write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n as u64;
                        if sent > cut_after && !cut.swap(true, Ordering::SeqCst) {
                            let _ = client.shutdown(Shutdown::Both);
                            let _ = server.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Write);
                });
            }
        });
        CuttingProxy { port, stop, cut }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

#[test]
fn a_connection_dropped_mid_blob_is_retried_with_a_warning() {
    let env = Env::new();
    build_random(&env, "mid", 24);
    let server = RegistryServer::plain();
    env.kiln(&[
        "push",
        "-q",
        "mid",
        &format!("{}/test/mid:1", server.host()),
    ])
    .ok();
    let proxy = CuttingProxy::new(server.host(), 4 << 20);
    let through = format!("{}/test/mid:1", proxy.host());
    let pulled = env
        .kiln_in("fresh", &["pull", "--progress", "plain", &through], "")
        .ok();
    assert!(proxy.cut.load(Ordering::SeqCst), "the proxy never cut");
    assert!(
        pulled.stderr.contains("warning:") && pulled.stderr.contains("attempt 1 of 5 failed"),
        "{}",
        pulled.stderr
    );
    assert_eq!(count(&pulled.stderr, "pulled"), 2, "{}", pulled.stderr);
    assert_check_clean(&env, "fresh");
    let left: Vec<_> = fs::read_dir(env.path("fresh/kiln/tmp")).unwrap().collect();
    assert!(left.is_empty(), "the cut download left {left:?}");
}
