//! Frontend unit tests: every instruction, every error path, with positions.

use super::*;

fn ok(text: &str) -> Kilnfile {
    parse("Kilnfile", text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> Diagnostic {
    match parse("Kilnfile", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

fn kinds(k: &Kilnfile) -> Vec<&'static str> {
    k.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.keyword())
        .collect()
}

#[test]
fn parses_every_supported_instruction() {
    let k = ok(r#"# syntax=kiln/v1
ARG BASE=scratch
FROM ${BASE} AS Build
ARG VERSION=1.0 OTHER
ENV A=1 B="two words"
ENV LEGACY value with spaces
WORKDIR /app
LABEL org.opencontainers.image.title="demo" "quoted key"=v
USER 1000:1000
COPY --chown=1000:1000 --chmod=0644 a.txt b/ /dst/
RUN --mount=type=secret,id=npm_token --network=none npm-install --flag
RUN ["tool", "a b"]
CMD ["serve"]
ENTRYPOINT /bin/app.wasm --port 80
EXPOSE 80 443/tcp
VOLUME ["/data"]
STOPSIGNAL SIGTERM
MAINTAINER someone
"#);
    assert_eq!(k.syntax.as_deref(), Some("kiln/v1"));
    assert_eq!(k.global_args.len(), 1);
    assert_eq!(k.global_args[0].name, "BASE");
    let stage = &k.stages[0];
    assert_eq!(stage.name.as_deref(), Some("build"));
    assert_eq!(stage.from.image.raw, "${BASE}");
    assert_eq!(
        kinds(&k),
        vec![
            "ARG",
            "ENV",
            "ENV",
            "WORKDIR",
            "LABEL",
            "USER",
            "COPY",
            "RUN",
            "RUN",
            "CMD",
            "ENTRYPOINT",
            "EXPOSE",
            "VOLUME",
            "STOPSIGNAL",
            "MAINTAINER"
        ]
    );
    let InstructionKind::Arg(args) = &stage.instructions[0].kind else {
        panic!()
    };
    assert_eq!(
        (
            args[0].name.as_str(),
            args[0].default.as_ref().unwrap().raw.as_str()
        ),
        ("VERSION", "1.0")
    );
    assert!(args[1].default.is_none());
    let InstructionKind::Env(env) = &stage.instructions[1].kind else {
        panic!()
    };
    assert_eq!(env[1].0, "B");
    assert_eq!(env[1].1.raw, "\"two words\"");
    let InstructionKind::Env(env) = &stage.instructions[2].kind else {
        panic!()
    };
    assert_eq!(
        (env[0].0.as_str(), env[0].1.raw.as_str()),
        ("LEGACY", "value with spaces")
    );
    let InstructionKind::Copy(copy) = &stage.instructions[6].kind else {
        panic!()
    };
    assert_eq!(copy.sources.len(), 2);
    assert_eq!(copy.dest.raw, "/dst/");
    assert_eq!(copy.chmod.as_ref().unwrap().raw, "0644");
    let InstructionKind::Run(run) = &stage.instructions[7].kind else {
        panic!()
    };
    assert_eq!(
        run.mounts[0].parsed.as_ref().unwrap().id.as_deref(),
        Some("npm_token")
    );
    assert_eq!(run.network.as_ref().unwrap().raw, "none");
    let CommandLine::Shell(cmd) = &run.command else {
        panic!()
    };
    assert_eq!(cmd.raw, "npm-install --flag");
    let InstructionKind::Run(run) = &stage.instructions[8].kind else {
        panic!()
    };
    let CommandLine::Exec(words) = &run.command else {
        panic!()
    };
    assert_eq!(words[1].raw, "a b");
}

#[test]
fn spans_cover_the_instruction_text() {
    let k = ok("FROM scratch\nENV A=1 \\\n    B=2\nCOPY x /y\n");
    let src = &k.source;
    let texts: Vec<&str> = k.stages[0]
        .instructions
        .iter()
        .map(|i| src.slice(&i.span))
        .collect();
    assert_eq!(texts, vec!["ENV A=1 \\\n    B=2", "COPY x /y"]);
}

#[test]
fn handles_continuations_comments_and_escape_directive() {
    let k = ok("# escape=`\nFROM scratch\n# a comment\nCOPY a `\n     /b/\nWORKDIR C:\\app\n");
    assert_eq!(k.escape, '`');
    assert_eq!(kinds(&k), vec!["COPY", "WORKDIR"]);
    let InstructionKind::Workdir(w) = &k.stages[0].instructions[1].kind else {
        panic!()
    };
    assert_eq!(k.expand(w, &|_| None).unwrap(), "C:\\app");
}

#[test]
fn crlf_line_endings_parse_like_lf() {
    // What git's autocrlf makes of a Kilnfile on Windows: every construct
    // whose meaning a stray CR could change (values, continuations, JSON,
    // here-document bodies, the escape directive).
    let lf = "# escape=`\nFROM scratch AS base\nARG V=1\nENV A=b C=\"d e\"\nLABEL x=y `\n  z=w\n\
              COPY <<EOF /etc/motd\nhello $V\nEOF\nCOPY [\"a b\", \"/c/\"]\nRUN [\"probe\", \"x\"]\nCMD probe\n";
    let crlf = lf.replace('\n', "\r\n");
    assert_eq!(format!("{:?}", ok(&crlf)), format!("{:?}", ok(lf)));
    let k = ok(&crlf);
    let InstructionKind::Copy(c) = &k.stages[0].instructions[3].kind else {
        panic!()
    };
    let CopySource::HereDoc { body, .. } = &c.sources[0] else {
        panic!()
    };
    assert_eq!(body.raw, "hello $V\n", "no CR in a here-document's body");
    // A CR that is not part of a line ending is the file's own.
    let lone = ok("FROM scratch\nLABEL a=\"x\ry\"\n");
    assert!(format!("{lone:?}").contains("x\\ry"));
}

#[test]
fn copy_heredocs_keep_their_names() {
    let k = ok(
        "FROM scratch\nCOPY <<EOF /etc/motd\nhello $NAME\nEOF\nCOPY <<\"RAW\" /raw/\nno $expansion\nRAW\n",
    );
    let InstructionKind::Copy(c) = &k.stages[0].instructions[0].kind else {
        panic!()
    };
    let CopySource::HereDoc { name, body, expand } = &c.sources[0] else {
        panic!()
    };
    assert_eq!(
        (name.as_str(), body.raw.as_str(), *expand),
        ("EOF", "hello $NAME\n", true)
    );
    let InstructionKind::Copy(c) = &k.stages[0].instructions[1].kind else {
        panic!()
    };
    let CopySource::HereDoc { name, expand, .. } = &c.sources[0] else {
        panic!()
    };
    assert_eq!((name.as_str(), *expand), ("RAW", false));
}

#[test]
fn multiple_stages_and_names() {
    let k =
        ok("FROM scratch AS tools\nFROM tools AS build\nCOPY --from=tools /a /b\nFROM scratch\n");
    assert_eq!(k.stages.len(), 3);
    assert_eq!(k.stage("TOOLS").unwrap().index, 0);
    assert_eq!(k.stage("1").unwrap().name.as_deref(), Some("build"));
    assert!(k.stages[2].name.is_none());
}

#[test]
fn unknown_instruction_points_at_it() {
    let e = err("FROM scratch\n  FROB x\n");
    assert_eq!((e.line, e.column), (2, 3));
    assert!(
        e.message.contains("unknown instruction \"FROB\""),
        "{}",
        e.message
    );
    assert!(e.message.contains("expected one of FROM"), "{}", e.message);
    assert!(e.to_string().starts_with("Kilnfile:2:3: "), "{e}");
}

#[test]
fn unsupported_docker_instructions_say_why() {
    for (text, what) in [
        ("FROM scratch\nADD x /y\n", "ADD is not supported"),
        (
            "FROM scratch\nSHELL []\n",
            "SHELL instruction requires at least one argument",
        ),
        ("FROM scratch\nHEALTHCHECK NONE\n", "HEALTHCHECK"),
        ("FROM scratch\nONBUILD RUN x\n", "ONBUILD"),
    ] {
        let e = err(text);
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains(what), "{e}");
    }
}

#[test]
fn unknown_mount_key_points_at_the_key() {
    let e = err("FROM scratch\nRUN --mount=type=secret,id=x,colour=red tool\n");
    assert_eq!((e.line, e.column), (2, 30));
    assert_eq!(e.width, "colour=red".len());
    assert!(e.message.contains("unknown --mount key \"colour\""), "{e}");
}

#[test]
fn mount_errors_cover_types_and_values() {
    let e = err("FROM scratch\nRUN --mount=type=nfs,target=/x tool\n");
    assert!(e.message.contains("unknown mount type"), "{e}");
    let e = err("FROM scratch\nRUN --mount=type=secret,id=x,mode=9 tool\n");
    assert!(e.message.contains("octal"), "{e}");
    // A spec with variables is checked after expansion, not here.
    let k = ok("FROM scratch\nARG ID\nRUN --mount=type=secret,id=$ID tool\n");
    let InstructionKind::Run(run) = &k.stages[0].instructions[1].kind else {
        panic!()
    };
    assert!(run.mounts[0].parsed.is_none());
}

#[test]
fn unknown_flags_are_errors() {
    let e = err("FROM scratch\nCOPY --frm=x a /b\n");
    assert_eq!((e.line, e.column), (2, 6));
    assert!(e.message.contains("unknown flag --frm for COPY"), "{e}");
    assert!(
        e.message.contains("expected --from, --chown, --chmod"),
        "{e}"
    );
    let e = err("FROM scratch\nRUN --security=insecure x\n");
    assert!(e.message.contains("always sandboxed"), "{e}");
    let e = err("FROM --plat=x scratch\n");
    assert!(e.message.contains("--platform"), "{e}");
    let e = err("FROM scratch\nCOPY --chmod=755 --chmod=700 a /b\n");
    assert!(e.message.contains("given twice"), "{e}");
    let e = err("FROM scratch\nCOPY --from a /b\n");
    assert!(e.message.contains("needs a value"), "{e}");
}

#[test]
fn network_modes_other_than_none_and_default_are_refused() {
    ok("FROM scratch\nRUN --network=none tool\n");
    ok("FROM scratch\nRUN --network=default tool\n");
    let e = err("FROM scratch\nRUN --network=host tool\n");
    assert!(e.message.contains("--allow-net"), "{e}");
    assert_eq!((e.line, e.column), (2, 15));
    let e = err("FROM scratch\nRUN --network=wifi tool\n");
    assert!(e.message.contains("unknown network mode"), "{e}");
}

#[test]
fn chmod_must_be_octal() {
    let e = err("FROM scratch\nCOPY --chmod=u+x a /b\n");
    assert!(e.message.contains("not an octal mode"), "{e}");
    assert_eq!(parse_chmod("0755").unwrap(), 0o755);
}

#[test]
fn structural_errors() {
    let e = err("ENV A=1\nFROM scratch\n");
    assert!(e.message.contains("only ARG may come before FROM"), "{e}");
    assert_eq!(e.line, 1);
    let e = err("# just a comment\n");
    assert!(e.message.contains("at least one FROM"), "{e}");
    let e = err("FROM scratch AS a\nFROM scratch AS A\n");
    assert!(e.message.contains("duplicate stage name"), "{e}");
    assert_eq!(e.line, 2);
    let e = err("FROM scratch AS 1st\n");
    assert!(e.message.contains("invalid stage name"), "{e}");
    let e = err("FROM scratch\nENV A=1 B\n");
    assert!(e.message.contains("no '='"), "{e}");
    assert_eq!((e.line, e.column), (2, 9));
    let e = err("FROM scratch\nENV ONLYKEY\n");
    assert!(e.message.contains("expected a value"), "{e}");
    let e = err("FROM scratch\nARG 9lives\n");
    assert!(e.message.contains("invalid ARG name"), "{e}");
    let e = err("FROM scratch\nCOPY onlyone\n");
    assert!(e.message.contains("at least two arguments"), "{e}");
    assert_eq!((e.line, e.column), (2, 1));
    // Like Docker, text that is not valid JSON is the plain form.
    let k = ok("FROM scratch\nRUN [\"unterminated\n");
    let InstructionKind::Run(run) = &k.stages[0].instructions[0].kind else {
        panic!()
    };
    assert!(matches!(run.command, CommandLine::Shell(_)));
    let e = err("FROM scratch\nCOPY <<EOF /x\nno end\n");
    assert!(e.message.contains("here-document"), "{e}");
}

#[test]
fn expansion_errors_point_into_the_word() {
    let k = ok("FROM scratch\nWORKDIR /a/${X%y}\n");
    let InstructionKind::Workdir(w) = &k.stages[0].instructions[0].kind else {
        panic!()
    };
    let e = k.expand(w, &|_| None).unwrap_err();
    assert_eq!((e.line, e.column), (2, 15));
    assert!(e.message.contains("unsupported modifier"), "{e}");
}

#[test]
fn oversized_files_are_refused() {
    let big = format!("FROM scratch\n#{}\n", "x".repeat(MAX_KILNFILE_BYTES));
    assert!(err(&big).message.contains("expected at most"));
}

#[test]
fn a_20000_deep_substitution_is_a_located_error_not_a_stack_overflow() {
    let depth = 20_000;
    let word = "${A:-".repeat(depth) + "x" + &"}".repeat(depth);
    let k = ok(&format!("FROM scratch\nWORKDIR {word}\n"));
    let InstructionKind::Workdir(w) = &k.stages[0].instructions[0].kind else {
        panic!("expected WORKDIR");
    };
    // Run where a build expands words: on a thread with a 2 MiB stack.
    let d = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, || k.expand(w, &|_| None))
            .unwrap()
            .join()
            .unwrap()
    })
    .unwrap_err();
    let column = "WORKDIR ".len() + expand::MAX_NESTING * "${A:-".len() + 1;
    assert_eq!((d.line, d.column), (2, column));
    assert!(d.message.contains("nested deeper than"), "{d}");
}

