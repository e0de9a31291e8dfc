//! `clinker manage …` (Cinder's `cinder-manage`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use clinker_db::{Database, ServiceRepository};

use crate::wiring::{load_config, open_database, redact};

/// Administrative commands.
#[derive(Debug, Subcommand)]
pub enum ManageCommand {
    /// Database schema.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Registered services.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Quota usage bookkeeping.
    Quota {
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// Moving from OpenStack Cinder.
    Cinder {
        #[command(subcommand)]
        command: CinderCommand,
    },
    /// The configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `manage cinder …`.
#[derive(Debug, Subcommand)]
pub enum CinderCommand {
    /// Imports Cinder's database (schema of Cinder 29) into Clinker's
    /// (`[database] connection`), in one transaction.
    Import {
        /// Cinder's database, as in its cinder.conf
        /// (`mysql+pymysql://…`, `postgresql://…`).
        #[arg(long, value_name = "URL")]
        from: String,
        /// Prints the report and writes nothing.
        #[arg(long)]
        dry_run: bool,
        /// Removes what Clinker's database holds (an earlier import or
        /// data of its own) and imports again.
        #[arg(long)]
        replace: bool,
        /// Imports although Cinder's services still report heartbeats.
        #[arg(long)]
        force: bool,
    },
    /// Writes Clinker's objects into an empty Cinder 29 database (made by
    /// `cinder-manage db sync`), in one transaction, so Cinder serves
    /// them again.
    Export {
        /// The Cinder database, as in its cinder.conf
        /// (`mysql+pymysql://…`, `postgresql://…`).
        #[arg(long, value_name = "URL")]
        to: String,
        /// Prints the report and writes nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `manage config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Prints every option Clinker reads, by section, with its default
    /// (like oslo-config-generator's sample file).
    Sample,
    /// Validates the `--config-file` set without starting anything: values,
    /// unknown options (warnings), the policy file, authentication set-up
    /// and the `[ssl]` files.
    Check,
}

/// `manage db …`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Creates or upgrades the schema (and the default volume type).
    Sync,
    /// Prints the schema version.
    Version,
}

/// `manage service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Lists services with their state.
    List,
}

/// `manage quota …`.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Compares usage counters with a recount of the resources.
    Check {
        /// Only this project.
        #[arg(long)]
        project_id: Option<String>,
    },
    /// Rewrites usage counters from a recount.
    Sync {
        /// Only this project.
        #[arg(long)]
        project_id: Option<String>,
    },
}

