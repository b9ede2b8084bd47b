//! Property tests of the frontend: arbitrary text and mutated valid
//! Kilnfiles go through [`parse`] and every word through
//! [`Kilnfile::expand`]; each gives a Kilnfile or a [`Diagnostic`], never a
//! panic, a hang or unbounded memory. Expanded words go through
//! [`Mount::parse`] too. Case count: `crate::proptests::config`.

use proptest::prelude::*;

use super::*;

/// A Kilnfile that uses every instruction, form and quoting rule kiln knows.
const VALID: &str = r#"# syntax=kiln/v1
ARG BASE=scratch
FROM ${BASE} AS build
ARG VERSION=1.0 OTHER
ENV A=1 B="two ${VERSION:-words}" C='$lit'
ENV LEGACY value with spaces
WORKDIR /app/${A:+set}
LABEL org.opencontainers.image.title="demo" "quoted key"=v
USER 1000:${GID-1000}
COPY --chown=1000:1000 --chmod=0644 a.txt b/ /dst/
COPY <<EOF /etc/motd
hello ${A}
EOF
RUN --mount=type=secret,id=npm_token --mount=type=cache,target=/c,id=$A,sharing=locked --network=none npm-install --flag
RUN ["tool", "a b", "${A}"]
CMD ["serve"]
ENTRYPOINT /bin/app.wasm --port 80
EXPOSE 80 443/tcp
VOLUME ["/data"]
STOPSIGNAL SIGTERM
MAINTAINER someone
FROM build
RUN tool \
  --continued "line"
"#;

