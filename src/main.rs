//! The command line (API.md, "Command line"). Only argument handling lives
//! here; everything else is in the library.

use census_login::clock::Clock;
use census_login::config::Settings;
use census_login::keys::Keys;
use census_login::startup::{Application, Clocks, build_store, pepper};
use census_login::{metrics::Metrics, registry, telemetry};
use clap::{Parser, Subcommand};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "census-login",
    version = env!("CENSUS_VERSION"),
    about = "Census self-enumeration login service"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run both listeners (the default).
    Serve,
    /// Population registry.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Lift a lock from the command line.
    Unlock { pesel: String },
    /// Delete all census data from the store after confirmation.
    Purge {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Print Argon2 hashes per second of the configured parameters on all cores.
    BenchHash {
        /// How long to measure.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Threads to hash on (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Upsert a registry CSV into the configured store.
    Import { file: std::path::PathBuf },
    /// Write a synthetic registry CSV to stdout.
    Generate {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 2021)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    telemetry::init(&settings.log);
    // One thread for what is not a request: the Redis connections' drivers, the
    // rate-limit reporter, background sweeps. Request work runs on actix-web's own
    // per-core workers, hashing on its own threads; a work-stealing pool here only
    // added parking and wake-ups to every store call.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::Registry(RegistryCommand::Import { file }) => import(settings, &file).await,
            Command::Registry(RegistryCommand::Generate { count, seed }) => generate(count, seed),
            Command::Unlock { pesel } => unlock(settings, &pesel).await,
            Command::Purge { yes } => purge(settings, yes).await,
            Command::BenchHash {
                duration,
                threads,
                json,
            } => census_login::auth::bench::run(&settings, duration, threads, json),
        }
    })
}

fn fail(message: &str) -> ExitCode {
    eprintln!("census-login: {message}");
    ExitCode::FAILURE
}

async fn serve(settings: Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => return fail(&e.to_string()),
    };
    tracing::info!(
        public_port = app.public_port(),
        admin_port = app.admin_port(),
        "listening"
    );
    let handle = app.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        handle.shutdown().await;
    });
    match app.run_until_stopped().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `registry generate`: a synthetic registry on stdout.
fn generate(count: usize, seed: u64) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match registry::generate(count, seed, &mut out).and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write: {e}")),
    }
}

async fn import(settings: Settings, file: &std::path::Path) -> ExitCode {
    let reader = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) => return fail(&format!("{}: {e}", file.display())),
    };
    let keys = Keys::from_pepper(&pepper(&settings));
    let (records, bad) = match registry::load(
        std::io::BufReader::new(reader),
        census_login::clock::SystemClock.poland_today(),
        &keys,
    ) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    for b in &bad {
        eprintln!("{}:{}: {}", file.display(), b.line, b.reason);
    }
    let store = match build_store(&settings, Arc::new(Metrics::new("cli")), &Clocks::default()) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let bar = indicatif::ProgressBar::new(records.len() as u64);
    for chunk in records.chunks(1000) {
        if let Err(e) = store.upsert_registry(chunk).await {
            bar.abandon();
            return fail(&e.to_string());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    eprintln!("imported {} rows, {} bad", records.len(), bad.len());
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn unlock(settings: Settings, pesel: &str) -> ExitCode {
    let metrics = Arc::new(Metrics::new("cli"));
    let keys = Arc::new(Keys::from_pepper(&pepper(&settings)));
    let auth = match build_store(&settings, metrics.clone(), &Clocks::default()) {
        Ok(store) => census_login::startup::build_helpline(&settings, metrics, store, keys),
        Err(e) => return fail(&e.to_string()),
    };
    match auth.unlock(pesel, "cli").await {
        Ok(()) => {
            eprintln!("unlocked");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

async fn purge(settings: Settings, yes: bool) -> ExitCode {
    if !yes {
        eprint!(
            "This deletes ALL census data (registry, accounts, sessions) from the {:?} store. Type PURGE to continue: ",
            settings.backend()
        );
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim() != "PURGE" {
            return fail("not confirmed; nothing deleted");
        }
    }
    let store = match build_store(&settings, Arc::new(Metrics::new("cli")), &Clocks::default()) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    match store.purge().await {
        Ok(n) => {
            eprintln!("deleted {n} keys");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}
