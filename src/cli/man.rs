//! `kvault man [--dir DIR]`: the manual pages. Without `--dir`, kvault(1)
//! on stdout; with it, kvault.1 and one page per command
//! (`kvault-snapshot.1`, `kvault-key-add.1`, …), every page with an EXIT
//! STATUS section (README "Exit codes"), so the pages kvault(1) lists
//! exist.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use kvault::error::exit;

use super::Ctx;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write kvault.1 and a page per command into this directory (e.g.
    /// /usr/local/share/man/man1) instead of printing kvault(1).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The documented exit codes, as the EXIT STATUS section lists them.
const EXIT_CODES: [(i32, &str); 8] = [
    (exit::OK, "success"),
    (
        exit::ERROR,
        "an error not listed below (corruption found by check included)",
    ),
    (
        exit::USAGE,
        "a usage error: a bad flag, value or configuration file",
    ),
    (
        exit::INCOMPLETE,
        "the command finished but could not do everything it was asked",
    ),
    (exit::NO_REPOSITORY, "no repository at the location"),
    (exit::LOCKED, "the repository is locked by another process"),
    (exit::WRONG_PASSWORD, "wrong password, or no key for it"),
    (exit::INTERRUPTED, "interrupted by SIGINT or SIGTERM"),
];

/// One page: clap_mangen's sections, then EXIT STATUS.
fn render(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    writeln!(w, ".SH \"EXIT STATUS\"")?;
    for (code, what) in EXIT_CODES {
        writeln!(w, ".TP\n\\fB{code}\\fR\n{what}")?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// Writes `cmd`'s page and its subcommands' pages into `dir`; returns
/// the files written.
fn write_pages(cmd: clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        write_pages(sub, dir, out)?;
    }
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let mut f = std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
    render(cmd, &mut f).with_context(|| format!("writing {}", path.display()))?;
    out.push(path);
    Ok(())
}

/// Runs `kvault man`.
pub fn run(ctx: &Ctx, a: &ManArgs) -> Result<i32> {
    let mut cmd = <super::Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    // Names subcommands `kvault-snapshot` and gives them the global flags.
    cmd.build();
    match &a.dir {
        None => render(cmd, &mut std::io::stdout()).context("writing the man page")?,
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut pages = Vec::new();
            write_pages(cmd, dir, &mut pages)?;
            pages.sort();
            let names: Vec<String> = pages.iter().map(|p| p.display().to_string()).collect();
            ctx.out
                .emit("man", serde_json::json!({ "pages": names }), || names.join("\n"));
        }
    }
    Ok(exit::OK)
}
