//! Script text -> our syntax tree (`ast.rs`), through brush-parser.
//!
//! brush-parser tokenizes and parses the script (POSIX `sh` mode) and
//! splits each word into pieces; this file maps its types onto ours and
//! refuses, with a position, what the interpreter does not run: `&`
//! (background jobs), arrays, `[[ ]]`, process substitution, coprocesses,
//! bash-only parameter operators.

use std::rc::Rc;

use brush_parser::ast as b;
use brush_parser::word::{self as bw, WordPiece};

use super::ast::*;

/// A script that cannot be run: a syntax error, or syntax the shell does
/// not support yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {pos})")]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// Where, in the script.
    pub pos: Pos,
}

fn options() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions {
        enable_extended_globbing: false,
        posix_mode: true,
        sh_mode: true,
        tilde_expansion_at_word_start: true,
        tilde_expansion_after_colon: false,
        parser_impl: brush_parser::ParserImpl::Peg,
    }
}

/// Parses a script.
pub fn parse(script: &str) -> Result<List, SyntaxError> {
    let mut parser = brush_parser::Parser::new(std::io::Cursor::new(script), &options());
    let program = parser.parse_program().map_err(|e| {
        use brush_parser::TokenizerError as T;
        let pos = match &e {
            brush_parser::ParseError::ParsingNear(p) => pos_of(p),
            // An unterminated quote: where it opens, not where the
            // script ended.
            brush_parser::ParseError::Tokenizing {
                inner:
                    T::UnterminatedSingleQuote(p)
                    | T::UnterminatedDoubleQuote(p)
                    | T::UnterminatedBackquote(p),
                ..
            } => pos_of(p),
            brush_parser::ParseError::Tokenizing {
                position: Some(p), ..
            } => pos_of(p),
            _ => end_pos(script),
        };
        let message = match &e {
            brush_parser::ParseError::ParsingNear(_) => match near(script, pos) {
                Some(word) => format!("syntax error near unexpected `{word}`"),
                None => "syntax error".to_string(),
            },
            brush_parser::ParseError::ParsingAtEndOfInput => {
                "syntax error: unexpected end of script".to_string()
            }
            brush_parser::ParseError::Tokenizing { inner, .. } => {
                // Its text ends with "at LINE,COLUMN", which the caller
                // says its own way.
                let text = inner.to_string();
                match text.rsplit_once(" at ") {
                    Some((head, tail)) if tail.contains(',') => head.to_string(),
                    _ => text,
                }
            }
        };
        SyntaxError { message, pos }
    })?;
    let mut items = Vec::new();
    for cc in &program.complete_commands {
        items.extend(list(cc)?.0);
    }
    Ok(List(items))
}

/// The word of `script` that starts at `pos`, for a message.
fn near(script: &str, pos: Pos) -> Option<String> {
    let line = script.lines().nth(pos.line.checked_sub(1)?)?;
    let word: String = line
        .chars()
        .skip(pos.column.checked_sub(1)?)
        .take_while(|c| !c.is_whitespace())
        .take(20)
        .collect();
    (!word.is_empty()).then_some(word)
}

fn end_pos(script: &str) -> Pos {
    let line = script.lines().count().max(1);
    let column = script.lines().last().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, column }
}

fn pos_of(p: &brush_parser::SourcePosition) -> Pos {
    Pos {
        line: p.line,
        column: p.column,
    }
}

fn span_pos(s: Option<&brush_parser::SourceSpan>) -> Pos {
    s.map(|s| pos_of(&s.start)).unwrap_or_default()
}

fn unsupported(what: &str, pos: Pos) -> SyntaxError {
    SyntaxError {
        message: format!("{what} is not supported by kiln's shell"),
        pos,
    }
}

fn list(l: &b::CompoundList) -> Result<List, SyntaxError> {
    let mut out = Vec::new();
    for b::CompoundListItem(ao, sep) in &l.0 {
        if matches!(sep, b::SeparatorOperator::Async) {
            let pos = span_pos(b::SourceLocation::location(ao).as_ref());
            return Err(unsupported("`&` (a background job)", pos));
        }
        let mut rest = Vec::new();
        for item in &ao.additional {
            match item {
                b::AndOr::And(p) => rest.push((Connector::And, pipeline(p)?)),
                b::AndOr::Or(p) => rest.push((Connector::Or, pipeline(p)?)),
            }
        }
        out.push(AndOr {
            first: pipeline(&ao.first)?,
            rest,
        });
    }
    Ok(List(out))
}

