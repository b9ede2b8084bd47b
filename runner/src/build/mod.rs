//! The builder: runs a Kilnfile's stages against snapshots and writes the
//! resulting image into the store.
//!
//! [`build`] reads and parses the Kilnfile, picks the target stage and the
//! stages it needs (`FROM <stage>`), and dispatches each stage's
//! instructions in order (`dispatch.rs`): metadata instructions change the
//! image config, COPY (`copy.rs`) and WORKDIR produce layers through
//! [`crate::layer`]. Each instruction that shows in `docker history` gets a
//! history entry with a BuildKit-like `created_by`.
//!
//! All output goes through the [`Progress`] trait: the library never prints.
//! Timestamps come from `SOURCE_DATE_EPOCH` (build arg or environment) or
//! are 0, so the same inputs give the same image digest on every host.

pub use output::{BuildIndexOutput, build_platforms, parse_platforms};
pub use pull::Registries;
pub(crate) use run::masked;

mod cache;
pub mod cache_dir;
pub mod cache_format;
pub mod cache_registry;
mod cache_spec;
mod commit;
mod copy;
mod copy_ahead;
mod copy_source;
mod definition;
mod dispatch;
mod lint;
mod mounts;
mod output;
mod pull;
mod reuse;
mod run;
mod stages;
mod steps;
mod users;

pub use cache_spec::{CacheLocation, CacheTo, parse_cache_from};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use steps::Steps;

use crate::context::{Context, ContextError};
use crate::frontend::{Diagnostic, Kilnfile};
use crate::image::{Image, ImageError, Platform};
use crate::layer::{Compression, LayerError};
use crate::snapshot::Snapshot;
use crate::store::{Descriptor, Store, StoreError};

/// What to build and how.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// The Kilnfile to read.
    pub kilnfile: PathBuf,
    /// How the Kilnfile is named in messages.
    pub kilnfile_name: String,
    /// The build context directory.
    pub context: PathBuf,
    /// `--build-arg` values, in order (a later one wins).
    pub build_args: Vec<(String, String)>,
    /// `--target`: the stage to build (default: the last).
    pub target: Option<String>,
    /// `--platform`: the image platform (default: the base image's, or
    /// `wasi/wasm` for `FROM scratch`).
    pub platform: Option<Platform>,
    /// Names to tag the image with, normalized (`name:tag`).
    pub tags: Vec<String>,
    /// Layer compression.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH` from the environment (a build arg overrides it).
    pub source_date_epoch: Option<i64>,
    /// Limits of each RUN step.
    pub step_limits: crate::exec::StepLimits,
    /// Set by Ctrl-C: the running step stops and the build fails cleanly.
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The `--secret` values, in memory.
    pub secrets: std::sync::Arc<crate::secrets::SecretStore>,
    /// What the leak guard does when it finds a secret in the image.
    pub secret_scan: SecretScan,
    /// `--no-cache`: run every step (their results still go into the cache).
    pub no_cache: bool,
    /// `--no-cache-filter`: stages (by name, or index) that run every step.
    pub no_cache_filter: Vec<String>,
    /// `--cache-from`: caches to import entries from (directories,
    /// registry references).
    pub cache_from: Vec<CacheLocation>,
    /// `--cache-to`: where to export the build's cache.
    pub cache_to: Option<CacheTo>,
    /// `--jobs`: how many stages may build at once (default: the cores).
    pub jobs: Option<usize>,
    /// `--pull`: ask the registry for the current manifest of every tagged
    /// image reference, even when the store has the name.
    pub pull: bool,
    /// How registries are reached (a session is made only when needed).
    pub registries: std::sync::Arc<Registries>,
    /// Where to push the image once it is built and named.
    pub push: Vec<crate::registry::Reference>,
    /// `--allow-net` and `--ca-cert`: the network of `RUN --network=default`.
    pub network: crate::network::NetworkOptions,
}

/// `--secret-scan`: what the leak guard does when a layer or the image
/// config contains a secret (raw, hex or base64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretScan {
    /// Fail the build, naming the file and the secret id.
    #[default]
    Error,
    /// Warn and go on.
    Warn,
    /// Do not scan.
    Off,
}

