//! `kiln publish`: a wasm step program to a registry, as a wasm OCI
//! artifact (see [`crate::registry::wasm_artifact`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result};
use clap::Args;

use super::UsageError;
use super::printer::{Printer, ProgressMode};
use super::registry::RegistryFlags;
use super::transfers::TransferView;
use crate::registry::{self, Reference, wasm_artifact};
use crate::store::Store;

/// `kiln publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The program: a wasm module (wasip1) or component (wasip2)
    #[arg(value_name = "MODULE")]
    pub module: PathBuf,
    /// Where to publish it: [REGISTRY/]NAME:TAG, like localhost:5000/steps/tool:1
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Add an annotation to the artifact's manifest; repeatable
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// How to show progress
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE")]
    pub progress: ProgressMode,
    /// Print only the published reference and digest
    #[arg(short, long)]
    pub quiet: bool,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

pub(super) fn publish(
    store: &Store,
    args: PublishArgs,
    flags: &RegistryFlags,
    printer: &Printer,
    cancel: Arc<AtomicBool>,
) -> Result<ExitCode> {
    let target = Reference::parse(&args.reference).map_err(|e| usage(e.to_string()))?;
    if target.tag().is_none() || target.digest().is_some() {
        return Err(usage(format!(
            "{}: publish to a tag (NAME:TAG); the digest is what publishing gives",
            args.reference
        )));
    }
    let mut annotations = BTreeMap::new();
    for a in &args.annotations {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                annotations.insert(k.to_string(), v.to_string());
            }
            _ => return Err(usage(format!("--annotation {a:?}: expected KEY=VALUE"))),
        }
    }
    let created = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => crate::build::parse_epoch(&v)
            .map_err(|e| usage(format!("SOURCE_DATE_EPOCH={v} in the environment: {e}")))?,
        _ => 0,
    };
    let shown = args.module.display();
    let file = std::fs::File::open(&args.module).with_context(|| format!("reading {shown}"))?;
    let mut wasm = Vec::new();
    file.take(wasm_artifact::MAX_MODULE + 1)
        .read_to_end(&mut wasm)
        .with_context(|| format!("reading {shown}"))?;
    if wasm.len() as u64 > wasm_artifact::MAX_MODULE {
        anyhow::bail!(
            "{shown} is larger than kiln publishes ({} bytes)",
            wasm_artifact::MAX_MODULE
        );
    }
    wasm_artifact::inspect(&wasm).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let title = args
        .module
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (artifact, info) = wasm_artifact::write(store, &wasm, &title, created, &annotations)?;
    let session = flags.session(cancel)?;
    let view = TransferView::new(printer);
    let pushed = registry::push::push(&session, store, &artifact, &target, &view)?;
    let pinned = target.with_digest(pushed.digest);
    // The publisher can use it by digest at once, as a pull would give it.
    let mut image = wasm_artifact::to_image(store, &artifact)?;
    wasm_artifact::set_source(&mut image, &pinned);
    store.add_image(&image, &[])?;
    if !printer.is_quiet() {
        printer.status(&format!(
            "{target}: a wasm {} ({}), digest: {} ({} uploaded)",
            if info.component {
                "component"
            } else {
                "module"
            },
            info.os(),
            pushed.digest,
            crate::build::human_bytes(pushed.uploaded)
        ));
    }
    printer.out(&pinned.to_string());
    Ok(ExitCode::SUCCESS)
}