/// Every word of an instruction, for expansion.
fn words(kind: &InstructionKind) -> Vec<&Word> {
    match kind {
        InstructionKind::Arg(args) => args.iter().filter_map(|a| a.default.as_ref()).collect(),
        InstructionKind::Env(pairs) => pairs.iter().map(|(_, v)| v).collect(),
        InstructionKind::Label(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        InstructionKind::Workdir(w)
        | InstructionKind::User(w)
        | InstructionKind::StopSignal(w)
        | InstructionKind::Maintainer(w) => vec![w],
        InstructionKind::Expose(ws) | InstructionKind::Volume(ws) | InstructionKind::Shell(ws) => {
            ws.iter().collect()
        }
        InstructionKind::Copy(c) => {
            let mut out: Vec<&Word> = c
                .sources
                .iter()
                .map(|s| match s {
                    CopySource::Path(w) => w,
                    CopySource::HereDoc { body, .. } => body,
                })
                .collect();
            out.push(&c.dest);
            out.extend([&c.from, &c.chown, &c.chmod].into_iter().flatten());
            out
        }
        InstructionKind::Run(r) => {
            let mut out: Vec<&Word> = r.mounts.iter().map(|m| &m.spec).collect();
            out.extend(&r.network);
            out.extend(&r.heredocs);
            out.extend(command_words(&r.command));
            out
        }
        InstructionKind::Cmd(c) | InstructionKind::Entrypoint(c) => command_words(c),
    }
}

fn command_words(c: &CommandLine) -> Vec<&Word> {
    match c {
        CommandLine::Exec(ws) => ws.iter().collect(),
        CommandLine::Shell(w) => vec![w],
    }
}

/// Parses `text` and, if it parses, expands every word with a lookup that
/// knows a few variables, and parses every expanded word as a mount spec.
fn parse_and_expand(text: &str) {
    let Ok(k) = parse("Kilnfile", text) else {
        return;
    };
    let vars = |name: &str| match name {
        "A" => Some("alpha"),
        "EMPTY" => Some(""),
        "SPEC" => Some("type=cache,target=/x"),
        _ => None,
    };
    for stage in &k.stages {
        let _ = k.expand(&stage.from.image, &vars);
        for inst in &stage.instructions {
            for word in words(&inst.kind) {
                if let Ok(expanded) = k.expand(word, &vars) {
                    let _ = Mount::parse(&expanded);
                }
                // Errors point at a real line and column.
                if let Err(d) = k.expand(word, &|_| None) {
                    assert!(d.line >= 1 && d.column >= 1, "{d}");
                }
            }
            for split in words::split_words(k.source.slice(&inst.span), k.escape) {
                let _ = expand::expand(split.text, k.escape, &vars);
            }
        }
    }
}

/// The characters Kilnfile syntax is made of, and sometimes any character.
fn syntax_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '$', '{', '}', ':', '-', '+', '?', '"', '\'', '\\', '`', '[', ']', ',', '=', '\n',
            ' ', '\t', '#', '<', '>', '&', '|', ';', '(', ')', 'A', 'a', '0', '/', '.',
        ]),
        1 => any::<char>(),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(syntax_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// Edits: (position, a piece of text, 0 insert / 1 replace / 2 delete).
fn edits() -> impl Strategy<Value = Vec<(usize, String, u8)>> {
    let piece = prop_oneof![
        text(6),
        prop::sample::select(vec![
            "${",
            "${A:-",
            "}",
            "\"",
            "<<EOF\n",
            "\nEOF\n",
            "\\\n",
            "--mount=",
            "[\"",
            "\"]",
            "FROM ",
            "RUN ",
            "COPY ",
            "ARG ",
            "# escape=`\n",
            "ONBUILD ",
        ])
        .prop_map(str::to_string),
    ];
    prop::collection::vec((any::<usize>(), piece, 0..3u8), 1..8)
}

fn mutate(text: &str, edits: &[(usize, String, u8)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, piece, how) in edits {
        let at = at % (chars.len() + 1);
        let piece: Vec<char> = piece.chars().collect();
        let end = (at + piece.len()).min(chars.len());
        match how {
            0 => drop(chars.splice(at..at, piece)),
            1 => drop(chars.splice(at..end, piece)),
            _ => drop(chars.drain(at..end)),
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(crate::proptests::config(512))]

    #[test]
    fn arbitrary_text_parses_or_gives_a_diagnostic(text in text(200)) {
        parse_and_expand(&text);
        parse_and_expand(&format!("FROM scratch\nRUN {text}\nWORKDIR {text}\n"));
    }

    #[test]
    fn mutated_kilnfiles_parse_or_give_a_diagnostic(edits in edits()) {
        parse_and_expand(&mutate(VALID, &edits));
    }

    #[test]
    fn nesting_of_any_depth_expands_or_is_refused_at_the_limit(
        openers in prop::collection::vec(
            prop::sample::select(vec!["${NOPE:-", "\"${NOPE:-", "${A:+", "${NOPE-"]),
            0..400,
        ),
    ) {
        let mut word: String = openers.concat();
        word.push('x');
        for opener in openers.iter().rev() {
            word.push('}');
            if opener.starts_with('"') {
                word.push('"');
            }
        }
        let result = expand::expand(&word, '\\', &|n| (n == "A").then_some("a"));
        if openers.len() <= expand::MAX_NESTING {
            prop_assert!(result.is_ok(), "{result:?}");
        } else {
            let e = result.unwrap_err();
            prop_assert!(e.message.contains("nested deeper"), "{e}");
        }
    }

    #[test]
    fn words_and_mount_specs_never_panic(
        text in text(120),
        escape in prop::sample::select(vec!['\\', '`']),
    ) {
        let _ = expand::expand(&text, escape, &|_| Some("v"));
        let _ = words::split_words(&text, escape);
        let _ = words::key_values(&text, escape, true, true);
        let _ = words::shell_syntax(&text);
        let _ = Mount::parse(&text);
    }
}

#[test]
fn the_valid_sample_parses_and_expands() {
    // The mutations start from a Kilnfile that is really valid.
    let k = parse("Kilnfile", VALID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(k.stages.len(), 2);
    parse_and_expand(VALID);
}