/// A finished build.
#[derive(Debug)]
pub struct BuildOutput {
    /// The image, as stored.
    pub image: Image,
    /// Its filesystem.
    pub snapshot: Snapshot,
    /// The names it was tagged with.
    pub tags: Vec<String>,
    /// The epoch used for timestamps.
    pub epoch: i64,
    /// What was pushed where (`BuildOptions::push`), in order.
    pub pushed: Vec<(crate::registry::Reference, crate::registry::push::Pushed)>,
}

/// One progress event. Steps are numbered like BuildKit's plain output.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Step `id` started; `name` is what it does (`[2/4] COPY a /b`).
    Start {
        /// Step number.
        id: usize,
        /// What it does.
        name: &'a str,
    },
    /// A line of detail for step `id`.
    Log {
        /// Step number.
        id: usize,
        /// The line.
        text: &'a str,
    },
    /// Step `id` finished.
    Done {
        /// Step number.
        id: usize,
        /// How long it took.
        elapsed: Duration,
    },
    /// Step `id` was not run: the step cache had its result.
    Cached {
        /// Step number.
        id: usize,
    },
    /// Step `id` failed.
    Failed {
        /// Step number.
        id: usize,
        /// How long it ran.
        elapsed: Duration,
    },
    /// Something the user should know that does not stop the build.
    Warning(&'a str),
}

/// Where the builder reports progress. The CLI's printer implements it.
pub trait Progress: Sync {
    /// Reports one event.
    fn event(&self, event: Event<'_>);
}

/// A [`Progress`] that discards everything.
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: Event<'_>) {}
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A problem at a place in the Kilnfile.
    #[error("{0}")]
    Kilnfile(Box<Diagnostic>),
    /// Options that do not fit the Kilnfile (an unknown `--target`...).
    #[error("{0}")]
    Usage(String),
    /// The Kilnfile could not be read.
    #[error("cannot read {path}: {source}")]
    ReadKilnfile {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The context failed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An image could not be loaded or written.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A RUN step failed: its exit code, trap or limit, and its stderr.
    #[error("{step}: {message}{}", if stderr.is_empty() { String::new() } else { format!("\n--- stderr (last lines) ---\n{stderr}") })]
    Step {
        /// The step, as shown in progress.
        step: String,
        /// What happened.
        message: String,
        /// The end of the step's stderr.
        stderr: String,
    },
    /// A stage this one needs failed; its own error is reported.
    #[error("stage {0:?} was not built: a stage it needs failed")]
    DependencyFailed(String),
    /// Ctrl-C.
    #[error("cancelled")]
    Cancelled,
    /// The wasm engine could not start.
    #[error("starting the wasm engine: {0}")]
    Engine(String),
    /// Pushing the image failed.
    #[error("pushing {target}: {source}")]
    Push {
        /// Where to.
        target: String,
        /// Why.
        #[source]
        source: crate::registry::RegistryError,
    },
    /// A layer could not be written.
    #[error("{step}: {source}")]
    Layer {
        /// The instruction, as shown in progress.
        step: String,
        /// The cause.
        #[source]
        source: LayerError,
    },
}

impl From<Diagnostic> for BuildError {
    fn from(d: Diagnostic) -> Self {
        BuildError::Kilnfile(Box::new(d))
    }
}

impl BuildError {
    /// Whether the user's invocation (not the build) was wrong.
    pub fn is_usage(&self) -> bool {
        matches!(self, BuildError::Usage(_))
    }
}

/// Everything a stage needs from the build as a whole.
struct Build<'a> {
    store: &'a Store,
    kilnfile: &'a Kilnfile,
    context: &'a Context,
    opts: &'a BuildOptions,
    steps: Steps<'a>,
    /// Build args given on the command line (last one wins).
    build_args: BTreeMap<String, String>,
    /// Which build args some ARG declared.
    consumed: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Global ARG values (after build-arg overrides), for FROM and redeclaration.
    global_args: Vec<(String, Option<String>)>,
    /// Timestamps of everything written.
    epoch: i64,
    /// Whether `SOURCE_DATE_EPOCH` was given: steps then see a virtual
    /// clock starting at `epoch` and seeded random bytes.
    reproducible: bool,
    /// Each stage's state, by index (see `stages.rs`).
    stages: std::sync::Mutex<BTreeMap<usize, stages::Slot>>,
    /// Signalled when a stage finishes.
    stage_done: std::sync::Condvar,
    /// The wasm engine, started by the first RUN.
    engine: std::sync::OnceLock<crate::exec::Engine>,
    /// The `--cache-from` caches.
    cache_from: Vec<Box<dyn cache_format::CacheSource>>,
    /// Keys, digests and HMACs the cache computes once per build.
    memo: std::sync::Mutex<cache::Memo>,
    /// The cache key of every layer step of this build, with its stage.
    keys: std::sync::Mutex<Vec<(usize, crate::digest::Digest)>>,
    /// The `UndefinedVar` warnings given so far.
    undefined: lint::UndefinedVars,
    /// Searches for the build's secrets (leak guard and output masking).
    scanner: Option<std::sync::Arc<crate::secrets::LeakScanner>>,
    /// Images looked up (and pulled) by this build, by name and platform.
    pulled: pull::Pulled,
    /// `linux/amd64` in step names when one build makes several platforms.
    label: Option<String>,
}

