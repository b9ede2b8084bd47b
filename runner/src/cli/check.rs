//! `kiln check [--repair]`: prints what [`Store::check`] found and did, and
//! picks the exit code (1 while damage remains).

use std::process::ExitCode;

use anyhow::Result;

use super::CheckArgs;
use super::printer::Printer;
use crate::store::{CheckOptions, Store};

pub(super) fn check(store: &Store, args: CheckArgs, printer: &Printer) -> Result<ExitCode> {
    let report = store.check(CheckOptions {
        repair: args.repair,
    })?;
    for finding in &report.damaged {
        let reason = match finding.reason.as_str() {
            "missing" => "missing".to_string(),
            reason => format!("damaged: {reason}"),
        };
        printer.out(&format!(
            "{} ({}): {reason}",
            finding.object,
            finding.path.display()
        ));
        if !finding.reached_by.is_empty() {
            let users: Vec<&str> = finding.reached_by.iter().map(String::as_str).collect();
            printer.out(&format!("  used by {}", users.join(", ")));
        }
    }
    for repair in &report.repairs {
        printer.out(&format!("{}: {}", repair.object, repair.action));
    }
    for problem in &report.unrepaired {
        printer.warn(problem);
    }
    let c = report.counts;
    printer.out(&format!(
        "checked {} image(s), {} blob(s), {} layer index(es), {} file content(s), {} cache entr{}: {}",
        c.images,
        c.blobs,
        c.layer_indexes,
        c.file_contents,
        c.cache_entries,
        if c.cache_entries == 1 { "y" } else { "ies" },
        match (report.damaged.len(), args.repair) {
            (0, _) => "no damage".to_string(),
            (n, false) => format!("{n} damaged or missing"),
            (n, true) => format!("{n} damaged or missing, {} repair(s) made", report.repairs.len()),
        }
    ));
    if report.is_clean() {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.repair {
        printer.hint(
            "`kiln check --repair` rebuilds what can be rebuilt and removes what cannot (a removed image is built again by its next build)",
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if report.unrepaired.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
