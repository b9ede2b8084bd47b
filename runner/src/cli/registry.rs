//! `kiln pull`, `push`, `tag`, `login` and `logout`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result};
use clap::Args;
use secrecy::SecretString;

use super::UsageError;
use super::printer::{Printer, ProgressMode};
use super::transfers::TransferView;
use crate::image::Platform;
use crate::registry::credentials::{AuthFile, Credential, Where};
use crate::registry::{self, Reference, RegistryOptions, Session, store_name};
use crate::store::Store;

/// How kiln reaches registries; global flags.
#[derive(Args, Debug, Clone)]
pub struct RegistryFlags {
    /// Allow plain HTTP, and TLS certificates kiln cannot verify, for this registry
    /// (HOST[:PORT]); repeatable. Loopback registries may always use plain HTTP
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Trust this CA certificate (a PEM file) for registries, besides the system's; repeatable
    #[arg(long = "registry-ca", global = true, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Push blobs larger than SIZE in chunks of 4 MiB, for registries or proxies that limit
    /// request sizes (bytes, or with a k/m/g suffix)
    #[arg(long, global = true, value_name = "SIZE", default_value = "512m", value_parser = super::parse_size_arg, allow_negative_numbers = true)]
    pub push_chunked_above: u64,
}

impl RegistryFlags {
    /// The session options these flags give.
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            insecure: self.insecure.clone(),
            ca_files: self.ca.clone(),
            chunked_above: self.push_chunked_above,
            ..RegistryOptions::default()
        }
    }

    /// A session with these flags.
    pub fn session(&self, cancel: Arc<AtomicBool>) -> Result<Session> {
        Ok(Session::new(self.options(), cancel)?)
    }
}

/// `kiln pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// The image: [REGISTRY/]NAME[:TAG][@DIGEST], like alpine, localhost:5000/app:1
    pub reference: String,
    /// The platform to take from a multi-platform image, OS/ARCH [default: wasi/wasm, else the
    /// only one, else linux/amd64]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// How to show progress
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE")]
    pub progress: ProgressMode,
    /// Print only the reference pulled
    #[arg(short, long)]
    pub quiet: bool,
}

/// `kiln push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The image in the store: NAME[:TAG], or an id (prefix)
    pub image: String,
    /// Where to push it: [REGISTRY/]NAME[:TAG] [default: the image's name]
    pub destination: Option<String>,
    /// How to show progress
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE")]
    pub progress: ProgressMode,
    /// Print only the pushed reference and digest
    #[arg(short, long)]
    pub quiet: bool,
}

/// `kiln tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// The image: NAME[:TAG], or an id (prefix)
    pub source: String,
    /// The new name: [REGISTRY/]NAME[:TAG]
    pub target: String,
}

/// `kiln login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry: HOST[:PORT] [default: docker.io]
    pub registry: Option<String>,
    /// The user name [default: asked on the terminal]
    #[arg(short, long, value_name = "USER")]
    pub username: Option<String>,
    /// Read the password (or token) from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

/// `kiln logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry: HOST[:PORT] [default: docker.io]
    pub registry: Option<String>,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn parse_reference(s: &str) -> Result<Reference> {
    Reference::parse(s).map_err(|e| usage(e.to_string()))
}