impl Build<'_> {
    /// The leak guard for layers, unless `--secret-scan=off`.
    fn guard(&self) -> Option<crate::layer::LeakGuard> {
        if self.opts.secret_scan == SecretScan::Off {
            return None;
        }
        Some(crate::layer::LeakGuard {
            scanner: self.scanner.clone()?,
            fail: self.opts.secret_scan == SecretScan::Error,
        })
    }

    /// Checks the image config (history, env, labels...) for secrets.
    fn scan_config(&self, config: &oci_spec::image::ImageConfiguration) -> Result<(), BuildError> {
        let (Some(guard), json) = (self.guard(), crate::json::canonical(config)) else {
            return Ok(());
        };
        if let Some(hit) = guard.scanner.find(&json) {
            let message = format!(
                "the image config (its history, environment or labels) contains secret {:?} ({})",
                hit.id, hit.encoding
            );
            if guard.fail {
                return Err(BuildError::Step {
                    step: "exporting to image".into(),
                    message: format!(
                        "{message}: the build stops so it is never published (--secret-scan=warn|off to override)"
                    ),
                    stderr: String::new(),
                });
            }
            self.steps.warn(&message);
        }
        Ok(())
    }

    /// The wasm engine (started on first use).
    fn engine(&self) -> Result<&crate::exec::Engine, BuildError> {
        if let Some(e) = self.engine.get() {
            return Ok(e);
        }
        let e = crate::exec::Engine::new().map_err(|e| BuildError::Engine(format!("{e:#}")))?;
        Ok(self.engine.get_or_init(|| e))
    }
}

