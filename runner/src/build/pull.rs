//! Images from registries inside a build.
//!
//! `FROM REF`, `COPY --from=REF` and `RUN --mount=type=bind,from=REF` name
//! an image; [`Build::image`] finds it:
//!
//! 1. `name@sha256:...` whose image the store holds whole: that image,
//!    without ever asking a registry (also under `--pull`).
//! 2. A name the store has (as written, or by its docker short form:
//!    `docker.io/library/alpine:3` is `alpine:3`): that image, unless
//!    `--pull` asks the registry about a tag, or the stored image was pulled
//!    for another platform than the build's.
//! 3. Otherwise, when the name is a registry reference, a pull for the
//!    build's platform. The image is named in the store by its short form
//!    (a digest-only reference stays untagged; an image pulled only because
//!    the stored one is for another platform leaves the name where it is).
//!
//! The registry session is made once per build ([`Registries`]), and only
//! when something must be pulled or pushed: a build that needs no registry
//! never touches the network. Transfers are reported as log lines of the
//! step that needed them (`#2 pulling 127.0.0.1:5000/base:1`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::{Build, BuildError, Steps};
use crate::digest::Digest;
use crate::image::{Image, Platform};
use crate::registry::progress::{Outcome, TransferProgress};
use crate::registry::{self, Reference, RegistryError, RegistryOptions, Session, store_name};
use crate::store::{Descriptor, Store};

/// How a build reaches registries: the options, and the one session made
/// the first time something must be pulled or pushed.
#[derive(Default)]
pub struct Registries {
    options: RegistryOptions,
    session: Mutex<Option<Arc<Session>>>,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("options", &self.options)
            .field("connected", &self.connected())
            .finish()
    }
}

impl Registries {
    /// Registries reached with `options`; nothing is contacted yet.
    pub fn new(options: RegistryOptions) -> Registries {
        Registries {
            options,
            session: Mutex::new(None),
        }
    }

    /// Whether a session was started (something was pulled or pushed).
    pub fn connected(&self) -> bool {
        self.session.lock().expect("session lock").is_some()
    }

    /// The session, started on first use.
    pub fn session(&self, cancel: &Arc<AtomicBool>) -> Result<Arc<Session>, RegistryError> {
        let mut slot = self.session.lock().expect("session lock");
        if let Some(s) = &*slot {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(Session::new(self.options.clone(), Arc::clone(cancel))?);
        *slot = Some(Arc::clone(&s));
        Ok(s)
    }
}

/// Transfer events as log lines of one build step.
pub(super) struct StepTransfers<'s, 'p> {
    steps: &'s Steps<'p>,
    id: usize,
    blobs: Mutex<HashMap<Digest, (u64, String)>>,
}

impl<'s, 'p> StepTransfers<'s, 'p> {
    pub(super) fn new(steps: &'s Steps<'p>, id: usize) -> Self {
        StepTransfers {
            steps,
            id,
            blobs: Mutex::new(HashMap::new()),
        }
    }
}

impl TransferProgress for StepTransfers<'_, '_> {
    fn begin(&self, digest: &Digest, size: u64, what: &str) {
        self.blobs
            .lock()
            .expect("blobs lock")
            .insert(*digest, (size, what.to_string()));
    }

    fn finish(&self, digest: &Digest, outcome: &Outcome) {
        let (size, what) = self
            .blobs
            .lock()
            .expect("blobs lock")
            .remove(digest)
            .unwrap_or((0, "blob".into()));
        let size = super::human_bytes(size);
        let done = match outcome {
            Outcome::Pulled => format!("pulled {size}"),
            Outcome::Pushed => format!("pushed {size}"),
            Outcome::Present => "already there".into(),
            Outcome::Mounted(from) => format!("mounted from {from}"),
        };
        self.steps
            .log(self.id, &format!("{} {what}: {done}", &digest.hex()[..12]));
    }

    fn retrying(&self, what: &str, attempt: u32, error: &str) {
        self.steps.log(
            self.id,
            &format!(
                "{what}: attempt {attempt} of {} failed ({error}); retrying",
                registry::session::ATTEMPTS
            ),
        );
    }