pub(super) fn pull(
    store: &Store,
    args: PullArgs,
    flags: &RegistryFlags,
    printer: &Printer,
    cancel: Arc<AtomicBool>,
) -> Result<ExitCode> {
    let reference = parse_reference(&args.reference)?;
    let platform = args
        .platform
        .as_deref()
        .map(Platform::parse)
        .transpose()
        .map_err(usage)?;
    mask_credentials(printer, flags, reference.registry());
    let session = flags.session(cancel)?;
    let names: Vec<String> = store_name(&reference).into_iter().collect();
    let view = TransferView::new(printer);
    let pulled = registry::pull::pull(
        &session,
        store,
        &reference,
        platform.as_ref(),
        &names,
        &view,
    )?;
    if !printer.is_quiet() {
        printer.status(&format!("Digest: {}", pulled.digest));
        printer.status(&format!(
            "{}: {} ({}, image id {})",
            reference,
            if pulled.fetched > 0 {
                format!("downloaded {}", crate::build::human_bytes(pulled.fetched))
            } else {
                "up to date".to_string()
            },
            pulled.platform,
            pulled.manifest.digest
        ));
        if registry::wasm_artifact::artifact_of(&pulled.manifest).is_some() {
            printer.status(&format!(
                "a wasm step: mount it pinned, as --mount=type=bind,from={},target=DIR",
                reference.with_digest(pulled.digest)
            ));
        }
    }
    printer.out(&reference.to_string());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn push(
    store: &Store,
    args: PushArgs,
    flags: &RegistryFlags,
    printer: &Printer,
    cancel: Arc<AtomicBool>,
) -> Result<ExitCode> {
    let destination = match &args.destination {
        Some(d) => parse_reference(d)?,
        None => {
            if matches!(
                crate::store::ImageRef::parse(&args.image),
                Ok(crate::store::ImageRef::Id(_))
            ) && Reference::parse(&args.image).is_err()
            {
                return Err(usage(format!(
                    "{} is an image id: say where to push it (kiln push {} REGISTRY/NAME[:TAG])",
                    args.image, args.image
                )));
            }
            parse_reference(&args.image)?
        }
    };
    if destination.tag().is_none() {
        return Err(usage(format!(
            "{destination}: push to a tag (NAME:TAG); a digest is what the push gives"
        )));
    }
    let image = resolve(store, &args.image)?;
    mask_credentials(printer, flags, destination.registry());
    let session = flags.session(cancel)?;
    let view = TransferView::new(printer);
    let pushed = registry::push::push(&session, store, &image, &destination, &view)?;
    if !printer.is_quiet() {
        printer.status(&format!(
            "{}: digest: {} size: {} ({} uploaded)",
            destination,
            pushed.digest,
            pushed.size,
            crate::build::human_bytes(pushed.uploaded)
        ));
    }
    printer.out(&format!("{destination}@{}", pushed.digest));
    Ok(ExitCode::SUCCESS)
}

/// The store image `name` names: as written, or by its registry reference's
/// short form (`docker.io/library/alpine:3` is `alpine:3` in the store).
fn resolve(store: &Store, name: &str) -> Result<crate::store::Descriptor> {
    match store.resolve(name) {
        Ok(d) => Ok(d),
        Err(first) => {
            let alias = Reference::parse(name).ok().as_ref().and_then(store_name);
            match alias.filter(|a| a != name) {
                Some(a) => store.resolve(&a).map_err(|_| first.into()),
                None => Err(first.into()),
            }
        }
    }
}

pub(super) fn tag(store: &Store, args: TagArgs, printer: &Printer) -> Result<ExitCode> {
    let target = parse_reference(&args.target)?;
    let name = store_name(&target).ok_or_else(|| {
        usage(format!(
            "{}: a tag names an image by NAME[:TAG]; a digest cannot be given to one",
            args.target
        ))
    })?;
    let image = resolve(store, &args.source)?;
    let mut plain = image.clone();
    plain.annotations = None;
    store.add_image(&plain, std::slice::from_ref(&name))?;
    let _ = printer;
    Ok(ExitCode::SUCCESS)
}

/// The registry a `login`/`logout` argument names: `HOST[:PORT]`, also
/// accepted as a URL (`https://host/v1/`), as docker does.
fn registry_host(arg: Option<&str>) -> Result<String> {
    let Some(arg) = arg else {
        return Ok(registry::reference::DOCKER_HUB.to_string());
    };
    let bare = arg
        .strip_prefix("https://")
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg);
    let host = bare.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(usage(format!(
            "{arg:?} is not a registry: expected HOST[:PORT], like ghcr.io or localhost:5000"
        )));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => registry::reference::DOCKER_HUB.to_string(),
        h => h.to_ascii_lowercase(),
    })
}

