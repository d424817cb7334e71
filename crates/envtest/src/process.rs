//! Child processes of a control plane: started with their output in log files, stopped when the
//! handle is dropped, and killed by a watchdog if the test process dies without dropping it (a
//! test runner's timeout sends SIGKILL, which runs no destructor).

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::Error;

/// A running component. Dropping it kills the process and waits for it.
pub struct Process {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `binary args…` with stdout and stderr appended to `<dir>/<name>.log`.
    pub fn spawn(name: &str, binary: &Path, args: &[String], dir: &Path) -> Result<Process, Error> {
        let log = dir.join(format!("{name}.log"));
        let out = File::options().create(true).append(true).open(&log)?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| Error::Start {
                component: name.to_owned(),
                reason: format!("{}: {e}", binary.display()),
            })?;
        let watchdog = Command::new("sh")
            .args([
                "-c",
                "while kill -0 \"$0\" 2>/dev/null; do sleep 1; done; kill -9 \"$1\" 2>/dev/null",
                &std::process::id().to_string(),
                &child.id().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Ok(Process {
            name: name.to_owned(),
            child,
            watchdog,
            log,
        })
    }

    /// Fails with the end of the log if the process has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(Error::Start {
                component: self.name.clone(),
                reason: format!(
                    "exited with {status}; last lines of {}:\n{}",
                    self.log.display(),
                    tail(&self.log, 30)
                ),
            }),
        }
    }

    /// Kills the process now and waits for it (a crash, for tests that need one).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Flag dumps say nothing about why a component stopped.
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("] FLAG: ")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
