//! `rangepool-ipam`: the CNI IPAM plugin binary. All logic lives in the library; this is the
//! one exit point that writes the reply and sets the exit code, for a normal end and for a
//! panic alike. Started by a person with `--help` or `--version` (and no `CNI_COMMAND`), it
//! prints plain text instead and makes no call.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};

use rangepool_cni::Reply;
use rangepool_cni::request::{self, Invocation};
use rangepool_cni::usage;

/// The exit code of the reply written, once one is: stdout carries exactly one reply.
static REPLIED: Mutex<Option<u8>> = Mutex::new(None);

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match request::invocation(std::env::var_os("CNI_COMMAND").is_some(), &args) {
        Invocation::Cni => {}
        Invocation::Help => return print_text(usage::HELP),
        Invocation::Version => return print_text(&usage::version_text()),
        Invocation::BadArgument(msg) => {
            eprintln!("rangepool-ipam: {msg}");
            return ExitCode::from(2);
        }
    }
    // A panic anywhere (any thread, any task) ends the call with one error reply of code 199
    // instead of Rust's exit code 101 and an empty stdout. The default hook is not called: it
    // would print the payload, which can quote input.
    std::panic::set_hook(Box::new(|info| {
        let code = emit(&rangepool_cni::panic_reply(info.location()));
        std::process::exit(i32::from(code));
    }));
    let reply = rangepool_cni::main_with(&|name| std::env::var(name).ok(), || {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    });
    ExitCode::from(emit(&reply))
}

/// Writes `reply` unless a reply was written already, and returns the exit code of the one
/// that was.
fn emit(reply: &Reply) -> u8 {
    let mut replied = REPLIED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(code) = *replied {
        return code;
    }
    if let Some(out) = &reply.stdout {
        let mut stdout = std::io::stdout().lock();
        // When stdout is gone nobody is left to read a reply; the exit code still tells.
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
    *replied = Some(reply.exit_code);
    reply.exit_code
}

/// `--help` and `--version`: the text on stdout (a closed stdout is not a panic here, which
/// would answer with a CNI error).
fn print_text(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
