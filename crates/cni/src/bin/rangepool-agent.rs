//! `rangepool-agent`: the node agent binary. All logic lives in the library
//! (`rangepool_cni::agent`); this reads the flags, starts a runtime and reports how the agent
//! ended.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::process::ExitCode;

use rangepool_cni::agent::{self, cli};
use rangepool_cni::log::Logger;

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os().skip(1)) {
        Ok(cli::Cli::Run(options)) => options,
        Ok(cli::Cli::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Cli::Version) => {
            println!("rangepool-agent {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("rangepool-agent: {msg}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let log = Logger::stderr(options.log_level).as_program("rangepool-agent", options.log_format);
    // One thread is plenty: every call waits on the API server, and the TLS work of one
    // warm connection is small.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log.error(format_args!("cannot start a runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(agent::run(&options, &log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.error(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}
