//! Cached rebuilds: nothing changed, every step `CACHED`, so the figure is
//! what kiln does to find that out (read the Kilnfile, hash the context,
//! look up each step) plus its process start.

use crate::Group;
use crate::env::{Env, R, kiln, median, s, small_tree};
use crate::table::{Goal, Row, Unit, thousands};

fn context_name(files: usize) -> String {
    format!(
        "cached rebuild, unchanged {}-file context (COPY + 2 RUN)",
        thousands(files)
    )
}

const TWENTY: &str = "cached rebuild, 20 RUN steps (median)";

pub(crate) fn context(env: &Env) -> Group {
    let name = context_name(env.context_files);
    Group {
        names: vec![name.clone()],
        run: Box::new(move |env: &Env| {
            vec![Row::new(&name, Unit::Secs, Goal::Under(1.0)).kiln(context_rebuild(env))]
        }),
    }
}

fn context_rebuild(env: &Env) -> R<f64> {
    let store = env.warm_store()?;
    let ctx = env.fresh_dir("context")?;
    small_tree(&ctx, env.context_files, 16, 512, 3)?;
    let kilnfile = env.kilnfile(
        "context.Kilnfile",
        "FROM toolbox\nCOPY . /ctx/\nRUN [\"/bin/touch\", \"/built\"]\n\
         RUN [\"/bin/ls\", \"/ctx\"]\n",
    )?;
    let args = ["build", "-q", "-t", "context", "-f", s(&kilnfile)];
    kiln(&store, &args, &ctx)?;
    env.best(|| kiln(&store, &args, &ctx))
}

pub(crate) fn twenty_steps(_env: &Env) -> Group {
    Group {
        names: vec![TWENTY.into()],
        run: Box::new(|env: &Env| {
            vec![Row::new(TWENTY, Unit::Millis, Goal::Under(25.0)).kiln(twenty(env))]
        }),
    }
}

fn twenty(env: &Env) -> R<f64> {
    let store = env.warm_store()?;
    let ctx = env.fresh_dir("twenty")?;
    let mut text = String::from("FROM toolbox\n");
    for i in 0..20 {
        text.push_str(&format!("RUN [\"/bin/touch\", \"/f{i}\"]\n"));
    }
    let kilnfile = env.kilnfile("twenty.Kilnfile", &text)?;
    let args = ["build", "-q", "-t", "twenty", "-f", s(&kilnfile)];
    kiln(&store, &args, &ctx)?;
    let secs = median((env.runs * 5).max(11), || kiln(&store, &args, &ctx))?;
    Ok(secs * 1000.0)
}
