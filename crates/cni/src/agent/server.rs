//! The agent's listener: the unix socket (root only), one request per connection, bounded in
//! size, in number and in time, each served by the plugin's own code with the warm client.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::agent::protocol::{LineError, MAX_LINE, Reply, Request, finish_line};
use crate::agent::warm::Warm;
use crate::error::CniError;
use crate::log::Logger;
use crate::text::echo;
use crate::work::Work;

/// The most connections served at once; more wait in the socket's backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send its request line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sending the reply may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How much sooner than the plugin the agent gives up on a call, so that its own error (which
/// says what did not answer) reaches the plugin before the plugin stops reading.
pub const REPLY_MARGIN: Duration = Duration::from_millis(500);
/// How long calls in flight may finish after a stop signal.
pub const DRAIN: Duration = Duration::from_secs(3);

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The socket's directory cannot be created or restricted.
    #[error("cannot prepare the socket's directory {dir}: {source}")]
    Directory {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something other than a socket is in the way.
    #[error("{path} exists and is not a socket; remove it or choose another --socket")]
    NotASocket {
        /// The socket's path.
        path: String,
    },
    /// Listening failed.
    #[error("cannot listen on {path}: {source}")]
    Listen {
        /// The socket's path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No async runtime or signal handler.
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
}

/// A bound socket.
pub struct Listening {
    listener: UnixListener,
    socket: PathBuf,
    /// The socket file's device and inode: on the way out it is removed only if it is still
    /// this one, not one a newer agent bound meanwhile.
    identity: (u64, u64),
    /// The socket file's owner: only processes of this user are served.
    owner: u32,
}

impl Listening {
    /// Creates the socket's directory (mode 0700), removes a socket file left by an earlier
    /// agent, and listens on `socket` (mode 0600). Needs a runtime.
    pub fn bind(socket: &Path, log: &Logger) -> Result<Listening, AgentError> {
        let shown = || echo(&socket.display().to_string()).to_string();
        let dir = socket.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::set_permissions(dir, PermissionsExt::from_mode(0o700)))
                .map_err(|source| AgentError::Directory {
                    dir: echo(&dir.display().to_string()).to_string(),
                    source,
                })?;
        }
        match std::fs::symlink_metadata(socket) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(socket).map_err(|source| AgentError::Listen {
                    path: shown(),
                    source,
                })?;
                log.info(format_args!(
                    "removed the socket file an earlier agent left at {}",
                    shown()
                ));
            }
            Ok(_) => return Err(AgentError::NotASocket { path: shown() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AgentError::Listen {
                    path: shown(),
                    source,
                });
            }
        }
        let listen = |source| AgentError::Listen {
            path: shown(),
            source,
        };
        let listener = UnixListener::bind(socket).map_err(listen)?;
        // The directory is 0700 already; the socket's own mode says the same.
        std::fs::set_permissions(socket, PermissionsExt::from_mode(0o600)).map_err(listen)?;
        let meta = std::fs::symlink_metadata(socket).map_err(listen)?;
        Ok(Listening {
            listener,
            socket: socket.to_owned(),
            identity: (meta.dev(), meta.ino()),
            owner: meta.uid(),
        })
    }

    /// Serves until `stop` completes, then removes the socket and lets the calls in flight
    /// finish (at most [`DRAIN`]).
    pub async fn serve(self, warm: Arc<Warm>, log: &Logger, stop: impl Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let shared = Arc::new(Shared {
            warm,
            socket: self.socket.clone(),
            owner: self.owner,
            log: log.for_context(String::new()),
        });
        tokio::pin!(stop);
        loop {
            // A permit first: beyond the limit, connections wait in the kernel's backlog
            // instead of in memory here.
            let permit = tokio::select! {
                () = &mut stop => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_closed) => break,
                },
            };
            let stream = tokio::select! {
                () = &mut stop => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, for one: do not spin.
                        log.warn(format_args!("accepting a connection failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                shared.serve_one(stream).await;
                drop(permit);
            });
        }
        self.remove();
        let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
        if tokio::time::timeout(DRAIN, permits.acquire_many(all))
            .await
            .is_err()
        {
            log.warn(format_args!(
                "stopping with calls still in flight after {}s; their plugins will report that the agent did not answer",
                DRAIN.as_secs()
            ));
        }
    }

    /// Removes the socket file if it is still the one this agent bound.
    fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.socket)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

