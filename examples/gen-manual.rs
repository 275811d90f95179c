//! `gen-manual`: writes the manual pages and shell completions of
//! `tcpvsadm` and `ktcpvsd`, generated from their clap definitions (the
//! very `cli.rs` and `options.rs` the programs are built from), under a
//! prefix in the usual layout:
//!
//! ```text
//! PREFIX/share/man/man8/{tcpvsadm,ktcpvsd}.8
//! PREFIX/share/bash-completion/completions/{tcpvsadm,ktcpvsd}
//! PREFIX/share/zsh/site-functions/{_tcpvsadm,_ktcpvsd}
//! PREFIX/share/fish/vendor_completions.d/{tcpvsadm,ktcpvsd}.fish
//! ```
//!
//! `cargo run --example gen-manual -- --prefix ~/.local` installs them for
//! one user (docs/tcpvsadm.md, "Manual page and completions"). A separate
//! generator, rather than a hidden flag on each program, keeps the programs'
//! command lines (and the daemon's binary) free of a maintainer's tool.

#[allow(dead_code)]
#[path = "tcpvsadm/cli.rs"]
mod tcpvsadm_cli;

#[allow(dead_code)]
#[path = "ktcpvsd/options.rs"]
mod ktcpvsd_options;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use clap_complete::Shell;

/// The command line of the generator.
#[derive(Debug, Parser)]
#[command(
    name = "gen-manual",
    about = "Write the manual pages (section 8) and bash, zsh and fish completions of tcpvsadm and ktcpvsd under PREFIX/share"
)]
struct Args {
    /// Where to write: PREFIX/share/man/man8, PREFIX/share/bash-completion/completions, PREFIX/share/zsh/site-functions, PREFIX/share/fish/vendor_completions.d.
    #[arg(long, value_name = "DIR")]
    prefix: PathBuf,
}

/// What could not be written.
#[derive(Debug, thiserror::Error)]
enum GenError {
    /// A directory or file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes `bytes` to `path`, creating its directory.
fn write(path: &Path, bytes: &[u8]) -> Result<(), GenError> {
    let fail = |source| GenError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, bytes).map_err(fail)?;
    println!("{}", path.display());
    Ok(())
}

/// The manual page and the completions of one program.
fn generate(mut command: clap::Command, prefix: &Path) -> Result<(), GenError> {
    let name = command.get_name().to_string();
    let share = prefix.join("share");
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .render(&mut page)
        .map_err(|source| GenError::Write {
            path: PathBuf::from(format!("{name}.8")),
            source,
        })?;
    write(&share.join(format!("man/man8/{name}.8")), &page)?;
    for (shell, path) in [
        (Shell::Bash, format!("bash-completion/completions/{name}")),
        (Shell::Zsh, format!("zsh/site-functions/_{name}")),
        (
            Shell::Fish,
            format!("fish/vendor_completions.d/{name}.fish"),
        ),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut script);
        write(&share.join(path), &script)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let programs = [
        tcpvsadm_cli::Cli::command(),
        ktcpvsd_options::Options::command(),
    ];
    for command in programs {
        if let Err(e) = generate(command, &args.prefix) {
            eprintln!("gen-manual: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