fn pipeline(p: &b::Pipeline) -> Result<Pipeline, SyntaxError> {
    if let Some(t) = &p.timed {
        let pos = span_pos(b::SourceLocation::location(t).as_ref());
        return Err(unsupported("`time`", pos));
    }
    let commands = p.seq.iter().map(command).collect::<Result<_, _>>()?;
    Ok(Pipeline {
        bang: p.bang,
        commands,
    })
}

fn command(c: &b::Command) -> Result<Command, SyntaxError> {
    let pos = span_pos(b::SourceLocation::location(c).as_ref());
    match c {
        b::Command::Simple(s) => simple(s, pos).map(Command::Simple),
        b::Command::Compound(cc, redirs) => {
            let r = redirect_list(redirs.as_ref())?;
            Ok(Command::Compound(compound(cc)?, r, pos))
        }
        b::Command::Function(f) => {
            let name = f.fname.value.clone();
            let r = redirect_list(f.body.1.as_ref())?;
            let body = Command::Compound(compound(&f.body.0)?, r, pos);
            Ok(Command::Function(name, Rc::new(body), pos))
        }
        b::Command::ExtendedTest(..) => Err(unsupported("`[[ ]]`", pos)),
    }
}

fn redirect_list(r: Option<&b::RedirectList>) -> Result<Vec<Redir>, SyntaxError> {
    r.map_or(Ok(Vec::new()), |r| r.0.iter().map(redirect).collect())
}

fn simple(s: &b::SimpleCommand, pos: Pos) -> Result<Simple, SyntaxError> {
    let mut out = Simple {
        assigns: Vec::new(),
        words: Vec::new(),
        redirs: Vec::new(),
        pos,
    };
    let prefix = s.prefix.iter().flat_map(|p| p.0.iter());
    let suffix = s.suffix.iter().flat_map(|p| p.0.iter());
    let name: Vec<_> = s
        .word_or_name
        .iter()
        .map(|w| b::CommandPrefixOrSuffixItem::Word(w.clone()))
        .collect();
    for item in prefix.chain(name.iter()).chain(suffix) {
        match item {
            b::CommandPrefixOrSuffixItem::IoRedirect(r) => out.redirs.push(redirect(r)?),
            b::CommandPrefixOrSuffixItem::Word(w) => out.words.push(word(w)?),
            b::CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                let apos = pos_of(&a.loc.start);
                match (&a.name, &a.value, a.append) {
                    (b::AssignmentName::VariableName(n), b::AssignmentValue::Scalar(v), false) => {
                        if out.words.is_empty() {
                            let mut value = word(v)?;
                            value.pos = apos;
                            out.assigns.push((n.clone(), value));
                        } else {
                            // After the command name, `A=1` is an argument.
                            out.words.push(word(w)?);
                        }
                    }
                    _ => return Err(unsupported("array or `+=` assignment", apos)),
                }
            }
            b::CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                return Err(unsupported("process substitution", pos));
            }
        }
    }
    Ok(out)
}

fn compound(c: &b::CompoundCommand) -> Result<Compound, SyntaxError> {
    let pos = span_pos(b::SourceLocation::location(c).as_ref());
    Ok(match c {
        b::CompoundCommand::BraceGroup(g) => Compound::Brace(list(&g.list)?),
        b::CompoundCommand::Subshell(s) => Compound::Subshell(list(&s.list)?),
        b::CompoundCommand::ForClause(f) => {
            let words = match &f.values {
                Some(ws) => Some(ws.iter().map(word).collect::<Result<_, _>>()?),
                None => None,
            };
            Compound::For(f.variable_name.clone(), words, list(&f.body.list)?)
        }
        b::CompoundCommand::CaseClause(cc) => {
            let mut items = Vec::new();
            for item in &cc.cases {
                let patterns = item.patterns.iter().map(word).collect::<Result<_, _>>()?;
                let body = match &item.cmd {
                    Some(l) => list(l)?,
                    None => List::default(),
                };
                let fallthrough = match item.post_action {
                    b::CaseItemPostAction::ExitCase => false,
                    b::CaseItemPostAction::UnconditionallyExecuteNextCaseItem => true,
                    b::CaseItemPostAction::ContinueEvaluatingCases => {
                        return Err(unsupported("`;;&`", pos));
                    }
                };
                items.push(CaseItem {
                    patterns,
                    body,
                    fallthrough,
                });
            }
            Compound::Case(word(&cc.value)?, items)
        }
        b::CompoundCommand::IfClause(i) => {
            let mut arms = vec![(list(&i.condition)?, list(&i.then)?)];
            let mut otherwise = None;
            for e in i.elses.iter().flatten() {
                match &e.condition {
                    Some(c) => arms.push((list(c)?, list(&e.body)?)),
                    None => otherwise = Some(list(&e.body)?),
                }
            }
            Compound::If(arms, otherwise)
        }
        b::CompoundCommand::WhileClause(w) | b::CompoundCommand::UntilClause(w) => Compound::Loop {
            until: matches!(c, b::CompoundCommand::UntilClause(_)),
            cond: list(&w.0)?,
            body: list(&w.1.list)?,
        },
        b::CompoundCommand::Arithmetic(a) => Compound::Arith(a.expr.value.clone()),
        b::CompoundCommand::ArithmeticForClause(_) => {
            return Err(unsupported("`for ((;;))`", pos));
        }
        b::CompoundCommand::Coprocess(_) => return Err(unsupported("`coproc`", pos)),
    })
}