/// What every connection's task needs.
struct Shared {
    warm: Arc<Warm>,
    socket: PathBuf,
    owner: u32,
    log: Logger,
}

impl Shared {
    async fn serve_one(&self, stream: UnixStream) {
        match stream.peer_cred() {
            Ok(peer) if peer.uid() == self.owner => {}
            Ok(peer) => {
                self.log.warn(format_args!(
                    "refused a connection from uid {}: only uid {} is served",
                    peer.uid(),
                    self.owner
                ));
                return;
            }
            Err(e) => {
                self.log
                    .warn(format_args!("cannot tell who connected: {e}; refused"));
                return;
            }
        }
        let (read, mut write) = stream.into_split();
        let mut buf = Vec::new();
        let cap = u64::try_from(MAX_LINE + 1).unwrap_or(u64::MAX);
        let mut reader = BufReader::new(read.take(cap));
        let read = tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut buf)).await;
        let line = match read {
            Ok(Ok(_)) => finish_line(buf),
            Ok(Err(e)) => Err(LineError::Io(e)),
            Err(_elapsed) => {
                self.log.warn(format_args!(
                    "a connection sent no request line within {}s; closed",
                    READ_TIMEOUT.as_secs()
                ));
                return;
            }
        };
        let protocol = |reason: String| {
            let err = CniError::agent_protocol(&self.socket, reason);
            self.log.error(format_args!("{err} (code {})", err.code()));
            Reply::of(Err(err), None)
        };
        let reply = match line {
            Ok(line) => match Request::decode(&line) {
                Ok(request) => self.answer(&request).await,
                Err(reason) => protocol(format!("cannot read the request: {reason}")),
            },
            Err(LineError::TooLong) => {
                protocol(format!("the request is longer than {MAX_LINE} bytes"))
            }
            Err(LineError::Closed) => return,
            Err(LineError::Io(e)) => {
                self.log
                    .warn(format_args!("reading a request failed: {e}; closed"));
                return;
            }
        };
        let line = reply.encode();
        match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(line.as_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self
                .log
                .warn(format_args!("the plugin did not take the reply: {e}")),
            Err(_elapsed) => self.log.warn(format_args!(
                "the plugin did not take the reply within {}s",
                WRITE_TIMEOUT.as_secs()
            )),
        }
    }

    /// Serves one request with the warm client, exactly as the plugin's direct path would.
    async fn answer(&self, request: &Request) -> Reply {
        let work = request.work();
        let log = self.log.for_context(context(&work));
        let budget = work.budget().saturating_sub(REPLY_MARGIN);
        let outcome = work
            .within(budget, async {
                let cluster = self
                    .warm
                    .cluster(&log)
                    .await
                    .map_err(|e| work.unusable(e))?;
                let outcome = work.perform(&cluster, &log).await;
                if outcome.is_err() && cluster.refused_credentials() {
                    // A token rotated less than a second ago is taken at once.
                    let newer = self
                        .warm
                        .cluster(&log)
                        .await
                        .map_err(|e| work.unusable(e))?;
                    if !newer.same_client(&cluster) {
                        return work.perform(&newer, &log).await;
                    }
                }
                outcome
            })
            .await;
        if let Err(err) = &outcome {
            let pod = work.pod().map(ToString::to_string);
            log.error(format_args!(
                "{} (code {})",
                err.message(pod.as_deref()),
                err.code()
            ));
        }
        Reply::of(outcome, work.pod())
    }
}

/// The log lines' context for one call, as the plugin's own.
fn context(work: &Work<'_>) -> String {
    match work {
        Work::Add { pod, container, .. } | Work::Check { pod, container, .. } => {
            format!("{} container={container} pod={pod}", work.verb())
        }
        Work::Status => work.verb().to_owned(),
    }
}
