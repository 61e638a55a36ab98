//! vrrplb: keepalived + HAProxy in one binary.

mod alloc;
mod announce;
mod config;
mod control;
mod daemon;
mod engine;
mod example;
mod import;
mod instances;
mod logging;
mod notify_fifo;
mod observe;
mod poll;
mod sdnotify;
mod syslog;
mod wiring;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "vrrplb",
    version,
    about = "A VRRPv2 pair and an HTTP load balancer in one binary (keepalived + HAProxy)",
    after_help = "Examples:\n  vrrplb check -c /etc/vrrplb/vrrplb.yaml      validate a config (like haproxy -c / keepalived -t)\n  vrrplb run -c /etc/vrrplb/vrrplb.yaml        run in the foreground (systemd style)\n  vrrplb run -c lb1.yaml --log stderr          same, logging to the terminal\n  vrrplb status -c /etc/vrrplb/vrrplb.yaml     ask the running daemon who is MASTER\n  vrrplb example active-active --boxes 3 --box 1   box 1 of 3 sharing 3 VIPs (one MASTER each)\n\nSignals: SIGTERM/SIGINT stop in order, SIGHUP reloads the file."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file: print a summary and exit 0, or every error and exit 1.
    Check {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the daemon in the foreground.
    Run {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Where to log (overrides global.log.target).
        #[arg(long, value_enum)]
        log: Option<LogArg>,
    },
    /// Translate a keepalived.conf and/or haproxy.cfg into a vrrplb YAML file on stdout;
    /// what cannot be translated is listed on stderr with its file:line and why.
    Import {
        /// keepalived.conf to translate (global_defs, vrrp_script, vrrp_instance).
        #[arg(long, value_name = "FILE")]
        keepalived: Option<PathBuf>,
        /// haproxy.cfg to translate (global, defaults, frontend, backend, listen).
        #[arg(long, value_name = "FILE")]
        haproxy: Option<PathBuf>,
    },
    /// Ask the running daemon: instance states, priorities, dropped adverts, backends UP.
    Status {
        /// The daemon's config file, to find its control socket (global.control_socket).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the full snapshot (the stats page's data) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an example config on stdout (`vrrplb example active-active --boxes 3 --box 1`).
    Example {
        #[command(subcommand)]
        example: example::Example,
    },
    /// GET a URL every few ms and report failures and the outage (the failover drill's client).
    #[command(hide = true)]
    Poll(poll::PollArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogArg {
    Stderr,
    Syslog,
}

/// mimalloc, through its plain entry points where they suffice (src/alloc.rs).
#[global_allocator]
static ALLOC: alloc::MiMalloc = alloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config, log } => {
            let target = log.map(|l| match l {
                LogArg::Stderr => config::LogTarget::Stderr,
                LogArg::Syslog => config::LogTarget::Syslog,
            });
            let code = daemon::run(&config, target);
            // The last lines ("Stopped vrrplb") may still be queued for syslog.
            syslog::flush(std::time::Duration::from_secs(2));
            code
        }
        Command::Status { config, json } => status(config.as_deref(), json),
        Command::Import {
            keepalived,
            haproxy,
        } => import::run(keepalived.as_deref(), haproxy.as_deref()),
        Command::Example { example } => example::run(&example),
        Command::Poll(args) => poll::run(&args),
    }
}

fn status(config: Option<&std::path::Path>, json: bool) -> ExitCode {
    let configured = match config {
        None => None,
        Some(p) => match config::control_socket_of(p) {
            Ok(socket) => socket,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let command = if json { "status json" } else { "status" };
    match control::query(&control::socket_path(configured.as_deref()), command) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", daemon::summary(&loaded.config));
            println!("Configuration file is valid");
            ExitCode::SUCCESS
        }
        Err(rejected) => {
            for w in &rejected.warnings {
                eprintln!("warning: {w}");
            }
            for e in &rejected.errors {
                eprintln!("error: {e}");
            }
            eprintln!(
                "{}: {} error(s); configuration file is NOT valid",
                path.display(),
                rejected.errors.len()
            );
            ExitCode::from(1)
        }
    }
}
