//! `rangepool-ipam`: the CNI IPAM plugin binary. All logic lives in the library; this is the
//! one exit point that writes the reply and sets the exit code.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let reply = rangepool_cni::main_with(&|name| std::env::var(name).ok(), || {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    });
    if let Some(out) = reply.stdout {
        let mut stdout = std::io::stdout().lock();
        // When stdout is gone nobody is left to read a reply; the exit code still tells.
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
    ExitCode::from(reply.exit_code)
}
