//! The shared server state and the accept loop (hyper 1, HTTP/1.1, plain HTTP on loopback).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::faults::FaultState;
use crate::store::Store;

/// How the server behaves; `Config::default()` is what `TestServer::start` uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP port on 127.0.0.1 (0: any free port)
    pub port: u16,
    /// how many changes are retained for watches; a watch from an older resourceVersion gets
    /// 410 Gone (the real server's window is about 5 minutes of etcd history)
    pub history_limit: usize,
    /// how often a watch with `allowWatchBookmarks=true` gets a BOOKMARK (real: about a minute)
    pub bookmark_interval: Duration,
    /// keep state in this directory across restarts
    pub data_dir: Option<PathBuf>,
    /// the kubelet stand-in: a pod bound to a node is deleted gracefully (it stays with a
    /// deletionTimestamp); this long after, the stand-in finishes the deletion as a kubelet
    /// would once the containers stopped. None: no kubelet, the pod stays terminating until a
    /// delete with `gracePeriodSeconds=0`.
    pub kubelet_delay: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(60),
            data_dir: None,
            kubelet_delay: Some(Duration::ZERO),
        }
    }
}

/// What every request handler shares.
pub struct Shared {
    /// objects
    pub store: Store,
    /// fault rules
    pub faults: FaultState,
    /// configuration
    pub config: Config,
    /// bumped to end every open watch stream
    pub kill: watch::Sender<u64>,
    /// where we listen
    pub addr: SocketAddr,
}

impl Shared {
    /// End all open watch streams now.
    pub fn drop_watches(&self) {
        self.kill.send_modify(|n| *n += 1);
    }
}

/// Bind on 127.0.0.1 and return the listener plus the shared state.
pub async fn bind(config: Config) -> std::io::Result<(TcpListener, Arc<Shared>)> {
    let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
    let addr = listener.local_addr()?;
    let store = Store::new(config.history_limit);
    if let Some(dir) = &config.data_dir {
        crate::persist::load(dir, &store)?;
    }
    let (kill, _) = watch::channel(0);
    let shared = Arc::new(Shared {
        store,
        faults: FaultState::default(),
        config,
        kill,
        addr,
    });
    Ok((listener, shared))
}

/// Serve connections until the task is aborted; aborting drops every connection task too.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(crate::http::handle(shared, req).await) }
            });
            if let Err(e) = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!("connection ended: {e}");
            }
        });
        // reap finished connections so the set does not grow forever
        while conns.try_join_next().is_some() {}
    }
}