fn redirect(r: &b::IoRedirect) -> Result<Redir, SyntaxError> {
    let pos = span_pos(b::SourceLocation::location(r).as_ref());
    let fd = |f: &Option<i32>| f.map(|n| n as u32);
    match r {
        b::IoRedirect::File(n, kind, target) => {
            let target = match target {
                b::IoFileRedirectTarget::Filename(w) | b::IoFileRedirectTarget::Duplicate(w) => {
                    word(w)?
                }
                b::IoFileRedirectTarget::Fd(n) => Word {
                    parts: vec![Part::Quoted(n.to_string())],
                    pos,
                },
                b::IoFileRedirectTarget::ProcessSubstitution(..) => {
                    return Err(unsupported("process substitution", pos));
                }
            };
            let kind = match kind {
                b::IoFileRedirectKind::Read => RedirKind::Read(target),
                b::IoFileRedirectKind::Write | b::IoFileRedirectKind::Clobber => {
                    RedirKind::Write(target)
                }
                b::IoFileRedirectKind::Append => RedirKind::Append(target),
                b::IoFileRedirectKind::ReadAndWrite => RedirKind::ReadWrite(target),
                b::IoFileRedirectKind::DuplicateInput => RedirKind::DupIn(target),
                b::IoFileRedirectKind::DuplicateOutput => RedirKind::DupOut(target),
            };
            Ok(Redir {
                fd: fd(n),
                kind,
                pos,
            })
        }
        b::IoRedirect::HereDocument(n, doc) => {
            let body = if doc.requires_expansion {
                let pieces =
                    bw::parse_heredoc(&doc.doc.value, &options()).map_err(|e| SyntaxError {
                        message: e.to_string(),
                        pos,
                    })?;
                Word {
                    parts: pieces_to_parts(&pieces, true, pos)?,
                    pos,
                }
            } else {
                Word {
                    parts: vec![Part::Quoted(doc.doc.value.clone())],
                    pos,
                }
            };
            Ok(Redir {
                fd: fd(n),
                kind: RedirKind::HereDoc {
                    body,
                    expand: doc.requires_expansion,
                    strip_tabs: doc.remove_tabs,
                },
                pos,
            })
        }
        b::IoRedirect::HereString(..) => Err(unsupported("`<<<`", pos)),
        b::IoRedirect::OutputAndError(..) => Err(unsupported("`&>`", pos)),
    }
}

/// A brush word, split into our parts.
pub(super) fn word(w: &b::Word) -> Result<Word, SyntaxError> {
    let pos = span_pos(w.loc.as_ref());
    word_text(&w.value, pos)
}

pub(super) fn word_text(text: &str, pos: Pos) -> Result<Word, SyntaxError> {
    let pieces = bw::parse(text, &options()).map_err(|e| SyntaxError {
        message: e.to_string(),
        pos,
    })?;
    Ok(Word {
        parts: pieces_to_parts(&pieces, false, pos)?,
        pos,
    })
}

fn pieces_to_parts(
    pieces: &[bw::WordPieceWithSource],
    in_double: bool,
    pos: Pos,
) -> Result<Vec<Part>, SyntaxError> {
    let mut out = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        // brush's `sh` mode leaves a `${...}` it does not know as text.
        if let (WordPiece::Text(t), Some(next)) = (&p.piece, pieces.get(i + 1))
            && t.ends_with('$')
            && matches!(&next.piece, WordPiece::Text(n) if n.starts_with('{'))
        {
            return Err(unsupported("this parameter expansion (bash only)", pos));
        }
        out.push(match &p.piece {
            WordPiece::Text(t) if in_double => Part::Quoted(t.clone()),
            WordPiece::Text(t) => Part::Text(t.clone()),
            WordPiece::SingleQuotedText(t) => Part::Quoted(t.clone()),
            WordPiece::AnsiCQuotedText(_) => return Err(unsupported("`$'...'`", pos)),
            WordPiece::DoubleQuotedSequence(s) | WordPiece::GettextDoubleQuotedSequence(s) => {
                Part::Double(pieces_to_parts(s, true, pos)?)
            }
            WordPiece::TildeExpansion(bw::TildeExpr::Home) => Part::Tilde,
            WordPiece::TildeExpansion(_) => return Err(unsupported("`~user`", pos)),
            WordPiece::ParameterExpansion(e) => parameter(e, pos)?,
            WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                let inner = parse(s).map_err(|e| SyntaxError {
                    message: format!("in a command substitution: {}", e.message),
                    pos,
                })?;
                Part::CommandSub(Rc::new(inner))
            }
            WordPiece::EscapeSequence(s) => {
                let c = s.strip_prefix('\\').unwrap_or(s);
                if !in_double {
                    if c == "\n" {
                        continue;
                    }
                    Part::Quoted(c.to_string())
                } else if matches!(c, "$" | "`" | "\"" | "\\") {
                    Part::Quoted(c.to_string())
                } else if c == "\n" {
                    continue;
                } else {
                    Part::Quoted(s.clone())
                }
            }
            WordPiece::ArithmeticExpression(e) => Part::Arith(e.value.clone()),
        });
    }
    Ok(out)
}

