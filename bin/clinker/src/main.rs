//! `clinker`: one binary for every role.
//!
//! - `clinker serve`: API, scheduler, one volume service per enabled
//!   backend and the backup service in one process, on the in-process bus (all-in-one).
//! - `clinker api`, `clinker scheduler`, `clinker volume`, `clinker backup`: one role per
//!   process for multi-node deployments (shared database, RabbitMQ).
//! - `clinker manage db sync | db version | service list | quota check | quota sync |
//!   config sample | config check`.
//!
//! This crate only wires the library crates together.

use clinker::{manage, wiring};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: the API builds and drops many
/// small strings and maps per request, and glibc's free-list
/// consolidation showed up at the top of the list-path profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// OpenStack Block Storage (Cinder) API v3, in one binary.
#[derive(Debug, Parser)]
#[command(name = "clinker", version, about)]
struct Cli {
    /// A cinder.conf-style file; repeat to layer several (later ones win).
    #[arg(long = "config-file", global = true, value_name = "PATH")]
    config_file: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the API, the scheduler and every enabled backend in one process.
    Serve,
    /// Runs only the API (multi-node; needs a shared database and transport_url).
    Api,
    /// Runs only a scheduler (multi-node).
    Scheduler,
    /// Runs one volume service per enabled backend (multi-node).
    Volume,
    /// Runs the backup service of this host (multi-node).
    Backup,
    /// Administrative commands (`cinder-manage`).
    Manage {
        #[command(subcommand)]
        command: manage::ManageCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clinker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => wiring::serve(&cli.config_file).await,
            Command::Api => wiring::run_role(&cli.config_file, wiring::Role::Api).await,
            Command::Scheduler => wiring::run_role(&cli.config_file, wiring::Role::Scheduler).await,
            Command::Volume => wiring::run_role(&cli.config_file, wiring::Role::Volume).await,
            Command::Backup => wiring::run_role(&cli.config_file, wiring::Role::Backup).await,
            Command::Manage { command } => manage::run(&cli.config_file, command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clinker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