/// Runs one `manage` command.
pub async fn run(files: &[PathBuf], command: ManageCommand) -> anyhow::Result<ExitCode> {
    if let ManageCommand::Config { command } = &command {
        return run_config(files, command);
    }
    let config = load_config(files)?;
    let db = open_database(&config).await?;
    if let ManageCommand::Cinder { command } = command {
        let result = cinder(&config, &db, command).await;
        db.close().await;
        return result;
    }
    let code = match command {
        ManageCommand::Db {
            command: DbCommand::Sync,
        } => {
            let applied = db.migrate(&config.default.default_volume_type).await?;
            println!(
                "database at schema version {} (applied now: {applied:?})",
                clinker_db::latest_version()
            );
            ExitCode::SUCCESS
        }
        ManageCommand::Db {
            command: DbCommand::Version,
        } => {
            println!("{}", db.schema_version().await?);
            ExitCode::SUCCESS
        }
        ManageCommand::Service {
            command: ServiceCommand::List,
        } => {
            let now = clinker_types::Clock::now(&clinker_types::SystemClock);
            println!(
                "{:<18} {:<32} {:<10} {:<8} {:<6} {:<26} Backend State",
                "Binary", "Host", "Zone", "Status", "State", "Updated At"
            );
            for s in db.list_services(None, None).await? {
                let state = if s.is_up(now, config.default.service_down_time) {
                    ":-)"
                } else {
                    "XXX"
                };
                println!(
                    "{:<18} {:<32} {:<10} {:<8} {:<6} {:<26} {}",
                    s.binary,
                    s.host,
                    s.availability_zone,
                    if s.disabled { "disabled" } else { "enabled" },
                    state,
                    s.updated_at.map(|t| t.to_iso8601()).unwrap_or_default(),
                    s.backend_state.unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        // Answered above, before any database is opened.
        ManageCommand::Config { .. } => ExitCode::SUCCESS,
        ManageCommand::Quota { command } => {
            let (project, fix) = match command {
                QuotaCommand::Check { project_id } => (project_id, false),
                QuotaCommand::Sync { project_id } => (project_id, true),
            };
            quota(&db, project, fix).await?
        }
        ManageCommand::Cinder { .. } => unreachable!("handled above"),
    };
    db.close().await;
    Ok(code)
}

async fn quota(db: &dyn Database, project: Option<String>, fix: bool) -> anyhow::Result<ExitCode> {
    let projects = match project {
        Some(p) => vec![p],
        None => db.projects_with_usage().await?,
    };
    let mut drifted = 0;
    for project in projects {
        let counters = db.quota_usages(&project).await?;
        let truth = db.recount_usages(&project).await?;
        let keys: std::collections::BTreeSet<&String> =
            counters.keys().chain(truth.keys()).collect();
        for key in keys {
            let have = counters.get(key).copied().unwrap_or(0);
            let want = truth.get(key).copied().unwrap_or(0);
            if have != want {
                drifted += 1;
                println!("project {project}: {key} counter {have}, actual {want}");
            }
        }
        if fix {
            db.sync_usages(&project).await?;
        }
    }
    if drifted == 0 {
        println!("quota usage matches the resources");
        Ok(ExitCode::SUCCESS)
    } else if fix {
        println!("{drifted} counters rewritten");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}

async fn cinder(
    config: &clinker_config::Config,
    db: &clinker_db::Db,
    command: CinderCommand,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use clinker_db::cinder::{self, ExportOptions, ImportOptions, Outcome};
    let (from, dry_run, replace, force) = match command {
        CinderCommand::Import {
            from,
            dry_run,
            replace,
            force,
        } => (from, dry_run, replace, force),
        CinderCommand::Export { to, dry_run } => {
            let target = cinder::open_cinder_database(&to)
                .await
                .with_context(|| format!("cannot open Cinder's database ({})", redact(&to)))?;
            let report = cinder::export(db, &target, &ExportOptions { dry_run }).await;
            target.close().await;
            print!("{}", report?);
            return Ok(ExitCode::SUCCESS);
        }
    };
    let source = cinder::open_cinder_database(&from)
        .await
        .with_context(|| format!("cannot open Cinder's database ({})", redact(&from)))?;
    if !dry_run {
        db.migrate(&config.default.default_volume_type)
            .await
            .context("Clinker's database")?;
    }
    let options = ImportOptions {
        dry_run,
        replace,
        force,
        service_down_time: i64::try_from(config.default.service_down_time).unwrap_or(i64::MAX),
        enabled_backends: config.default.enabled_backends.clone(),
        default_volume_type: config.default.default_volume_type.clone(),
        source_label: redact(&from),
    };
    let report = if dry_run && db.schema_version().await? == 0 {
        // Nothing to compare against: only read the source.
        cinder::plan(&source, &options).await.map(|p| p.report)
    } else {
        cinder::import(db, &source, &options).await
    };
    source.close().await;
    let report = report?;
    print!("{report}");
    Ok(match report.outcome {
        Outcome::DryRun | Outcome::Imported | Outcome::AlreadyImported { .. } => ExitCode::SUCCESS,
    })
}

fn run_config(files: &[PathBuf], command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Sample => {
            print!("{}", config_sample());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check => {
            let config = clinker_config::Config::load(
                files,
                &clinker_config::ConfigEnv {
                    hostname: crate::wiring::hostname(),
                },
            )?;
            for warning in &config.warnings {
                println!("warning: {warning}");
            }
            crate::wiring::check_api_setup(&config)?;
            println!(
                "configuration is valid ({} file(s), {} backend(s), {} warning(s))",
                files.len(),
                config.backends.len(),
                config.warnings.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The sample configuration: each section once, its options commented
/// out with their defaults.
fn config_sample() -> String {
    let mut sections: Vec<(String, Vec<clinker_config::SampleOption>)> = Vec::new();
    for option in clinker_config::Config::sample() {
        match sections
            .iter_mut()
            .find(|(name, _)| *name == option.section)
        {
            Some((_, options)) => options.push(option),
            None => sections.push((option.section.clone(), vec![option])),
        }
    }
    let mut out = String::from(
        "# Clinker configuration sample: every option it reads, with its default.\n\
         # Backend sections are shown once per driver ([file], [fake], [lvm], [rbd]);\n\
         # name yours as you like and list them in enabled_backends.\n",
    );
    for (section, options) in sections {
        out.push_str(&format!("\n[{section}]\n"));
        for option in options {
            match option.default {
                Some(default) if !default.is_empty() => {
                    out.push_str(&format!("#{} = {default}\n", option.option))
                }
                _ => out.push_str(&format!("#{} =\n", option.option)),
            }
        }
    }
    out
}