fn parameter(e: &bw::ParameterExpr, pos: Pos) -> Result<Part, SyntaxError> {
    use bw::ParameterExpr as E;
    let sub = |s: &Option<String>| word_text(s.as_deref().unwrap_or(""), pos);
    let colon = |t: &bw::ParameterTestType| matches!(t, bw::ParameterTestType::UnsetOrNull);
    let (p, indirect, op) = match e {
        E::Parameter {
            parameter,
            indirect,
        } => (parameter, indirect, ParamOp::Plain),
        E::UseDefaultValues {
            parameter,
            indirect,
            test_type,
            default_value,
        } => (
            parameter,
            indirect,
            ParamOp::Default(colon(test_type), sub(default_value)?),
        ),
        E::AssignDefaultValues {
            parameter,
            indirect,
            test_type,
            default_value,
        } => (
            parameter,
            indirect,
            ParamOp::Assign(colon(test_type), sub(default_value)?),
        ),
        E::IndicateErrorIfNullOrUnset {
            parameter,
            indirect,
            test_type,
            error_message,
        } => {
            let m = match error_message {
                Some(m) => Some(word_text(m, pos)?),
                None => None,
            };
            (parameter, indirect, ParamOp::Error(colon(test_type), m))
        }
        E::UseAlternativeValue {
            parameter,
            indirect,
            test_type,
            alternative_value,
        } => (
            parameter,
            indirect,
            ParamOp::Alternative(colon(test_type), sub(alternative_value)?),
        ),
        E::ParameterLength {
            parameter,
            indirect,
        } => (parameter, indirect, ParamOp::Length),
        E::RemoveSmallestSuffixPattern {
            parameter,
            indirect,
            pattern,
        } => (
            parameter,
            indirect,
            ParamOp::RemoveSuffix(false, sub(pattern)?),
        ),
        E::RemoveLargestSuffixPattern {
            parameter,
            indirect,
            pattern,
        } => (
            parameter,
            indirect,
            ParamOp::RemoveSuffix(true, sub(pattern)?),
        ),
        E::RemoveSmallestPrefixPattern {
            parameter,
            indirect,
            pattern,
        } => (
            parameter,
            indirect,
            ParamOp::RemovePrefix(false, sub(pattern)?),
        ),
        E::RemoveLargestPrefixPattern {
            parameter,
            indirect,
            pattern,
        } => (
            parameter,
            indirect,
            ParamOp::RemovePrefix(true, sub(pattern)?),
        ),
        _ => return Err(unsupported("this parameter expansion (bash only)", pos)),
    };
    if *indirect {
        return Err(unsupported("`${!name}`", pos));
    }
    let param = match p {
        bw::Parameter::Positional(0) => Param::Zero,
        bw::Parameter::Positional(n) => Param::Positional(*n as usize),
        bw::Parameter::Named(n) => Param::Named(n.clone()),
        bw::Parameter::Special(s) => match s {
            bw::SpecialParameter::AllPositionalParameters { concatenate: false } => Param::At,
            bw::SpecialParameter::AllPositionalParameters { concatenate: true } => Param::Star,
            bw::SpecialParameter::PositionalParameterCount => Param::Count,
            bw::SpecialParameter::LastExitStatus => Param::Status,
            bw::SpecialParameter::CurrentOptionFlags => Param::Flags,
            bw::SpecialParameter::ProcessId => Param::Pid,
            bw::SpecialParameter::LastBackgroundProcessId => Param::LastBackground,
            bw::SpecialParameter::ShellName => Param::Zero,
        },
        _ => return Err(unsupported("arrays", pos)),
    };
    Ok(Part::Param(param, op))
}
