//! Dispatching a stage: FROM, then each instruction in order, with Docker's
//! rules for ARG scope, ENV, WORKDIR, USER, LABEL, CMD and ENTRYPOINT.

use oci_spec::image::{Config, History, ImageConfiguration};

use super::cache::{self, Key};
use super::commit::Layer;
use super::copy;
use super::{Build, BuildError, StageResult, users};
use crate::digest::Digest;
use crate::frontend::{self, CommandLine, Diagnostic, Instruction, InstructionKind, Span, Word};
use crate::image::{Image, Platform, rfc3339};
use crate::layer::PendingChanges;
use crate::snapshot::{Change, ImagePath, Meta, Node, Snapshot};

/// The `comment` of history entries kiln writes, like BuildKit's
/// `buildkit.dockerfile.v0`.
pub(super) const HISTORY_COMMENT: &str = "kiln.kilnfile.v0";

/// Build args Docker defines without an ARG line; never reported as unused.
pub(super) fn is_predefined_arg(name: &str) -> bool {
    const PREDEFINED: [&str; 11] = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "FTP_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SOURCE_DATE_EPOCH",
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "BUILDPLATFORM",
        "BUILDARCH",
    ];
    PREDEFINED.iter().any(|p| p.eq_ignore_ascii_case(name)) || name.starts_with("BUILDKIT_")
}

/// The automatic platform ARGs, as BuildKit defines them. Steps run as wasm,
/// so the build platform is always `wasi/wasm`.
fn platform_args(target: &Platform) -> Vec<(String, Option<String>)> {
    let build = Platform::wasi();
    vec![
        ("TARGETPLATFORM".into(), Some(target.to_string())),
        ("TARGETOS".into(), Some(target.os.clone())),
        ("TARGETARCH".into(), Some(target.arch.clone())),
        (
            "TARGETVARIANT".into(),
            Some(target.variant.clone().unwrap_or_default()),
        ),
        ("BUILDPLATFORM".into(), Some(build.to_string())),
        ("BUILDOS".into(), Some(build.os.clone())),
        ("BUILDARCH".into(), Some(build.arch.clone())),
        ("BUILDVARIANT".into(), Some(String::new())),
    ]
}

/// Variables in scope for expansion: ENV wins over ARG, as in Docker.
struct Scope<'s> {
    env: &'s [(String, String)],
    args: &'s [(String, Option<String>)],
}

impl<'s> Scope<'s> {
    fn get(&self, name: &str) -> Option<&'s str> {
        if let Some((_, v)) = self.env.iter().rev().find(|(k, _)| k == name) {
            return Some(v);
        }
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Expands `w` in this scope, warning about variables used but never
    /// declared (`lint.rs`).
    fn expand(&self, b: &Build<'_>, w: &Word) -> Result<String, Diagnostic> {
        let mut names = self
            .env
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.args.iter().map(|(k, _)| k.as_str()));
        b.undefined.expand(
            &b.steps,
            b.kilnfile,
            w,
            &|k| self.get(k),
            &mut names,
            &b.global_args,
        )
    }
}

/// The state of a stage between instructions.
pub(super) struct State {
    pub(super) snapshot: std::sync::Arc<Snapshot>,
    pub(super) config: ImageConfiguration,
    pub(super) layers: Vec<crate::store::Descriptor>,
    env: Vec<(String, String)>,
    args: Vec<(String, Option<String>)>,
    workdir: ImagePath,
    /// `SHELL`: the shell of shell-form commands (`None`: `/bin/sh -c`).
    shell: Option<Vec<String>>,
    cmd_set: bool,
    pub(super) stage: usize,
    /// The step cache key of the filesystem so far (see `cache.rs`).
    pub(super) key: Digest,
    /// The runtime config (Env, Cmd...), put into `config` at the end.
    run: Config,
}

