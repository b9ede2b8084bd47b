//! The shell's own syntax tree: what the interpreter runs.
//!
//! Made from brush-parser's tree by `parse.rs`, so that the interpreter
//! depends on brush's types nowhere else. Words are already split into
//! parts (quoting, expansions), and command substitutions are parsed in
//! advance, so a syntax error anywhere in the script is found before any
//! of it runs.

use std::rc::Rc;

/// A line and column in the script, both from 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Commands run one after another (`;` or newline).
#[derive(Clone, Debug, Default)]
pub struct List(pub Vec<AndOr>);

/// `a && b || c`.
#[derive(Clone, Debug)]
pub struct AndOr {
    /// The first pipeline.
    pub first: Pipeline,
    /// The pipelines after it, each with the operator before it.
    pub rest: Vec<(Connector, Pipeline)>,
}

/// `&&` or `||`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connector {
    /// `&&`: run when the status so far is 0.
    And,
    /// `||`: run when the status so far is not 0.
    Or,
}

/// `[!] a | b | c`.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// `!`: the status is inverted.
    pub bang: bool,
    /// The stages, at least one.
    pub commands: Vec<Command>,
}

/// One command of a pipeline.
#[derive(Clone, Debug)]
pub enum Command {
    /// `A=1 prog arg >file`.
    Simple(Simple),
    /// A compound command with its redirections.
    Compound(Compound, Vec<Redir>, Pos),
    /// `name() body`.
    Function(String, Rc<Command>, Pos),
}

/// A simple command.
#[derive(Clone, Debug)]
pub struct Simple {
    /// `NAME=value` before the command name.
    pub assigns: Vec<(String, Word)>,
    /// The command name and its arguments, before expansion.
    pub words: Vec<Word>,
    /// Redirections, in order.
    pub redirs: Vec<Redir>,
    /// Where the command starts.
    pub pos: Pos,
}

/// Compound commands.
#[derive(Clone, Debug)]
pub enum Compound {
    /// `{ list; }`.
    Brace(List),
    /// `( list )`: run with a copy of the shell's state.
    Subshell(List),
    /// `for name [in words]; do list; done`; no words means `"$@"`.
    For(String, Option<Vec<Word>>, List),
    /// `case word in pattern) list;; esac`.
    Case(Word, Vec<CaseItem>),
    /// `if c; then a; elif c; then b; else d; fi`: the (condition, body)
    /// pairs, then the `else` body.
    If(Vec<(List, List)>, Option<List>),
    /// `while c; do b; done` (`until` when the flag is set).
    Loop {
        /// `until` rather than `while`.
        until: bool,
        /// The condition.
        cond: List,
        /// The body.
        body: List,
    },
    /// `(( expr ))` (not POSIX, but cheap).
    Arith(String),
}

/// One `pattern | pattern) list ;;` of a `case`.
#[derive(Clone, Debug)]
pub struct CaseItem {
    /// The patterns.
    pub patterns: Vec<Word>,
    /// The commands.
    pub body: List,
    /// `;&`: fall through into the next item's body.
    pub fallthrough: bool,
}

/// A word before expansion: its parts, in order.
#[derive(Clone, Debug, Default)]
pub struct Word {
    /// The parts.
    pub parts: Vec<Part>,
    /// Where it starts.
    pub pos: Pos,
}

/// A piece of a word.
#[derive(Clone, Debug)]
pub enum Part {
    /// Unquoted text: subject to globbing, not to field splitting.
    Text(String),
    /// Quoted or escaped text: taken literally.
    Quoted(String),
    /// `"..."`.
    Double(Vec<Part>),
    /// `~` at the start of a word: `$HOME`.
    Tilde,
    /// `$X`, `${X...}`.
    Param(Param, ParamOp),
    /// `$(...)` or backticks.
    CommandSub(Rc<List>),
    /// `$((...))`, unexpanded.
    Arith(String),
}

/// A parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// A variable.
    Named(String),
    /// `$1`...
    Positional(usize),
    /// `$@`.
    At,
    /// `$*`.
    Star,
    /// `$#`.
    Count,
    /// `$?`.
    Status,
    /// `$$`.
    Pid,
    /// `$!`.
    LastBackground,
    /// `$0`.
    Zero,
    /// `$-`.
    Flags,
}

/// What is done with a parameter's value.
#[derive(Clone, Debug)]
pub enum ParamOp {
    /// The value.
    Plain,
    /// `${#X}`.
    Length,
    /// `${X:-w}` (`colon`: also when set but empty).
    Default(bool, Word),
    /// `${X:=w}`.
    Assign(bool, Word),
    /// `${X:?w}`.
    Error(bool, Option<Word>),
    /// `${X:+w}`.
    Alternative(bool, Word),
    /// `${X#p}` (`true`: `##`, the longest match).
    RemovePrefix(bool, Word),
    /// `${X%p}` (`true`: `%%`, the longest match).
    RemoveSuffix(bool, Word),
}

/// A redirection.
#[derive(Clone, Debug)]
pub struct Redir {
    /// The descriptor redirected (the default depends on the kind).
    pub fd: Option<u32>,
    /// What it becomes.
    pub kind: RedirKind,
    /// Where it is.
    pub pos: Pos,
}

/// Kinds of redirection.
#[derive(Clone, Debug)]
pub enum RedirKind {
    /// `< file`.
    Read(Word),
    /// `> file`, `>| file`.
    Write(Word),
    /// `>> file`.
    Append(Word),
    /// `<> file`.
    ReadWrite(Word),
    /// `>&N`, `>&-`.
    DupOut(Word),
    /// `<&N`, `<&-`.
    DupIn(Word),
    /// A here-document; `expand` is false when its delimiter was quoted.
    HereDoc {
        /// The body.
        body: Word,
        /// Whether `$`, `` ` `` and `\` are special in it.
        expand: bool,
        /// `<<-`: leading tabs are stripped.
        strip_tabs: bool,
    },
}
