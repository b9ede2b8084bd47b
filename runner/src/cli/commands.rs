//! One function per command: turn validated flags into library calls and
//! print the results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::printer::Printer;
use super::{BuildArgs, Cli, Command, ExportArgs, HistoryArgs, PruneArgs, RmiArgs, UsageError};
use crate::build::{self, BuildOptions, human_bytes};
use crate::export::{self, Dest, OutputKind, OutputSpec};
use crate::image::Image;
use crate::snapshot::{Change, Node};
use crate::store::{Store, normalize_name};

/// Runs a parsed command line.
pub(super) fn run(
    cli: Cli,
    printer: &Printer,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<ExitCode> {
    let store_dir = match cli.store {
        Some(dir) => dir,
        None => default_store()?,
    };
    let store = || {
        Store::open(&store_dir)
            .with_context(|| format!("opening the store at {}", store_dir.display()))
    };
    match cli.command {
        Command::Build(args) => build(&store()?, args, &cli.registry, printer, cancel),
        Command::Run(args) => super::run::run(&store()?, args, printer, cancel),
        Command::Images => super::images::images(&store()?, printer),
        Command::History(args) => history(&store()?, args, printer),
        Command::Inspect(args) => inspect(&store()?, &args.image, printer),
        Command::Export(args) => export_image(&store()?, args, printer),
        Command::Load(args) => super::load_save::load(&store()?, args, printer, &cancel),
        Command::Save(args) => super::load_save::save(&store()?, args, printer),
        Command::Rmi(args) => rmi(&store()?, args, printer),
        Command::Prune(args) => prune(&store()?, args, printer),
        Command::Check(args) => super::check::check(&store()?, args, printer),
        Command::Pull(args) => {
            super::registry::pull(&store()?, args, &cli.registry, printer, cancel)
        }
        Command::Push(args) => {
            super::registry::push(&store()?, args, &cli.registry, printer, cancel)
        }
        Command::Tag(args) => super::registry::tag(&store()?, args, printer),
        Command::Publish(args) => {
            super::publish::publish(&store()?, args, &cli.registry, printer, cancel)
        }
        Command::Login(args) => super::registry::login(args, &cli.registry, printer, cancel),
        Command::Logout(args) => super::registry::logout(args, &cli.registry, printer),
    }
}

/// `kiln` in the user's data directory.
fn default_store() -> Result<PathBuf> {
    let base = dirs::data_dir().ok_or_else(|| {
        UsageError(format!(
            "cannot find a data directory for the default store; pass --store DIR or set {}",
            super::STORE_ENV
        ))
    })?;
    Ok(base.join("kiln"))
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn build(
    store: &Store,
    args: BuildArgs,
    registry: &super::registry::RegistryFlags,
    printer: &Printer,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<ExitCode> {
    if args.load {
        return Err(usage(format!("--load: {}", export::NO_DAEMON)));
    }
    if !args.context.is_dir() {
        return Err(usage(format!(
            "the build context {} is not a directory",
            args.context.display()
        )));
    }
    let kilnfile = match &args.file {
        Some(f) if !f.is_file() => {
            return Err(usage(format!(
                "-f {}: no such file (the Kilnfile to build)",
                f.display()
            )));
        }
        Some(f) => f.clone(),
        None => ["Kilnfile", "Dockerfile"]
            .iter()
            .map(|n| args.context.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                usage(format!(
                    "no Kilnfile (or Dockerfile) in {}; pass one with -f FILE",
                    args.context.display()
                ))
            })?,
    };
    let mut build_args = Vec::new();
    for raw in &args.build_args {
        let (k, v) = match raw.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            // `--build-arg NAME` takes the value from the environment, as docker does.
            None => match std::env::var(raw) {
                Ok(v) => (raw.clone(), v),
                Err(_) => continue,
            },
        };
        if k.is_empty() {
            return Err(usage(format!("--build-arg {raw:?}: expected KEY=VALUE")));
        }
        build_args.push((k, v));
    }
    let mut tags = Vec::new();
    for t in &args.tags {
        tags.push(normalize_name(t).map_err(|e| usage(format!("-t {t}: {e}")))?);
    }
    let secrets = super::load_secrets(&args.secrets, args.secret_max_size, printer, &cancel)?;
    for s in secrets.all() {
        if s.len() < crate::secrets::MIN_SCAN_BYTES {
            printer.warn(&format!(
                "secret {:?} is shorter than {} bytes: too short to scan layers and output for",
                s.id(),
                crate::secrets::MIN_SCAN_BYTES
            ));
        }
    }
    let platforms = match &args.platform {
        Some(p) => build::parse_platforms(p).map_err(|e| usage(format!("--platform: {e}")))?,
        None => Vec::new(),
    };
    let output = match &args.output {
        Some(spec) => {
            OutputSpec::parse(spec).map_err(|e| usage(format!("--output {spec}: {e}")))?
        }
        None => OutputSpec::default(),
    };
    let push = super::build_push::push_targets(args.push, &output.kind, &args.tags)?;
    for name in super::build_push::output_names(&output.kind) {
        if !tags.contains(&name) {
            tags.push(name);
        }
    }
    if platforms.len() > 1 && !matches!(output.kind, OutputKind::Image { .. }) {
        return Err(usage(format!(
            "--output {}: a multi-platform build ({} platforms) goes into the store or a registry (type=image or type=registry); build one --platform to write it elsewhere",
            args.output.as_deref().unwrap_or_default(),
            platforms.len()
        )));
    }
    let mut cache_from = Vec::new();
    for spec in &args.cache_from {
        cache_from.push(
            build::parse_cache_from(spec)
                .map_err(|e| usage(format!("--cache-from {spec}: {e}")))?,
        );
    }
    let cache_to = match &args.cache_to {
        Some(spec) => Some(
            build::CacheTo::parse(spec).map_err(|e| usage(format!("--cache-to {spec}: {e}")))?,
        ),
        None => None,
    };
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            build::parse_epoch(&v)
                .map_err(|e| usage(format!("SOURCE_DATE_EPOCH={v} in the environment: {e}")))?,
        ),
        _ => None,
    };
    let opts = BuildOptions {
        kilnfile_name: display_path(&kilnfile),
        kilnfile,
        context: args.context.clone(),
        build_args,
        target: args.target.clone(),
        platform: match platforms.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        },
        tags,
        compression: output.compression,
        source_date_epoch,
        step_limits: args.limits.limits(),
        cancel,
        secrets: std::sync::Arc::new(secrets),
        secret_scan: args.secret_scan,
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        cache_from,
        cache_to,
        jobs: args.jobs.map(usize::from),
        pull: args.pull,
        registries: std::sync::Arc::new(build::Registries::new(registry.options())),
        push,
        network: args.net.options()?,
    };

    let _lock = store.lock_shared()?;
    if platforms.len() > 1 {
        let out = build::build_platforms(store, &opts, &platforms, printer)?;
        write_build_records(&args, &out.index, None, &out.tags)?;
        if printer.is_quiet() {
            printer.out(&out.index.digest.to_string());
        }
        for (target, pushed) in &out.pushed {
            printer.out(&format!("{target}@{}", pushed.digest));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let out = build::build(store, &opts, printer)?;
    let id = out.image.descriptor.digest;
    write_build_records(
        &args,
        &out.image.descriptor,
        Some(out.image.config_digest),
        &out.tags,
    )?;
    match &output.kind {
        OutputKind::Image { .. } => {}
        OutputKind::Oci { dest, tar } => {
            export::write_oci(store, &out.image, &out.tags, dest, *tar, out.epoch)?;
            status(
                printer,
                &format!(
                    "wrote OCI {} to {}",
                    if *tar { "archive" } else { "layout" },
                    dest_text(dest)
                ),
            );
        }
        OutputKind::Docker { dest } => {
            let saved = export::SavedImage {
                image: out.image.clone(),
                names: out.tags.clone(),
            };
            export::write_archive(store, &[saved], dest, export::ArchiveFormat::Docker)?;
            status(
                printer,
                &format!("wrote the docker archive to {}", dest_text(dest)),
            );
        }
        OutputKind::Tar { dest } => {
            export::write_fs_tar(store, &out.snapshot, dest)?;
            status(
                printer,
                &format!("wrote the filesystem tar to {}", dest_text(dest)),
            );
        }
        OutputKind::Local { dest } => {
            export::write_local(store, &out.snapshot, dest)?;
            status(
                printer,
                &format!("wrote the filesystem to {}", dest.display()),
            );
        }
    }
    if printer.is_quiet() {
        if writes_stdout(&output.kind) {
            // stdout carries the archive, and nothing after it.
            printer.status(&id.to_string());
        } else {
            printer.out(&id.to_string());
        }
    }
    for (target, pushed) in &out.pushed {
        printer.out(&format!("{target}@{}", pushed.digest));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether an output writes its archive to standard output.
fn writes_stdout(kind: &OutputKind) -> bool {
    matches!(
        kind,
        OutputKind::Oci {
            dest: Dest::Stdout,
            ..
        } | OutputKind::Docker { dest: Dest::Stdout }
            | OutputKind::Tar { dest: Dest::Stdout }
    )
}

/// Writes `--iidfile` and `--metadata-file`, when asked for: the image
/// (or index) `descriptor`, its config (an image's), its `tags`.
fn write_build_records(
    args: &BuildArgs,
    descriptor: &crate::store::Descriptor,
    config: Option<crate::digest::Digest>,
    tags: &[String],
) -> Result<()> {
    let id = descriptor.digest.to_string();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id)
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let mut meta = serde_json::json!({
            "containerimage.digest": id,
            "containerimage.descriptor": {
                "mediaType": descriptor.media_type,
                "digest": id,
                "size": descriptor.size,
            },
        });
        if let Some(config) = config {
            meta["containerimage.config.digest"] = config.to_string().into();
        }
        if !tags.is_empty() {
            meta["image.name"] = tags.join(",").into();
        }
        let text = serde_json::to_string_pretty(&meta).expect("json") + "\n";
        std::fs::write(path, text)
            .with_context(|| format!("writing --metadata-file {}", path.display()))?;
    }
    Ok(())
}

fn status(printer: &Printer, line: &str) {
    if !printer.is_quiet() {
        printer.status(line);
    }
}

fn dest_text(dest: &Dest) -> String {
    match dest {
        Dest::Stdout => "standard output".into(),
        Dest::Path(p) => p.display().to_string(),
    }
}

fn display_path(p: &Path) -> String {
    p.display().to_string()
}

/// Formats the time since `created` like docker (`2 minutes ago`); an
/// unknown time, or the epoch (what kiln writes without
/// `SOURCE_DATE_EPOCH`), is `N/A`, as docker shows a zero time.
pub(super) fn ago(created: Option<&str>) -> String {
    let Some(ts) = created_at(created) else {
        return "N/A".into();
    };
    let secs = jiff::Timestamp::now().as_second() - ts.as_second();
    if secs < 0 {
        return "in the future".into();
    }
    let (m, h, d) = (60, 3600, 86_400);
    let text = match secs {
        s if s < 1 => "Less than a second".to_string(),
        s if s < m => format!("{s} seconds"),
        s if s < 2 * m => "About a minute".to_string(),
        s if s < h => format!("{} minutes", s / m),
        s if s < 2 * h => "About an hour".to_string(),
        s if s < 2 * d => format!("{} hours", s / h),
        s if s < 14 * d => format!("{} days", s / d),
        s if s < 60 * d => format!("{} weeks", s / (7 * d)),
        s if s < 730 * d => format!("{} months", s / (30 * d)),
        s => format!("{} years", s / (365 * d)),
    };
    format!("{text} ago")
}

/// The time `created` says, unless it is missing or the epoch (or before).
pub(super) fn created_at(created: Option<&str>) -> Option<jiff::Timestamp> {
    created
        .and_then(|c| c.parse::<jiff::Timestamp>().ok())
        .filter(|t| t.as_second() > 0)
}

/// Lays out rows in columns separated by three spaces, like docker.
pub(super) fn table(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == cols {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 3));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

fn history(store: &Store, args: HistoryArgs, printer: &Printer) -> Result<ExitCode> {
    let descriptor = store.resolve(&args.image)?;
    let image = Image::load(store, &descriptor, None)?;
    let layers = image.layers()?;
    let history = image.config.history().clone().unwrap_or_default();
    // Sizes of non-empty history entries come from the layers, in order.
    let mut layer_sizes = layers.iter().map(|(_, diff_id)| {
        store
            .layer_index(diff_id)
            .ok()
            .flatten()
            .map(|changes| {
                changes
                    .values()
                    .map(|c| match c {
                        Change::Put(Node::File(_, f)) => f.size,
                        _ => 0,
                    })
                    .sum::<u64>()
            })
            .unwrap_or(0)
    });
    let mut rows: Vec<Vec<String>> = Vec::new();
    for h in &history {
        let size = if h.empty_layer().unwrap_or(false) {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let mut created_by = h.created_by().clone().unwrap_or_default();
        if !args.no_trunc && created_by.chars().count() > 45 {
            created_by = created_by.chars().take(44).collect::<String>() + "…";
        }
        rows.push(vec![
            "<missing>".into(),
            ago(h.created().as_deref()),
            created_by,
            super::images::docker_size(size),
            h.comment().clone().unwrap_or_default(),
        ]);
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top[0] = if args.no_trunc {
            descriptor.digest.to_string()
        } else {
            descriptor.digest.short()
        };
    }
    rows.insert(
        0,
        vec![
            "IMAGE".into(),
            "CREATED".into(),
            "CREATED BY".into(),
            "SIZE".into(),
            "COMMENT".into(),
        ],
    );
    for line in table(&rows) {
        printer.out(&line);
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(store: &Store, reference: &str, printer: &Printer) -> Result<ExitCode> {
    let descriptor = store.resolve(reference)?;
    let image = Image::load(store, &descriptor, None)?;
    let tags: Vec<String> = store
        .images()?
        .into_iter()
        .filter(|i| i.manifest.digest == descriptor.digest)
        .filter_map(|i| i.name)
        .collect();
    let doc = serde_json::json!([{
        "Id": descriptor.digest,
        "RepoTags": tags,
        "Created": image.config.created(),
        "Os": image.config.os().to_string(),
        "Architecture": image.config.architecture().to_string(),
        "Size": image.size(),
        "Manifest": serde_json::to_value(&image.manifest)?,
        "Config": serde_json::to_value(&image.config)?,
    }]);
    let mut text = serde_json::to_vec_pretty(&doc)?;
    text.push(b'\n');
    printer.out_raw(&text);
    Ok(ExitCode::SUCCESS)
}

fn export_image(store: &Store, args: ExportArgs, printer: &Printer) -> Result<ExitCode> {
    let descriptor = store.resolve(&args.image)?;
    let image = Image::load(store, &descriptor, None)?;
    let names: Vec<String> = match normalize_name(&args.image) {
        Ok(n)
            if store
                .images()?
                .iter()
                .any(|i| i.name.as_deref() == Some(n.as_str())) =>
        {
            vec![n]
        }
        _ => store
            .images()?
            .into_iter()
            .filter(|i| i.manifest.digest == descriptor.digest)
            .filter_map(|i| i.name)
            .collect(),
    };
    let epoch = image
        .config
        .created()
        .as_deref()
        .and_then(|c| c.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_second());
    let dest = if args.output.as_os_str() == "-" {
        Dest::Stdout
    } else {
        Dest::Path(args.output.clone())
    };
    export::write_oci(store, &image, &names, &dest, true, epoch)?;
    if dest != Dest::Stdout {
        printer.status(&format!(
            "wrote {} to {}",
            descriptor.digest,
            args.output.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn rmi(store: &Store, args: RmiArgs, printer: &Printer) -> Result<ExitCode> {
    let _lock = store.lock_shared()?;
    let mut failed = false;
    for reference in &args.images {
        match store.remove_image(reference) {
            Ok((names, digest, gone)) => {
                for n in names {
                    printer.out(&format!("Untagged: {n}"));
                }
                if gone {
                    printer.out(&format!("Deleted: {digest}"));
                }
            }
            Err(e) => {
                printer.error(&anyhow::Error::from(e));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn prune(store: &Store, args: PruneArgs, printer: &Printer) -> Result<ExitCode> {
    let only_mounts = args.cache_mounts || args.filter.is_some();
    let report = if only_mounts {
        store.prune_cache_mounts()?
    } else {
        store.prune(crate::store::PruneOptions {
            untagged: args.all,
            all_cache: args.all,
            keep_storage: args.keep_storage,
            cache_mounts: args.all,
        })?
    };
    for problem in &report.problems {
        printer.warn(problem);
    }
    if only_mounts {
        printer.out(&format!("Deleted {} cache mount(s)", report.cache_mounts));
        printer.out(&format!(
            "Total reclaimed space: {}",
            human_bytes(report.bytes)
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let mut parts = Vec::new();
    if args.all {
        parts.push(format!("{} untagged image(s)", report.images));
    }
    parts.push(format!(
        "{} cache entr{}",
        report.cache_entries,
        if report.cache_entries == 1 {
            "y"
        } else {
            "ies"
        }
    ));
    parts.push(format!("{} blob(s)", report.blobs));
    parts.push(format!("{} file content(s)", report.files));
    parts.push(format!("{} other file(s)", report.other));
    if args.all {
        parts.push(format!("{} cache mount(s)", report.cache_mounts));
    }
    printer.out(&format!("Deleted {}", parts.join(", ")));
    printer.out(&format!(
        "Total reclaimed space: {}",
        human_bytes(report.bytes)
    ));
    Ok(ExitCode::SUCCESS)
}
