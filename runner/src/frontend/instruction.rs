//! The typed form of a Kilnfile: stages and instructions with source spans.
//!
//! Values are kept unexpanded ([`Word`]) because what `$VAR` means depends on
//! the base image's environment and the build args, which only the builder
//! knows. The builder expands each word through [`Kilnfile::expand`], which
//! turns expansion errors into diagnostics that point at the word.

use super::diagnostic::{Diagnostic, Source, Span};
use super::expand::{self, ExpandError};
use super::mount::Mount;

/// A parsed Kilnfile.
#[derive(Clone, Debug)]
pub struct Kilnfile {
    /// The text and its name, for diagnostics.
    pub source: Source,
    /// The escape character (`\`, or `` ` `` by parser directive).
    pub escape: char,
    /// The `# syntax=` directive, if any (recorded, not acted on).
    pub syntax: Option<String>,
    /// ARGs before the first FROM: usable in FROM lines, and in a stage
    /// that declares them again.
    pub global_args: Vec<ArgDecl>,
    /// The stages in file order (at least one).
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions up to the next.
#[derive(Clone, Debug)]
pub struct Stage {
    /// Position in the file, from 0.
    pub index: usize,
    /// `AS name`, lowercased as Docker does.
    pub name: Option<String>,
    /// The FROM instruction.
    pub from: From,
    /// Everything after FROM.
    pub instructions: Vec<Instruction>,
}

/// `FROM [--platform=P] image [AS name]`.
#[derive(Clone, Debug)]
pub struct From {
    /// The whole instruction.
    pub span: Span,
    /// The image reference (or `scratch`, or a stage name).
    pub image: Word,
    /// `--platform=`.
    pub platform: Option<Word>,
}

/// A piece of text from the Kilnfile, unexpanded, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The text, with line continuations removed.
    pub raw: String,
    /// Where it is in the Kilnfile.
    pub span: Span,
}

/// One instruction of a stage.
#[derive(Clone, Debug)]
pub struct Instruction {
    /// From the keyword to the end of the instruction.
    pub span: Span,
    /// What it does.
    pub kind: InstructionKind,
}

/// The instructions kiln supports inside a stage.
#[derive(Clone, Debug)]
pub enum InstructionKind {
    /// `ARG NAME[=default] ...`
    Arg(Vec<ArgDecl>),
    /// `ENV K=V ...` (keys literal, values unexpanded).
    Env(Vec<(String, Word)>),
    /// `LABEL K=V ...` (keys and values unexpanded).
    Label(Vec<(Word, Word)>),
    /// `WORKDIR path`
    Workdir(Word),
    /// `USER user[:group]`
    User(Word),
    /// `COPY ...`
    Copy(Copy),
    /// `RUN ...`
    Run(Run),
    /// `CMD ...`
    Cmd(CommandLine),
    /// `ENTRYPOINT ...`
    Entrypoint(CommandLine),
    /// `EXPOSE port[/proto] ...`
    Expose(Vec<Word>),
    /// `VOLUME path ...`
    Volume(Vec<Word>),
    /// `STOPSIGNAL signal`
    StopSignal(Word),
    /// `MAINTAINER name` (deprecated; sets the image author).
    Maintainer(Word),
    /// `SHELL ["executable", "param"...]`: the shell of later shell-form
    /// commands in the stage.
    Shell(Vec<Word>),
}

impl InstructionKind {
    /// The keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Shell(_) => "SHELL",
        }
    }
}

/// `ARG NAME` or `ARG NAME=default`.
#[derive(Clone, Debug)]
pub struct ArgDecl {
    /// The variable name.
    pub name: String,
    /// The default value, unexpanded.
    pub default: Option<Word>,
    /// Where the declaration is.
    pub span: Span,
}