#[test]
fn generated_giants_are_refused_before_they_cost_quadratic_work() {
    // 300,000 ENV entries on one line hung the build (found by hand while
    // hardening): now a located error at parse time.
    let line: Vec<String> = (0..300_000).map(|i| format!("A{i}=x")).collect();
    let d = err(&format!("FROM scratch\nENV {}\n", line.join(" ")));
    assert_eq!((d.line, d.column), (2, 1));
    assert!(d.message.contains("more than 10000 ARG, ENV, LABEL"), "{d}");
    // At the limit is fine.
    let line: Vec<String> = (0..MAX_CONFIG_ENTRIES).map(|i| format!("A{i}=x")).collect();
    ok(&format!("FROM scratch\nENV {}\n", line.join(" ")));
    // VOLUME of 400,000 paths took minutes; the entries count together.
    let volumes: Vec<String> = (0..MAX_CONFIG_ENTRIES).map(|i| format!("/v{i}")).collect();
    let d = err(&format!(
        "FROM scratch\nEXPOSE 80\nVOLUME {}\n",
        volumes.join(" ")
    ));
    assert_eq!((d.line, d.column), (3, 1));

    let many = "WORKDIR /a\n".repeat(MAX_INSTRUCTIONS);
    let d = err(&format!("FROM scratch\n{many}"));
    assert_eq!(d.line, MAX_INSTRUCTIONS + 1);
    assert!(d.message.contains("more than 10000 instructions"), "{d}");
    ok(&format!(
        "FROM scratch\n{}",
        "WORKDIR /a\n".repeat(MAX_INSTRUCTIONS - 1)
    ));
}