    fn note(&self, text: &str) {
        self.steps.log(self.id, text);
    }
}

/// The image `name` names in the store, as written or by its short form.
fn stored(store: &Store, name: &str, reference: Option<&Reference>) -> Result<Descriptor, String> {
    match store.resolve(name) {
        Ok(d) => Ok(d),
        Err(first) => match reference.and_then(store_name).filter(|a| a != name) {
            Some(alias) => store.resolve(&alias).map_err(|_| first.to_string()),
            None => Err(first.to_string()),
        },
    }
}

/// Whether the stored image `d` is (or has) one for `platform`.
fn fits(store: &Store, d: &Descriptor, platform: Option<&Platform>) -> bool {
    let Some(want) = platform else {
        return true;
    };
    Image::load(store, d, Some(want)).is_ok_and(|image| {
        let have = Platform::of(&image.config);
        have.os == want.os && have.arch == want.arch
    })
}

impl Build<'_> {
    /// The image `name` (FROM, `--from`, a mount's `from=`) names, pulled
    /// for `platform` when it must be (see the module docs); transfers are
    /// reported under step `step`. The error is a message for the user.
    pub(super) fn image(
        &self,
        name: &str,
        platform: Option<&Platform>,
        step: usize,
    ) -> Result<Descriptor, String> {
        let reference = Reference::parse(name).ok();
        if let Some(digest) = reference.as_ref().and_then(|r| r.digest())
            && let Some(found) = registry::pull::from_store(self.store, digest, platform)
            && fits(self.store, &found.manifest, platform)
        {
            return Ok(found.manifest);
        }
        // One lookup (and pull) at a time: stages naming the same image
        // share one pull, and `--pull` asks the registry once per build.
        let key = format!(
            "{name} {}",
            platform.map(|p| p.to_string()).unwrap_or_default()
        );
        let mut pulled = self.pulled.lock().expect("pulled lock");
        if let Some(d) = pulled.get(&key) {
            return Ok(d.clone());
        }
        let local = match &reference {
            Some(r) if r.digest().is_some() => Err(format!("no image {name:?} in the store")),
            r => stored(self.store, name, r.as_ref()),
        };
        let refresh = self.opts.pull
            && reference
                .as_ref()
                .is_some_and(|r| r.tag().is_some() && r.digest().is_none());
        // An image pulled for another platform is pulled again for this
        // one; one built here is what it is (FROM reports the mismatch).
        let other_platform = local.as_ref().is_ok_and(|d| {
            d.annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(registry::SOURCE_ANNOTATION))
                && !fits(self.store, d, platform)
        });
        let reference = match (local, reference) {
            (Ok(_), Some(r)) if refresh || other_platform => r,
            (Ok(d), _) => return Ok(d),
            (Err(e), None) => return Err(e),
            (Err(_), Some(r)) => {
                let d = self
                    .pull(&r, platform, step, true)
                    .map_err(|p| format!("no image {name:?} in the store, and {p}"))?;
                pulled.insert(key, d.clone());
                return Ok(d);
            }
        };
        let d = self
            .pull(&reference, platform, step, !other_platform)
            .map_err(|e| e.to_string())?;
        pulled.insert(key, d.clone());
        Ok(d)
    }

    /// Pulls `reference` for `platform`, named by its short form when
    /// `name` (and it has a tag).
    fn pull(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
        step: usize,
        name: bool,
    ) -> Result<Descriptor, RegistryError> {
        let session = self.opts.registries.session(&self.opts.cancel)?;
        let names: Vec<String> = if name && reference.digest().is_none() {
            store_name(reference).into_iter().collect()
        } else {
            Vec::new()
        };
        let view = StepTransfers::new(&self.steps, step);
        let pulled =
            registry::pull::pull(&session, self.store, reference, platform, &names, &view)?;
        self.steps.log(
            step,
            &format!(
                "pulled {reference}: {} ({}, {})",
                pulled.digest,
                pulled.platform,
                if pulled.fetched > 0 {
                    format!("{} downloaded", super::human_bytes(pulled.fetched))
                } else {
                    "up to date".into()
                }
            ),
        );
        Ok(pulled.manifest)
    }

    /// A failed image lookup as a build error: `Cancelled` after Ctrl-C,
    /// else the message at `span` of the Kilnfile.
    pub(super) fn image_error(&self, span: crate::frontend::Span, message: String) -> BuildError {
        if self.opts.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return BuildError::Cancelled;
        }
        self.kilnfile.error(span, message).into()
    }
}

/// The build-wide memo of images looked up through [`Build::image`].
pub(super) type Pulled = Mutex<BTreeMap<String, Descriptor>>;