/// Masks the saved password for `host` in everything printed from now on,
/// in case a registry or a proxy echoes it in an error.
fn mask_credentials(printer: &Printer, flags: &RegistryFlags, host: &str) {
    use secrecy::ExposeSecret;
    if let Ok(Some(credential)) = auth_file(flags).get(host) {
        let secret = crate::secrets::Secret::new(
            "registry password",
            credential.secret.expose_secret().as_bytes().to_vec(),
        );
        if let Some(scanner) = crate::secrets::LeakScanner::new([&secret]) {
            printer.mask_secrets(Arc::new(scanner));
        }
    }
}

fn auth_file(flags: &RegistryFlags) -> AuthFile {
    match &flags.options().auth_file {
        Some(p) => AuthFile::at(p.clone()),
        None => AuthFile::locate(),
    }
}

pub(super) fn login(
    args: LoginArgs,
    flags: &RegistryFlags,
    printer: &Printer,
    cancel: Arc<AtomicBool>,
) -> Result<ExitCode> {
    let host = registry_host(args.registry.as_deref())?;
    let tty = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) if !u.is_empty() => u,
        Some(_) => return Err(usage("--username is empty")),
        None if tty && !args.password_stdin => {
            let mut stderr = std::io::stderr();
            let _ = std::io::Write::write_all(&mut stderr, b"Username: ");
            let _ = std::io::Write::flush(&mut stderr);
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the user name")?;
            line.trim().to_string()
        }
        None => return Err(usage("give the user name with --username USER")),
    };
    let mut password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
        while text.ends_with(['\n', '\r']) {
            text.pop();
        }
        text
    } else if tty {
        rpassword::prompt_password("Password: ").context("reading the password")?
    } else {
        return Err(usage(
            "standard input is not a terminal: pass the password on it with --password-stdin",
        ));
    };
    if password.is_empty() {
        return Err(usage("the password is empty"));
    }
    // From here on, the password is masked in anything kiln prints.
    let secret = crate::secrets::Secret::new("registry password", password.clone().into_bytes());
    if let Some(scanner) = crate::secrets::LeakScanner::new([&secret]) {
        printer.mask_secrets(Arc::new(scanner));
    }
    drop(secret);
    let credential = Credential {
        username,
        secret: SecretString::from(std::mem::take(&mut password)),
    };
    let session = flags.session(cancel)?;
    registry::login::verify(&session, &host, &credential)?;
    let saved = auth_file(flags).store(&host, &credential)?;
    let place = match &saved {
        Where::File(_) => saved.to_string(),
        Where::Helper(_) => format!("the credential helper {saved}"),
    };
    printer.status(&format!("credentials for {host} saved in {place}"));
    printer.out("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn logout(
    args: LogoutArgs,
    flags: &RegistryFlags,
    printer: &Printer,
) -> Result<ExitCode> {
    let host = registry_host(args.registry.as_deref())?;
    if auth_file(flags).erase(&host)? {
        printer.out(&format!("Removed login credentials for {host}"));
    } else {
        printer.out(&format!("Not logged in to {host}"));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_arguments_name_hosts_as_docker_reads_them() {
        assert_eq!(registry_host(None).unwrap(), "docker.io");
        assert_eq!(
            registry_host(Some("localhost:5000")).unwrap(),
            "localhost:5000"
        );
        assert_eq!(
            registry_host(Some("https://ghcr.io/v1/")).unwrap(),
            "ghcr.io"
        );
        assert_eq!(
            registry_host(Some("https://index.docker.io/v1/")).unwrap(),
            "docker.io"
        );
        assert!(registry_host(Some("")).is_err());
    }
}