/// `COPY [--from=X] [--chown=U:G] [--chmod=MODE] src... dest`.
#[derive(Clone, Debug)]
pub struct Copy {
    /// Sources: context paths (globs allowed) or here-documents.
    pub sources: Vec<CopySource>,
    /// Destination; a trailing `/` means a directory.
    pub dest: Word,
    /// `--from=stage|image`.
    pub from: Option<Word>,
    /// `--chown=user[:group]`.
    pub chown: Option<Word>,
    /// `--chmod=MODE` (octal).
    pub chmod: Option<Word>,
}

/// One source of a COPY.
#[derive(Clone, Debug)]
pub enum CopySource {
    /// A path or glob in the context (or in `--from`).
    Path(Word),
    /// `<<NAME ... NAME`: a file made from the text.
    HereDoc {
        /// The delimiter, used as the file name when the destination is a dir.
        name: String,
        /// The body.
        body: Word,
        /// Whether variables in the body are expanded (unquoted delimiter).
        expand: bool,
    },
}

/// `RUN [--mount=...]... [--network=...] command`.
#[derive(Clone, Debug)]
pub struct Run {
    /// Each `--mount`: the spec as written, and its parse when the spec has
    /// no variables (otherwise parsed after expansion).
    pub mounts: Vec<MountFlag>,
    /// `--network=`: `none` (the default) or `default` (the build's
    /// `--allow-net` hosts).
    pub network: Option<Word>,
    /// The command.
    pub command: CommandLine,
    /// Here-documents attached to the command (need a shell to run).
    pub heredocs: Vec<Word>,
}

/// One `--mount=` flag.
#[derive(Clone, Debug)]
pub struct MountFlag {
    /// The spec as written.
    pub spec: Word,
    /// The parsed spec, when it has no `$`.
    pub parsed: Option<Mount>,
}

/// The two forms of RUN, CMD and ENTRYPOINT.
#[derive(Clone, Debug)]
pub enum CommandLine {
    /// JSON exec form: the words exactly as given, no expansion.
    Exec(Vec<Word>),
    /// Plain form: one string, split into words (quotes respected) when run.
    Shell(Word),
}

impl Kilnfile {
    /// A diagnostic at `span` of this file.
    pub fn error(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.source.error(span, message)
    }

    /// A diagnostic for an error at byte `offset` inside `word`.
    pub fn word_error(&self, word: &Word, offset: usize, message: impl Into<String>) -> Diagnostic {
        // Offsets are exact when the word is verbatim from the source (no line
        // continuation inside it); otherwise point at the word's start.
        let exact = self.source.slice(&word.span) == word.raw;
        let start = if exact {
            word.span.start + offset.min(word.raw.len())
        } else {
            word.span.start
        };
        let end = if exact && offset < word.raw.len() {
            start + 1
        } else {
            word.span.end.max(start)
        };
        self.error(start..end, message)
    }

    /// Expands `word` with the variables `lookup` knows, Docker's rules.
    pub fn expand<'a>(
        &self,
        word: &Word,
        lookup: &dyn Fn(&str) -> Option<&'a str>,
    ) -> Result<String, Diagnostic> {
        if !expand::needs_expansion(&word.raw, self.escape) {
            return Ok(word.raw.clone());
        }
        expand::expand(&word.raw, self.escape, lookup)
            .map_err(|ExpandError { offset, message }| self.word_error(word, offset, message))
    }

    /// [`Kilnfile::expand`], also returning the names used without a
    /// modifier that `lookup` did not know ([`expand::expand_noting`]).
    pub fn expand_noting<'a>(
        &self,
        word: &Word,
        lookup: &dyn Fn(&str) -> Option<&'a str>,
    ) -> Result<(String, Vec<String>), Diagnostic> {
        if !expand::needs_expansion(&word.raw, self.escape) {
            return Ok((word.raw.clone(), Vec::new()));
        }
        expand::expand_noting(&word.raw, self.escape, lookup)
            .map_err(|ExpandError { offset, message }| self.word_error(word, offset, message))
    }

    /// The stage named `name` (case-insensitive), or with that index.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}
