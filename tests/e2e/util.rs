//! Helpers: a temp directory per test with its own store, running the kiln
//! binary as a process, reading images back, and calling outside tools.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kiln command line under test.
pub fn kiln_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln-e2e"))
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the output unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the command failed with `code`.
    #[track_caller]
    pub fn fails(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit code {code}:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A test's sandbox: a temp dir holding a store and contexts.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A sandbox in a new temp dir under `parent` (a Wine drive, say).
    pub fn new_in(parent: &Path) -> Sandbox {
        fs::create_dir_all(parent).unwrap();
        Sandbox {
            dir: tempfile::tempdir_in(parent).unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// Writes a file (creating parents).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        p
    }

    /// Runs kiln against this sandbox's store, with a clean environment.
    pub fn kiln(&self, args: &[&str]) -> Run {
        self.kiln_env(args, &[])
    }

    /// Runs kiln with extra environment variables.
    pub fn kiln_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(kiln_bin());
        cmd.current_dir(self.dir.path());
        self.run_kiln(cmd, args, env)
    }

    /// Runs `cmd` (a kiln, however started, in the directory it names) with
    /// `args` the way [`Sandbox::kiln_env`] does: this sandbox's store, a
    /// clean environment, and `env` last, so it can override both.
    pub fn run_kiln(&self, mut cmd: Command, args: &[&str], env: &[(&str, &str)]) -> Run {
        cmd.args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .env("KILN_STORE", self.store());
        // Tests talk to registries on this machine only: anything else
        // (`FROM alpine` reaching for docker.io) goes to a closed port.
        for var in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
            cmd.env(var, "http://127.0.0.1:9");
            cmd.env(var.to_ascii_lowercase(), "http://127.0.0.1:9");
        }
        cmd.env("NO_PROXY", "127.0.0.1,localhost,::1")
            .env("no_proxy", "127.0.0.1,localhost,::1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running kiln");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Builds `context` quietly with extra args; returns the image id.
    #[track_caller]
    pub fn build(&self, context: &str, extra: &[&str]) -> String {
        let mut args = vec!["build", "-q"];
        args.extend_from_slice(extra);
        args.push(context);
        self.kiln(&args).ok().stdout.trim().to_string()
    }

    /// Unpacks `reference` from the store with umoci into `bundle/`;
    /// returns the bundle directory.
    pub fn umoci_unpack(&self, reference: &str) -> PathBuf {
        let bundle = self.path("bundle");
        let _ = fs::remove_dir_all(&bundle);
        tool(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:{reference}", self.store().display()),
                bundle.to_str().unwrap(),
            ],
        );
        bundle
    }

    /// What `examples/build.sh` does, inside the sandbox: copies the
    /// examples to `examples/` (without build outputs), puts the wasm
    /// programs that `build.rs` built into their `bin/` directories, and
    /// builds the `toolbox` image into this sandbox's store.
    pub fn examples(&self) -> PathBuf {
        let to = self.example_files();
        self.kiln(&["build", "-q", "-t", "toolbox", "examples/toolbox"])
            .ok();
        to
    }

    /// The first half of [`Sandbox::examples`]: the files, no image.
    pub fn example_files(&self) -> PathBuf {
        let to = self.path("examples");
        copy_tree(&workspace().join("examples"), &to);
        for (program, dest) in [
            (env!("KILN_TOOLBOX"), "toolbox/bin/toolbox.wasm"),
            (env!("KILN_NPM_INSTALL"), "npm-token/bin/npm-install.wasm"),
            (
                env!("KILN_NPM_INSTALL_HTTP"),
                "npm-token/bin/npm-install-http.wasm",
            ),
            (
                env!("KILN_ASSET_MANIFEST"),
                "plugin-step/bin/asset-manifest.wasm",
            ),
        ] {
            let dest = to.join(dest);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(program, dest).unwrap();
        }
        to
    }

    /// `kiln inspect` parsed.
    pub fn inspect(&self, image: &str) -> serde_json::Value {
        let out = self.kiln(&["inspect", image]).ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v[0].clone()
    }
}

/// Copies the files of `from` to `to`, leaving out build outputs (`bin`,
/// `target`), the examples' Rust crates that are not build contexts and
/// downloaded tools (`tools` beside a `fetch.sh`: `examples/fpga`'s are
/// 190 MB, and its test builds from the checkout).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let rust_crate = path.join("Cargo.toml").is_file() && !path.join("Kilnfile").is_file();
        let downloaded = name == "tools" && from.join("fetch.sh").is_file();
        if ["bin", "target"].contains(&name.as_str()) || rust_crate || downloaded {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Runs an outside tool and returns its output; panics if it fails.
#[track_caller]
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed by this test (.ci/run installs it): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout + &stderr
}

/// Every entry of a tar (gzip/zstd-free), as (path, type char, mode, contents).
pub fn tar_entries(bytes: &[u8]) -> Vec<(String, char, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(bytes);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let kind = match e.header().entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            _ => 'f',
        };
        let mode = e.header().mode().unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        out.push((path, kind, mode, body));
    }
    out
}

/// The uncompressed tar of a layer blob in a store.
pub fn layer_tar(store: &Path, digest: &str, media_type: &str) -> Vec<u8> {
    let blob = fs::read(
        store
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    if media_type.ends_with("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else if media_type.ends_with("zstd") {
        zstd::decode_all(&blob[..]).unwrap()
    } else {
        blob
    }
}

/// A loopback port nobody listens on now (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The log a test's server writes to `path`, empty until it exists.
pub fn read_server_log(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}
