//! `maelstrom test -w broadcast --bin target/release/broadcast --node-count 5 ...`: the runner's CLI;
//! `maelstrom analyze [RUN_FOLDER]` writes a finished run's `report.html` again;
//! `maelstrom serve [--port 8080] [RESULTS_DIR]` serves the runs on a local web page.
//! Exit codes as Maelstrom: 0 valid, 1 invalid, 2 unknown, 254 bad arguments, 255 aborted.

use maelstrom::cli::{Cli, Command, EXIT_ABORTED};
use std::process::ExitCode;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match Cli::parse_or_exit().command {
        Command::Test(args) => args,
        Command::Analyze(a) => {
            return match maelstrom::results::html::rewrite(&a.run_folder) {
                Ok(path) => {
                    println!("{}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("maelstrom analyze: {e:#}");
                    ExitCode::from(EXIT_ABORTED as u8)
                }
            };
        }
        Command::Serve(a) => {
            let addr = match a.addr() {
                Ok(addr) => addr,
                Err(e) => {
                    eprintln!("maelstrom serve: {e}");
                    return ExitCode::from(e.exit_code() as u8);
                }
            };
            return match maelstrom::web::serve::serve(addr, a.results_dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("maelstrom serve: {e:#}");
                    ExitCode::from(EXIT_ABORTED as u8)
                }
            };
        }
    };
    let mut opts = match args.resolve().and_then(|o| o.check_workload().map(|()| o)) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("maelstrom: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    // Recorded in results.json and shown by report.html; lossy only for non-UTF-8 arguments.
    opts.command = Some(maelstrom::cli::shell_line(
        std::env::args_os().map(|a| a.to_string_lossy().into_owned()),
    ));
    for w in &opts.warnings {
        tracing::warn!("{w}");
    }
    maelstrom::run::install_interrupt_handler();
    // Orphans of the nodes (helpers forked out of their process groups) become ours, so that
    // teardown can kill them: no process outlives the run.
    if let Err(e) = maelstrom::process::become_subreaper() {
        tracing::warn!("cannot become a child subreaper ({e}): processes nodes fork out of their process groups may outlive the run");
    }
    match maelstrom::run::run(&opts) {
        Ok(outcome) => {
            let info = maelstrom::results::SummaryInfo {
                seed: Some(opts.seed),
                run_dir: outcome.dir.as_deref(),
            };
            println!("{}", maelstrom::results::summary(&outcome.results, &info));
            ExitCode::from(outcome.exit_code as u8)
        }
        Err(e) => {
            eprintln!("\nTest aborted: {e:#}");
            ExitCode::from(EXIT_ABORTED as u8)
        }
    }
}
