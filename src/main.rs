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
    /// Stream a registry CSV (`-` = stdin) into the configured store.
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

/// Progress output: a bar on a terminal, a plain line every few seconds otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines {
        last: std::time::Instant,
        every: std::time::Duration,
    },
}

impl Progress {
    /// `len`: the total (bytes of the input, keys to delete), if known.
    fn new(len: Option<u64>) -> Self {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                last: std::time::Instant::now(),
                every: std::time::Duration::from_secs(5),
            };
        }
        let bar = match len {
            Some(n) => indicatif::ProgressBar::new(n).with_style(
                indicatif::ProgressStyle::with_template(
                    "{wide_bar} {percent:>3}% {msg} · {elapsed} elapsed, {eta} left",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self::Bar(bar)
    }

    /// `at` of `len` done; `what` says it in words.
    fn update(&mut self, at: u64, len: Option<u64>, what: &str) {
        match self {
            Self::Bar(bar) => {
                if let Some(len) = len {
                    bar.set_length(len.max(at));
                }
                bar.set_position(at);
                bar.set_message(what.to_owned());
            }
            Self::Lines { last, every } => {
                if last.elapsed() >= *every {
                    *last = std::time::Instant::now();
                    let share = len
                        .filter(|l| *l > 0)
                        .map(|l| format!(", {:.0}%", 100.0 * at as f64 / l as f64))
                        .unwrap_or_default();
                    eprintln!("{what}{share}");
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// `registry import FILE|-`: streams the CSV into the store, with progress
/// and a summary; exits non-zero when rows were rejected (API.md).
async fn import(settings: Settings, file: &std::path::Path) -> ExitCode {
    let (input, name, size): (Box<dyn std::io::Read + Send>, String, Option<u64>) =
        if file.as_os_str() == "-" {
            (Box::new(std::io::stdin()), "(stdin)".to_owned(), None)
        } else {
            match std::fs::File::open(file) {
                Ok(f) => {
                    let size = f.metadata().ok().map(|m| m.len());
                    (Box::new(f), file.display().to_string(), size)
                }
                Err(e) => return fail(&format!("{}: {e}", file.display())),
            }
        };
    let keys = Arc::new(Keys::from_pepper(&pepper(&settings)));
    let store = match build_store(&settings, Arc::new(Metrics::new("cli")), &Clocks::default()) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let started = std::time::Instant::now();
    let rate = move |rows: u64| rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
    let mut progress = Progress::new(size);
    let result = registry::import(
        input,
        census_login::clock::SystemClock.poland_today(),
        keys,
        store,
        |p| {
            let what = format!(
                "{} rows, {:.0} rows/s, {} rejected",
                p.rows,
                rate(p.rows),
                p.rejected
            );
            progress.update(p.bytes, size, &what);
        },
    )
    .await;
    progress.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            return fail(&format!(
                "{e} (importing again is safe: rows already in are counted unchanged)"
            ));
        }
    };
    let c = report.counts;
    let rows = c.imported + c.updated + c.unchanged + report.rejected;
    eprintln!(
        "imported {}, updated {}, unchanged {}, rejected {} ({rows} rows in {:.1} s, {:.0} rows/s)",
        c.imported,
        c.updated,
        c.unchanged,
        report.rejected,
        started.elapsed().as_secs_f64(),
        rate(rows),
    );
    for b in &report.bad {
        eprintln!("rejected {name}:{}: {}", b.line, b.reason);
    }
    if report.rejected > report.bad.len() as u64 {
        eprintln!(
            "… and {} more rejected rows not listed",
            report.rejected - report.bad.len() as u64
        );
    }
    if report.rejected == 0 {
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

/// `purge`: everything under `census:` goes, in batches that never block
/// Redis, after the operator typed PURGE (or `--yes`; without a terminal
/// there is nobody to ask, so `--yes` is required).
async fn purge(settings: Settings, yes: bool) -> ExitCode {
    if !yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return fail("not confirmed (no terminal to ask; pass --yes); nothing deleted");
        }
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
    let progress = std::sync::Mutex::new(Progress::new(None));
    let result = store
        .purge(&|done, estimate| {
            if let Ok(mut p) = progress.lock() {
                p.update(done, Some(estimate), &format!("{done} keys deleted"));
            }
        })
        .await;
    if let Ok(p) = progress.lock() {
        p.finish();
    }
    match result {
        Ok(n) => {
            eprintln!("deleted {n} keys");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}
