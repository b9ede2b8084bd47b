//! Limits on how much a Kilnfile may ask for, beyond its size in bytes
//! (`MAX_KILNFILE_BYTES`): how many instructions, and how many entries of
//! the image config. Only generated files reach them; each is a
//! [`Diagnostic`] at the instruction that passes it.

use super::{Diagnostic, Instruction, InstructionKind, Source, Span};

/// Most instructions (FROM included) in one Kilnfile. Written by hand,
/// Kilnfiles have tens; a build's work per instruction grows with the
/// image config so far, so a generated 4 MiB file of 600,000 one-line
/// instructions would take hours. 10,000 is far past any real one.
pub const MAX_INSTRUCTIONS: usize = 10_000;

/// Most ARG, ENV, LABEL, EXPOSE and VOLUME entries in one Kilnfile,
/// together. Each one is looked up among the others while building (ENV
/// replaces a variable of the same name, EXPOSE a port), so their number
/// squared bounds that work: a 4 MiB `ENV A0=x A1=x ...` line of 300,000
/// entries, or `VOLUME` of 400,000 paths, hung the build.
pub const MAX_CONFIG_ENTRIES: usize = 10_000;

/// What a Kilnfile has used of the limits so far.
#[derive(Default)]
pub(super) struct Budget {
    instructions: usize,
    entries: usize,
}

impl Budget {
    /// Counts one more instruction, at `span`.
    pub(super) fn instruction(&mut self, source: &Source, span: &Span) -> Result<(), Diagnostic> {
        self.instructions += 1;
        if self.instructions > MAX_INSTRUCTIONS {
            return Err(source.error(
                span.clone(),
                format!("more than {MAX_INSTRUCTIONS} instructions: split the build"),
            ));
        }
        Ok(())
    }

    /// Counts the config entries `inst` declares.
    pub(super) fn entries(
        &mut self,
        source: &Source,
        inst: &Instruction,
    ) -> Result<(), Diagnostic> {
        self.entries += match &inst.kind {
            InstructionKind::Arg(v) => v.len(),
            InstructionKind::Env(v) => v.len(),
            InstructionKind::Label(v) => v.len(),
            InstructionKind::Expose(v) | InstructionKind::Volume(v) => v.len(),
            _ => 0,
        };
        if self.entries > MAX_CONFIG_ENTRIES {
            return Err(source.error(
                inst.span.clone(),
                format!(
                    "more than {MAX_CONFIG_ENTRIES} ARG, ENV, LABEL, EXPOSE and VOLUME entries in one Kilnfile"
                ),
            ));
        }
        Ok(())
    }
}
