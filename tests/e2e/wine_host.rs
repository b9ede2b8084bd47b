//! The Windows build of kiln (`kiln.exe`) run under Wine, for `wine.rs`.
//!
//! `.ci/run` cross-builds kiln.exe and names it in `KILN_WINDOWS_EXE`. The
//! harness builds the stub `bcryptprimitives.dll` that Rust programs need
//! under Wine 8 (`tests/wine/bcryptprimitives.c` says why) with
//! x86_64-w64-mingw32-gcc, puts it beside a copy of kiln.exe, and makes one
//! Wine prefix for every test of the run (in the target directory, so a
//! second run skips `wineboot`). Sandboxes live on the prefix's `C:` drive,
//! so kiln.exe is given `C:\...` paths and its store is on the Wine drive.
//!
//! In CI (`CI` set) a missing kiln.exe, Wine or MinGW fails the tests;
//! elsewhere the tests are skipped with the reason printed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use crate::util::{Run, Sandbox, workspace};

/// Where Debian's wine64 package puts the 64-bit loader (not on PATH).
const DEBIAN_WINE64: &str = "/usr/lib/wine/wine64";

/// A ready Wine prefix and the kiln.exe to run in it.
pub struct Wine {
    wine: PathBuf,
    prefix: PathBuf,
    exe: PathBuf,
}

static WINE: OnceLock<Result<Wine, String>> = OnceLock::new();

/// The Wine set-up, made once per test run; `None` (with the reason
/// printed) when it cannot be made outside CI.
#[allow(clippy::print_stderr)] // a skipped test says why, in the test's output
pub fn wine() -> Option<&'static Wine> {
    match WINE.get_or_init(setup) {
        Ok(w) => Some(w),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}: CI runs the Windows tests (.ci/run builds kiln.exe and installs wine64)")
        }
        Err(why) => {
            eprintln!("skipping a Wine test: {why}");
            None
        }
    }
}

#[allow(clippy::print_stderr)] // how long wineboot took, in the test's output
fn setup() -> Result<Wine, String> {
    let exe = std::env::var_os("KILN_WINDOWS_EXE")
        .map(PathBuf::from)
        .ok_or("KILN_WINDOWS_EXE (the path of kiln.exe) is not set")?;
    if !exe.is_file() {
        return Err(format!("KILN_WINDOWS_EXE={} is not a file", exe.display()));
    }
    let wine = find_wine().ok_or("no Wine (wine64) on this machine")?;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wine");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("creating {}: {e}", bin.display()))?;
    std::fs::copy(&exe, bin.join("kiln.exe"))
        .map_err(|e| format!("copying {}: {e}", exe.display()))?;
    let dll = bin.join("bcryptprimitives.dll");
    let source = workspace().join("tests/wine/bcryptprimitives.c");
    let gcc = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(&dll)
        .arg(&source)
        .arg("-ladvapi32")
        .output()
        .map_err(|e| format!("x86_64-w64-mingw32-gcc (gcc-mingw-w64-x86-64): {e}"))?;
    if !gcc.status.success() {
        return Err(format!(
            "building {}: {}",
            dll.display(),
            String::from_utf8_lossy(&gcc.stderr)
        ));
    }
    let w = Wine {
        wine,
        prefix: root.join("prefix"),
        exe: bin.join("kiln.exe"),
    };
    let started = Instant::now();
    let boot = w.command().args(["wineboot", "--init"]).output();
    match boot {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "wineboot failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Err(e) => return Err(format!("running {}: {e}", w.wine.display())),
    }
    eprintln!(
        "Wine prefix {} ready in {:.1}s",
        w.prefix.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(w)
}

/// wine64 where Debian puts it, or on PATH.
fn find_wine() -> Option<PathBuf> {
    let debian = PathBuf::from(DEBIAN_WINE64);
    if debian.is_file() {
        return Some(debian);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("wine64"))
        .find(|p| p.is_file())
}

impl Wine {
    /// A wine64 command in the prefix: quiet, headless, and without the
    /// Mono and Gecko installers a first `wineboot` would offer.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.wine);
        cmd.env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("DISPLAY", "")
            .env_remove("WAYLAND_DISPLAY");
        cmd
    }

    /// The prefix's `C:` drive, on this side.
    pub fn drive_c(&self) -> PathBuf {
        self.prefix.join("drive_c")
    }

    /// A sandbox on the `C:` drive.
    pub fn sandbox(&self) -> Sandbox {
        Sandbox::new_in(&self.drive_c().join("kiln-tests"))
    }

    /// `path` (under [`Wine::drive_c`]) as kiln.exe sees it: `C:\...`.
    pub fn windows_path(&self, path: &Path) -> String {
        let rel = path
            .strip_prefix(self.drive_c())
            .unwrap_or_else(|_| panic!("{} is not on the C: drive", path.display()));
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        format!("C:\\{}", parts.join("\\"))
    }

    /// Runs kiln.exe in `sb`'s directory with `sb`'s store (as a `C:\`
    /// path) and `env`.
    pub fn kiln(&self, sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.kiln_in(sb, "", args, env)
    }

    /// [`Wine::kiln`] in the sandbox's subdirectory `cwd`.
    pub fn kiln_in(&self, sb: &Sandbox, cwd: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.arg(&self.exe).current_dir(sb.path(cwd));
        let store = self.windows_path(&sb.store());
        let mut all = vec![("KILN_STORE", store.as_str())];
        all.extend_from_slice(env);
        sb.run_kiln(cmd, args, &all)
    }

    /// Starts kiln.exe in `sb` with `env` and its stderr piped, for a test
    /// that interrupts it.
    pub fn spawn_kiln(&self, sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Child {
        self.command()
            .arg(&self.exe)
            .args(args)
            .current_dir(sb.path(""))
            .env("KILN_STORE", self.windows_path(&sb.store()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kiln.exe under Wine")
    }

    /// `kiln inspect NAME` by kiln.exe, parsed.
    pub fn inspect(&self, sb: &Sandbox, name: &str) -> serde_json::Value {
        let out = self.kiln(sb, &["inspect", name], &[]).ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v[0].clone()
    }
}
