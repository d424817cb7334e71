//! The plugin's side of the node agent: one blocking request over the unix socket. No async
//! runtime, no kubeconfig, no TLS: what is left of ADD is a process start, a connect, one
//! line each way and the CNI result.

use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::agent::protocol::{LineError, MAX_LINE, Reply, Request, read_line};
use crate::error::CniError;
use crate::log::Logger;
use crate::result::Granted;
use crate::text::echo;
use crate::work::Work;

/// How long connecting may take. A unix socket connects at once or fails at once, unless the
/// agent stopped accepting and its backlog is full.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long sending the request may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the agent on `socket` to do `work` and waits for its answer until `work`'s deadline
/// ([`Work::budget`]): ADD's granted addresses, nothing for CHECK and STATUS, or the agent's
/// error as it gave it. An agent that cannot be reached or does not answer in time is "try
/// again later" (code 11; 50 for STATUS); a reply that cannot be read is code 109.
pub fn ask(socket: &Path, work: &Work<'_>, log: &Logger) -> Result<Vec<Granted>, CniError> {
    let budget = work.budget();
    let deadline = Instant::now() + budget;
    let shown = echo(&socket.display().to_string()).to_string();
    let not_answering = |why: String| {
        work.unreachable(format!(
            "the rangepool node agent is not answering on {shown}: {why} (is the chart's node DaemonSet running on this node?)"
        ))
    };
    log.debug(format_args!(
        "request: {} through the node agent on {shown}",
        work.verb()
    ));
    let stream = connect(socket.to_owned(), CONNECT_TIMEOUT)
        .map_err(|e| not_answering(format!("cannot connect: {e}")))?;
    stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .and_then(|()| (&stream).write_all(Request::of(work).encode().as_bytes()))
        .map_err(|e| not_answering(format!("cannot send the request: {e}")))?;
    let mut reader = BufReader::new(Deadline { stream, deadline });
    let line = read_line(&mut reader).map_err(|e| match e {
        LineError::Closed => not_answering("it closed the connection without answering".into()),
        LineError::Io(e) if timed_out(&e) => {
            not_answering(format!("no answer within {}s", budget.as_secs_f64()))
        }
        LineError::Io(e) => not_answering(format!("cannot read the answer: {e}")),
        LineError::TooLong => {
            CniError::agent_protocol(socket, format!("the reply is longer than {MAX_LINE} bytes"))
        }
    })?;
    let unreadable = |reason: String| {
        CniError::agent_protocol(socket, format!("cannot read the reply: {reason}"))
    };
    match Reply::decode(&line).map_err(unreadable)? {
        Reply::Failed { code, msg } => Err(CniError::Relayed { code, msg }),
        Reply::Granted(granted) => {
            if let Work::Add { pool_prefix, .. } = work {
                if granted.is_empty() {
                    return Err(unreadable("it grants no address".into()));
                }
                if *pool_prefix && granted.iter().any(|g| g.pool_cidr.is_none()) {
                    return Err(unreadable("it lacks the pool's range (poolCidr)".into()));
                }
                for g in &granted {
                    log.info(format_args!(
                        "verified {} (pool {}, block {}) through the node agent",
                        g.address, g.pool, g.block
                    ));
                }
            }
            Ok(granted)
        }
    }
}

/// Connects within `timeout`. The connect runs on a thread of its own because the standard
/// library has no connect timeout for unix sockets; a thread still waiting is left behind,
/// the process ends soon anyway.
fn connect(socket: PathBuf, timeout: Duration) -> io::Result<UnixStream> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(&socket));
        })?;
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(io::Error::new(
            ErrorKind::TimedOut,
            format!("no connection within {}s", timeout.as_secs_f64()),
        ))
    })
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The stream, read until an overall deadline rather than a per-read timeout.
struct Deadline {
    stream: UnixStream,
    deadline: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}