/// Runs a build.
pub fn build(
    store: &Store,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildOutput, BuildError> {
    let steps = Steps::new(progress);
    let (kilnfile, context) = definition::load(store, opts, &steps)?;
    let built = build_loaded(store, opts, steps, &kilnfile, &context, None);
    let steps = Steps::new(progress);
    definition::save_stat_cache(store, &context, &steps);
    let mut output = built?;
    steps.skip_to(output.last_step + 1);
    output.out.pushed = output::push_all(store, opts, &steps, &output.out.image.descriptor)?;
    Ok(output.out)
}

/// A build's result and the number of its last step.
struct Loaded {
    out: BuildOutput,
    last_step: usize,
}

/// Builds the image of a loaded Kilnfile, named `opts.tags` (not pushed).
/// `label` (a platform) goes into step names.
fn build_loaded(
    store: &Store,
    opts: &BuildOptions,
    steps: Steps<'_>,
    kilnfile: &Kilnfile,
    context: &Context,
    label: Option<String>,
) -> Result<Loaded, BuildError> {
    for stage in &opts.no_cache_filter {
        let known = kilnfile
            .stages
            .iter()
            .any(|s| s.name.as_deref() == Some(stage) || s.index.to_string() == *stage);
        if !known {
            return Err(BuildError::Usage(format!(
                "--no-cache-filter {stage:?}: no such stage in {} (name a stage, or give its index from 0)",
                opts.kilnfile_name
            )));
        }
    }
    let build_args: BTreeMap<String, String> = opts.build_args.iter().cloned().collect();
    let epoch =
        match build_args.get("SOURCE_DATE_EPOCH") {
            Some(v) => Some(parse_epoch(v).map_err(|e| {
                BuildError::Usage(format!("--build-arg SOURCE_DATE_EPOCH={v}: {e}"))
            })?),
            None => opts.source_date_epoch,
        };
    let cache_from = cache_spec::open_sources(opts, &steps)?;
    let reproducible = epoch.is_some();
    let epoch = epoch.unwrap_or(0);
    let mut b = Build {
        store,
        kilnfile,
        context,
        opts,
        steps,
        build_args,
        consumed: Default::default(),
        global_args: Vec::new(),
        epoch,
        reproducible,
        stages: Default::default(),
        stage_done: Default::default(),
        cache_from,
        keys: Default::default(),
        memo: Default::default(),
        undefined: Default::default(),
        engine: Default::default(),
        scanner: crate::secrets::LeakScanner::new(opts.secrets.all().map(|s| &**s))
            .map(std::sync::Arc::new),
        pulled: Default::default(),
        label,
    };
    b.global_args = b.resolve_global_args()?;

    let target = match &opts.target {
        Some(name) => {
            kilnfile
                .stage(name)
                .ok_or_else(|| {
                    let names: Vec<&str> = kilnfile
                        .stages
                        .iter()
                        .filter_map(|s| s.name.as_deref())
                        .collect();
                    BuildError::Usage(format!(
                        "--target {name:?}: no such stage in {}; the stages are {}",
                        opts.kilnfile_name,
                        if names.is_empty() {
                            "unnamed (use FROM ... AS name)".to_string()
                        } else {
                            names.join(", ")
                        }
                    ))
                })?
                .index
        }
        None => kilnfile.stages.len() - 1,
    };
    let result = b.build_target(target)?;

    let unused: Vec<&String> = b
        .build_args
        .keys()
        .filter(|k| {
            !b.consumed.lock().expect("args lock").contains(*k) && !dispatch::is_predefined_arg(k)
        })
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        b.steps.warn(&format!(
            "build-arg {} not consumed: no ARG in the built stages declares {}",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" }
        ));
    }

    let export_name = match &b.label {
        Some(l) => format!("[{l}] exporting to image"),
        None => "exporting to image".to_string(),
    };
    let output = b.steps.run(&export_name, |id| {
        b.scan_config(&result.config)?;
        let manifest = crate::image::write_image(store, &result.config, &result.layers)?;
        // Names move only to an image that reads back whole: a damaged
        // blob that survived the write would fail here, not after tagging.
        let image = Image::load(store, &manifest, None)?;
        image.check_layers_present(store)?;
        b.steps
            .log(id, &format!("writing image {} done", manifest.digest));
        // One platform of several: the index names it, not the store.
        if b.label.is_none() || !opts.tags.is_empty() {
            store.add_image(&manifest, &opts.tags)?;
        }
        for tag in &opts.tags {
            b.steps.log(id, &format!("naming to {tag} done"));
        }
        Ok::<_, BuildError>(BuildOutput {
            image,
            snapshot: result.snapshot,
            tags: opts.tags.clone(),
            epoch,
            pushed: Vec::new(),
        })
    })?;
    if let Some(to) = &opts.cache_to {
        b.export_cache(to, target)?;
    }
    Ok(Loaded {
        out: output,
        last_step: b.steps.last(),
    })
}

/// Parses a `SOURCE_DATE_EPOCH` value: whole seconds since 1970, >= 0.
pub fn parse_epoch(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0 && *v < 253_402_300_800)
        .ok_or_else(|| "expected whole seconds since 1970-01-01 (like 1700000000)".to_string())
}

/// Formats a byte count the way docker does (`1.5kB`, `12MB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else if value >= 100.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{:.3}", value)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[unit]
    }
}

/// The image being built by one stage.
#[derive(Clone, Debug)]
struct StageResult {
    snapshot: Snapshot,
    config: oci_spec::image::ImageConfiguration,
    layers: Vec<Descriptor>,
    /// The step cache key of its filesystem.
    key: crate::digest::Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes_like_docker() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(1500), "1.5kB");
        assert_eq!(human_bytes(12_340_000), "12.34MB");
        assert_eq!(human_bytes(123_456_789), "123MB");
    }

    #[test]
    fn epochs_are_whole_non_negative_seconds() {
        assert_eq!(parse_epoch("1700000000").unwrap(), 1_700_000_000);
        assert!(parse_epoch("-1").is_err());
        assert!(parse_epoch("1.5").is_err());
        assert!(parse_epoch("soon").is_err());
    }
}