impl State {
    fn scope(&self) -> Scope<'_> {
        Scope {
            env: &self.env,
            args: &self.args,
        }
    }

    fn run_config(&mut self) -> &mut Config {
        &mut self.run
    }

    /// The environment of a RUN step: the image's ENV, then the ARGs in
    /// scope that ENV does not override (as Docker passes build args).
    fn step_env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        for (k, v) in &self.args {
            if let Some(v) = v
                && !env.iter().any(|(ek, _)| ek == k)
            {
                env.push((k.clone(), v.clone()));
            }
        }
        env
    }
}

impl Build<'_> {
    /// Global ARGs with build-arg overrides, plus the platform ARGs.
    pub(super) fn resolve_global_args(&self) -> Result<Vec<(String, Option<String>)>, BuildError> {
        let target = self.opts.platform.clone().unwrap_or_else(Platform::wasi);
        let mut args = platform_args(&target);
        for decl in &self.kilnfile.global_args {
            self.consumed
                .lock()
                .expect("args lock")
                .insert(decl.name.clone());
            let value = match self.build_args.get(&decl.name) {
                Some(v) => Some(v.clone()),
                None => match &decl.default {
                    Some(w) => {
                        let scope = Scope {
                            env: &[],
                            args: &args,
                        };
                        Some(self.kilnfile.expand(w, &|k| scope.get(k))?)
                    }
                    None => None,
                },
            };
            args.push((decl.name.clone(), value));
        }
        Ok(args)
    }

    /// Builds stage `index` (and the earlier stages it uses).
    pub(super) fn build_stage(&self, index: usize) -> Result<StageResult, BuildError> {
        let kf = self.kilnfile;
        let stage = &kf.stages[index];
        let numbered = 1 + stage
            .instructions
            .iter()
            .filter(|i| {
                matches!(
                    i.kind,
                    InstructionKind::Copy(_)
                        | InstructionKind::Run(_)
                        | InstructionKind::Workdir(_)
                )
            })
            .count();
        let multi = kf.stages.len() > 1;
        let stage_label = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"));
        let mut step_no = 0;
        let mut step_name = |text: &str| {
            step_no += 1;
            // Here-document bodies are not part of the step's name.
            let head = if text.contains("<<") {
                text.lines().next().unwrap_or(text)
            } else {
                text
            };
            // Line continuations are not either: one line, single spaces.
            let escape = format!("{}\n", kf.escape);
            let one_line = head
                .replace(&escape, " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let prefix = match (&self.label, multi) {
                (Some(l), true) => format!("{l} {stage_label} "),
                (Some(l), false) => format!("{l} "),
                (None, true) => format!("{stage_label} "),
                (None, false) => String::new(),
            };
            format!("[{prefix}{step_no}/{numbered}] {one_line}")
        };

        // FROM
        let global = Scope {
            env: &[],
            args: &self.global_args,
        };
        let image_name = global.expand(self, &stage.from.image)?;
        let flag_platform = match &stage.from.platform {
            Some(w) => {
                let text = global.expand(self, w)?;
                Some(Platform::parse(&text).map_err(|e| kf.error(w.span.clone(), e))?)
            }
            None => None,
        };
        let want_platform = flag_platform.or_else(|| self.opts.platform.clone());
        let from_text = format!("FROM {image_name}");
        let mut state = self.steps.run(&step_name(&from_text), |id| {
            self.base_state(
                &image_name,
                stage.from.image.span.clone(),
                index,
                want_platform.as_ref(),
                id,
            )
        })?;

        for inst in &stage.instructions {
            self.dispatch(inst, &mut state, &mut step_name)?;
        }
        state.config.set_config(Some(state.run.clone()));
        state.config.set_created(Some(rfc3339(self.epoch)));
        Ok(StageResult {
            snapshot: std::sync::Arc::unwrap_or_clone(state.snapshot),
            config: state.config,
            layers: state.layers,
            key: state.key,
        })
    }

    fn base_state(
        &self,
        image_name: &str,
        span: Span,
        index: usize,
        platform: Option<&Platform>,
        step: usize,
    ) -> Result<State, BuildError> {
        let kf = self.kilnfile;
        let (snapshot, mut config, layers, key) = if image_name == "scratch" {
            let platform = platform.cloned().unwrap_or_else(Platform::wasi);
            let mut key = Key::new("base");
            key.add("scratch", platform.to_string());
            let mut config = ImageConfiguration::default();
            config.set_os(platform.os.as_str().into());
            config.set_architecture(platform.arch.as_str().into());
            config.set_variant(platform.variant.clone());
            config.set_history(Some(Vec::new()));
            (Snapshot::empty(), config, Vec::new(), key.finish())
        } else if let Some(dep) = kf
            .stage(image_name)
            .filter(|s| s.index < index && s.name.is_some())
        {
            self.steps.log(step, &format!("using stage {image_name}"));
            let r = self.stage_result(dep.index)?;
            (r.snapshot, r.config, r.layers, r.key)
        } else {
            let descriptor = self
                .image(image_name, platform, step)
                .map_err(|e| self.image_error(span.clone(), e))?;
            let image = Image::load(self.store, &descriptor, platform)?;
            if let Some(want) = platform {
                let have = Platform::of(&image.config);
                if have.os != want.os || have.arch != want.arch {
                    return Err(kf
                        .error(
                            span,
                            format!("image {image_name:?} is {have}, but the build is for {want}"),
                        )
                        .into());
                }
            }
            self.steps.log(
                step,
                &format!("using {image_name} ({})", image.descriptor.digest),
            );
            let snapshot = image.snapshot(self.store)?;
            let layers = image.layers()?.into_iter().map(|(d, _)| d).collect();
            let mut key = Key::new("base");
            key.digest("image", &image.descriptor.digest);
            (snapshot, image.config, layers, key.finish())
        };
        if config.history().is_none() {
            config.set_history(Some(Vec::new()));
        }
        let env = crate::image::env_pairs(config.config().as_ref());
        let workdir = config
            .config()
            .as_ref()
            .and_then(|c| c.working_dir().clone())
            .and_then(|w| ImagePath::parse(&w).ok())
            .unwrap_or_default();
        // Platform ARGs are in scope only once a stage declares them.
        Ok(State {
            snapshot: std::sync::Arc::new(snapshot),
            layers,
            env,
            args: Vec::new(),
            workdir,
            shell: None,
            cmd_set: false,
            stage: index,
            key,
            run: config.config().clone().unwrap_or_default(),
            config,
        })
    }

    pub(super) fn history(&self, state: &mut State, created_by: String, empty_layer: bool) {
        let mut h = History::default();
        h.set_created(Some(rfc3339(self.epoch)));
        h.set_created_by(Some(created_by));
        h.set_comment(Some(HISTORY_COMMENT.into()));
        if empty_layer {
            h.set_empty_layer(Some(true));
        }
        state
            .config
            .history_mut()
            .get_or_insert_with(Vec::new)
            .push(h);
    }

    fn dispatch(
        &self,
        inst: &Instruction,
        state: &mut State,
        step_name: &mut dyn FnMut(&str) -> String,
    ) -> Result<(), BuildError> {
        let kf = self.kilnfile;
        let source_text = kf.source.slice(&inst.span).to_string();
        let expand =
            |w: &Word, s: &State| -> Result<String, BuildError> { Ok(s.scope().expand(self, w)?) };
        match &inst.kind {
            InstructionKind::Arg(decls) => {
                let mut shown = Vec::new();
                for decl in decls {
                    self.consumed
                        .lock()
                        .expect("args lock")
                        .insert(decl.name.clone());
                    let global = self.global_args.iter().rev().find(|(k, _)| *k == decl.name);
                    let value = match self.build_args.get(&decl.name) {
                        Some(v) => Some(v.clone()),
                        None => match &decl.default {
                            Some(w) => Some(expand(w, state)?),
                            None => global.and_then(|(_, v)| v.clone()),
                        },
                    };
                    shown.push(match (&decl.default, &value) {
                        (Some(_), Some(v)) => format!("{}={v}", decl.name),
                        _ => decl.name.clone(),
                    });
                    state.args.push((decl.name.clone(), value));
                }
                self.history(state, format!("ARG {}", shown.join(" ")), true);
            }
            InstructionKind::Env(pairs) => {
                // Every value sees the environment from before this line.
                let values = pairs
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), expand(v, state)?)))
                    .collect::<Result<Vec<_>, BuildError>>()?;
                let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                for (k, v) in values {
                    match state.env.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(slot) => slot.1 = v,
                        None => state.env.push((k, v)),
                    }
                }
                let env: Vec<String> = state.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                state.run_config().set_env(Some(env));
                self.history(state, format!("ENV {}", shown.join(" ")), true);
            }
            InstructionKind::Label(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let key = expand(k, state)?;
                    if key.is_empty() {
                        return Err(kf.error(k.span.clone(), "empty LABEL key").into());
                    }
                    let value = expand(v, state)?;
                    shown.push(format!("{key}={value}"));
                    state
                        .run_config()
                        .labels_mut()
                        .get_or_insert_with(Default::default)
                        .insert(key, value);
                }
                self.history(state, format!("LABEL {}", shown.join(" ")), true);
            }
            InstructionKind::User(w) => {
                let user = expand(w, state)?;
                if user.is_empty() || user.contains(char::is_whitespace) {
                    return Err(kf
                        .error(
                            w.span.clone(),
                            "USER expects a user or uid, optionally with :group or :gid",
                        )
                        .into());
                }
                state.run_config().set_user(Some(user.clone()));
                self.history(state, format!("USER {user}"), true);
            }
            InstructionKind::Workdir(w) => {
                let raw = expand(w, state)?;
                if raw.is_empty() {
                    return Err(kf.error(w.span.clone(), "WORKDIR needs a path").into());
                }
                let path = ImagePath::resolve(&state.workdir, &raw)
                    .map_err(|e| kf.error(w.span.clone(), e.to_string()))?;
                let name = step_name(&source_text);
                self.steps
                    .run(&name, |id| self.workdir(state, &path, w, &name, id))?;
            }
            InstructionKind::Copy(c) => {
                let name = step_name(&source_text);
                self.steps.run(&name, |id| {
                    let planned = {
                        let scope = state.scope();
                        copy::plan(
                            self,
                            id,
                            c,
                            &|w| scope.expand(self, w),
                            &state.snapshot,
                            &state.workdir,
                            state.stage,
                        )?
                    };
                    let mut key = self.step_key("copy", &state.key);
                    key.add("created_by", &planned.created_by);
                    cache::add_changes(&mut key, &planned.changes).map_err(|e| {
                        BuildError::Step {
                            step: name.clone(),
                            message: e,
                            stderr: String::new(),
                        }
                    })?;
                    let key = key.finish();
                    if self.reuse(state, &key, &planned.created_by, &name, id)? {
                        // A layer written ahead is thrown away unwritten.
                        return Ok(());
                    }
                    let (layer, plan) = match planned.ahead {
                        Some(ahead) => (Layer::Ahead(ahead), Some(planned.changes)),
                        None => (Layer::Changes(planned.changes), None),
                    };
                    std::thread::scope(|s| {
                        // Beside a layer written ahead, the plan holds a
                        // reference to each file read: freeing 100,000 of
                        // them is tens of milliseconds, done on the idle
                        // core while the layer is committed (or here,
                        // when no thread is to be had).
                        if let Some(plan) = plan {
                            let _ = std::thread::Builder::new()
                                .name("kiln-free-plan".into())
                                .spawn_scoped(s, move || drop(plan));
                        }
                        self.commit_layer(state, layer, planned.created_by, &name, key)
                    })
                })?;
            }
            InstructionKind::Run(run) => {
                let name = step_name(&source_text);
                let owner = self.user_ids(state, inst.span.clone())?;
                self.steps.run(&name, |id| {
                    let snapshot = std::sync::Arc::clone(&state.snapshot);
                    let workdir = state.workdir.clone();
                    let shell = state.shell.clone();
                    let cx = super::run::RunContext {
                        snapshot: &snapshot,
                        env: state.step_env(),
                        workdir: &workdir,
                        shell: shell.as_deref(),
                        owner,
                        step_id: id,
                        step_name: &name,
                    };
                    let prepared = super::run::prepare(self, run, &inst.span, &cx)?;
                    let platform = crate::image::Platform::of(&state.config).to_string();
                    let key = self.run_key(&state.key, &prepared, &cx, &platform)?;
                    if self.reuse(state, &key, &prepared.created_by, &name, id)? {
                        return Ok(());
                    }
                    let created_by = prepared.created_by.clone();
                    let changes = super::run::run(self, prepared, cx, &key)?;
                    self.commit_layer(state, Layer::Changes(changes), created_by, &name, key)
                })?;
            }
            InstructionKind::Cmd(cl) | InstructionKind::Entrypoint(cl) => {
                let is_cmd = matches!(inst.kind, InstructionKind::Cmd(_));
                let argv = self.command_argv(cl, state)?;
                let json = serde_json::to_string(&argv).expect("strings serialize");
                let cfg = state.run_config();
                if is_cmd {
                    cfg.set_cmd(Some(argv));
                    state.cmd_set = true;
                    self.history(state, format!("CMD {json}"), true);
                } else {
                    cfg.set_entrypoint(Some(argv));
                    if !state.cmd_set {
                        state.run_config().set_cmd(None);
                    }
                    self.history(state, format!("ENTRYPOINT {json}"), true);
                }
            }
            InstructionKind::Expose(words) => {
                let mut ports = Vec::new();
                for w in words {
                    for port in expand(w, state)?.split_whitespace() {
                        ports.push(parse_port(port).map_err(|e| kf.error(w.span.clone(), e))?);
                    }
                }
                let cfg = state.run_config();
                let mut all = cfg.exposed_ports().clone().unwrap_or_default();
                for p in &ports {
                    if !all.contains(p) {
                        all.push(p.clone());
                    }
                }
                all.sort();
                cfg.set_exposed_ports(Some(all));
                self.history(state, format!("EXPOSE {}", ports.join(" ")), true);
            }
            InstructionKind::Volume(words) => {
                let mut paths = Vec::new();
                for w in words {
                    let p = expand(w, state)?;
                    if p.trim().is_empty() {
                        return Err(kf
                            .error(w.span.clone(), "VOLUME needs a non-empty path")
                            .into());
                    }
                    paths.push(p);
                }
                let cfg = state.run_config();
                let mut all = cfg.volumes().clone().unwrap_or_default();
                for p in &paths {
                    if !all.contains(p) {
                        all.push(p.clone());
                    }
                }
                all.sort();
                cfg.set_volumes(Some(all));
                let json = serde_json::to_string(&paths).expect("strings serialize");
                self.history(state, format!("VOLUME {json}"), true);
            }
            InstructionKind::StopSignal(w) => {
                let sig = expand(w, state)?;
                let valid = sig.parse::<u8>().is_ok_and(|n| n > 0)
                    || (sig.starts_with("SIG")
                        && sig.len() > 3
                        && sig[3..].chars().all(|c| {
                            c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-'
                        }));
                if !valid {
                    return Err(kf
                        .error(
                            w.span.clone(),
                            format!(
                                "invalid signal {sig:?}: expected a name like SIGTERM or a number"
                            ),
                        )
                        .into());
                }
                state.run_config().set_stop_signal(Some(sig.clone()));
                self.history(state, format!("STOPSIGNAL {sig}"), true);
            }
            InstructionKind::Maintainer(w) => {
                let author = expand(w, state)?;
                state.config.set_author(Some(author.clone()));
                self.history(state, format!("MAINTAINER {author}"), true);
            }
            InstructionKind::Shell(words) => {
                let shell: Vec<String> = words.iter().map(|w| w.raw.clone()).collect();
                let json = serde_json::to_string(&shell).expect("strings serialize");
                state.shell = Some(shell);
                self.history(state, format!("SHELL {json}"), true);
            }
        }
        Ok(())
    }

    /// Creates the WORKDIR directory when the image does not have it.
    fn workdir(
        &self,
        state: &mut State,
        path: &ImagePath,
        word: &Word,
        name: &str,
        id: usize,
    ) -> Result<(), BuildError> {
        let kf = self.kilnfile;
        state.workdir = path.clone();
        state.run_config().set_working_dir(Some(path.absolute()));
        let created_by = format!("WORKDIR {}", path.absolute());
        let resolved = state
            .snapshot
            .resolve(path, true)
            .map_err(|e| kf.error(word.span.clone(), e.to_string()))?;
        let (uid, gid) = self.user_ids(state, word.span.clone())?;
        let meta = Meta {
            mode: 0o755,
            uid,
            gid,
            mtime: self.epoch,
        };
        let mut changes = PendingChanges::new();
        for p in resolved.ancestors().into_iter().chain([resolved.clone()]) {
            match state.snapshot.get(&p) {
                Some(Node::Dir(_)) => {}
                Some(_) => {
                    return Err(kf
                        .error(
                            word.span.clone(),
                            format!(
                                "cannot create WORKDIR {path}: {p} exists and is not a directory"
                            ),
                        )
                        .into());
                }
                None => {
                    changes.insert(p, Change::Put(Node::Dir(meta)));
                }
            }
        }
        let mut key = self.step_key("workdir", &state.key);
        key.add("created_by", &created_by);
        cache::add_changes(&mut key, &changes).expect("directories have no contents");
        let key = key.finish();
        if self.reuse(state, &key, &created_by, name, id)? {
            return Ok(());
        }
        self.commit_layer(state, Layer::Changes(changes), created_by, name, key)
    }

    /// The ids of the stage's USER, for directories WORKDIR creates.
    fn user_ids(&self, state: &State, span: Span) -> Result<(u32, u32), BuildError> {
        match state.run.user().clone() {
            None => Ok((0, 0)),
            Some(u) if u.is_empty() || u == "root" => Ok((0, 0)),
            Some(u) => users::resolve(self.store, &state.snapshot, &u)
                .map_err(|e| self.kilnfile.error(span, e).into()),
        }
    }

    /// The argv of CMD/ENTRYPOINT: exec form as written; plain form
    /// `/bin/sh -c TEXT` when the image has a shell or the text needs one
    /// (`kiln run` then uses kiln's built-in shell, whose syntax is checked
    /// here), else split into words.
    fn command_argv(&self, cl: &CommandLine, state: &State) -> Result<Vec<String>, BuildError> {
        let kf = self.kilnfile;
        match cl {
            CommandLine::Exec(words) => Ok(words.iter().map(|w| w.raw.clone()).collect()),
            CommandLine::Shell(w) => {
                if let Some(shell) = &state.shell {
                    return Ok(shell.iter().cloned().chain([w.raw.clone()]).collect());
                }
                if super::run::has_shell(&state.snapshot) {
                    return Ok(vec!["/bin/sh".into(), "-c".into(), w.raw.clone()]);
                }
                if frontend::words::shell_syntax(&w.raw).is_some() || w.raw.contains('$') {
                    super::run::check_script(kf, w)?;
                    return Ok(vec!["/bin/sh".into(), "-c".into(), w.raw.clone()]);
                }
                frontend::words::split_words(&w.raw, '\\')
                    .into_iter()
                    .map(|word| {
                        frontend::expand::expand(word.text, '\\', &|_| None).map_err(|e| {
                            kf.word_error(w, word.range.start + e.offset, e.message)
                                .into()
                        })
                    })
                    .collect()
            }
        }
    }
}

/// Parses an EXPOSE entry: `80`, `80/tcp`, `53/udp`, `8000-8010/tcp`.
fn parse_port(s: &str) -> Result<String, String> {
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let bad =
        || format!("invalid port {s:?}: expected PORT[/tcp|udp|sctp] or a range like 8000-8010");
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let valid = |p: &str| p.parse::<u16>().is_ok();
    let ok = match ports.split_once('-') {
        Some((a, b)) => valid(a) && valid(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok(),
        None => valid(ports),
    };
    if !ok {
        return Err(bad());
    }
    Ok(format!("{ports}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports() {
        assert_eq!(parse_port("80").unwrap(), "80/tcp");
        assert_eq!(parse_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(parse_port("8000-8010").unwrap(), "8000-8010/tcp");
        for bad in ["http", "70000", "80/icmp", "10-5"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }
}
