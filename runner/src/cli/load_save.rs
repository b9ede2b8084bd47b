//! `kiln load` and `kiln save`: docker's archive commands.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result};
use clap::Args;

use super::UsageError;
use super::printer::Printer;
use crate::export::{ArchiveFormat, Dest, SavedImage, write_archive};
use crate::image::Image;
use crate::store::{Store, normalize_name};

/// `kiln load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read the archive from FILE instead of standard input: a `docker save` archive or an OCI
    /// archive, possibly gzip or zstd compressed
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Accepted for docker compatibility: kiln shows no progress while loading
    #[arg(short, long)]
    pub quiet: bool,
}

/// `kiln save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write the archive to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The archive's format
    #[arg(long, value_enum, default_value_t = ArchiveFormat::Docker, value_name = "FORMAT")]
    pub format: ArchiveFormat,
    /// The images: NAME[:TAG], or ids (prefixes); saved by id, an image has no name in the
    /// archive
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub(super) fn load(
    store: &Store,
    args: LoadArgs,
    printer: &Printer,
    cancel: &AtomicBool,
) -> Result<ExitCode> {
    let _lock = store.lock_shared()?;
    let loaded = match &args.input {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            crate::load::load(store, file, cancel)
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => {
            if std::io::stdin().is_terminal() {
                return Err(UsageError(
                    "kiln load reads an archive from standard input, which is a terminal: \
                     pipe one in (docker save IMAGE | kiln load) or pass -i FILE"
                        .into(),
                )
                .into());
            }
            crate::load::load(store, std::io::stdin().lock(), cancel)
                .context("loading standard input")?
        }
    };
    for image in loaded {
        if image.names.is_empty() {
            printer.out(&format!("Loaded image ID: {}", image.id));
        }
        for name in image.names {
            printer.out(&format!("Loaded image: {name}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn save(store: &Store, args: SaveArgs, printer: &Printer) -> Result<ExitCode> {
    let dest = match &args.output {
        Some(p) if p.as_os_str() != "-" => Dest::Path(p.clone()),
        _ => {
            if std::io::stdout().is_terminal() {
                return Err(UsageError(
                    "refusing to write an archive to a terminal: pass -o FILE or redirect \
                     standard output (kiln save IMAGE > FILE, or | docker load)"
                        .into(),
                )
                .into());
            }
            Dest::Stdout
        }
    };
    let tagged = store.images()?;
    let mut images: Vec<SavedImage> = Vec::new();
    for reference in &args.images {
        let descriptor = store.resolve(reference)?;
        let image = Image::load(store, &descriptor, None)?;
        // By name, the archive carries that name; by id, none (as docker).
        let name = normalize_name(reference).ok().filter(|n| {
            tagged.iter().any(|i| {
                i.name.as_deref() == Some(n.as_str()) && i.manifest.digest == descriptor.digest
            })
        });
        let name = name.or_else(|| {
            tagged
                .iter()
                .find(|i| i.name.as_deref() == Some(reference.as_str()))
                .and_then(|i| i.name.clone())
        });
        match images
            .iter_mut()
            .find(|s| s.image.descriptor.digest == image.descriptor.digest)
        {
            Some(saved) => saved
                .names
                .extend(name.filter(|n| !saved.names.contains(n))),
            None => images.push(SavedImage {
                image,
                names: name.into_iter().collect(),
            }),
        }
    }
    write_archive(store, &images, &dest, args.format)?;
    if let Dest::Path(p) = &dest {
        printer.status(&format!(
            "saved {} image(s) to {}",
            images.len(),
            p.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
