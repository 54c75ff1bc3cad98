//! The `cllm4rec-pipe` command line: parse arguments, run a command, map errors to exit codes.

pub mod args;
mod audit;
mod commands;
mod report_cmd;
mod table_cmd;
mod tables;

use clap::Parser;

use crate::exec::ExecError;
use crate::pipeline::PipelineError;

/// Exit codes: 0 success, 1 a stage failed or the cache is damaged, 2 bad input, 130 cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Pipeline(#[from] PipelineError),
    #[error("{0}")]
    Exec(#[from] ExecError),
    #[error("{0}")]
    Usage(String),
    /// Already reported; just exit with this code.
    #[error("")]
    Quiet(i32),
}

impl CliError {
    fn code(&self) -> i32 {
        match self {
            CliError::Pipeline(_) | CliError::Usage(_) => 2,
            CliError::Exec(ExecError::Dep(_)) => 2,
            CliError::Exec(ExecError::Cancelled) => 130,
            CliError::Exec(_) => 1,
            CliError::Quiet(c) => *c,
        }
    }
}

pub fn main() -> i32 {
    let cli = args::Cli::parse();
    init_tracing(&cli);
    if !matches!(cli.command, args::Command::Run { .. }) {
        // A command that prints ends quietly when its reader goes away (`graph ... | head`),
        // as Unix tools do, instead of panicking on the failed write. `run` keeps Rust's
        // ignored SIGPIPE, so that a closed terminal pipe cannot cut a commit short.
        // SAFETY: setting a signal's disposition to the default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let _ = ctrlc::set_handler(|| {
        if crate::exec::CANCEL.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // A second Ctrl-C: leave now. Work folders are cleaned up by the next run.
            std::process::exit(130);
        }
        eprintln!("cancelling: stopping running stages (Ctrl-C again to quit at once)");
    });
    match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(CliError::Quiet(code)) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    }
}

fn init_tracing(cli: &args::Cli) {
    let level = match cli.verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLLM4REC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if cli.log_format == args::LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
