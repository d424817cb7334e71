//! A participant of a measurement on threads of its own: a tokio runtime named after it and a
//! client made on that runtime, with its connections already open.
//!
//! In a cluster the scheduler and the controller are processes that have been running for a
//! while. Sharing one runtime, the scheduler's thousand requests in flight queued ahead of every
//! watch event and write of the controller, and opening a thousand connections took a fifth of
//! the burst. A runtime per participant also lets `/proc` tell their CPU apart.

use std::future::Future;
use std::path::Path;

use futures::StreamExt;
use kube::Client;

use crate::procfs::thread_cpu_seconds;

pub struct Actor {
    name: &'static str,
    runtime: Option<tokio::runtime::Runtime>,
    pub client: Client,
}

impl Actor {
    /// A runtime with `workers` threads named `name`, and a client from `kubeconfig` with
    /// `connections` connections open.
    pub async fn start(
        name: &'static str,
        workers: usize,
        kubeconfig: &Path,
        connections: usize,
    ) -> Actor {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("a runtime");
        // Made on its runtime: the client's request buffer and its connections are tasks of the
        // runtime that makes them.
        let path = kubeconfig.to_owned();
        let client = runtime
            .spawn(async move { envtest::client_from(&path).await })
            .await
            .expect("the client is made")
            .expect("a client from the kubeconfig");
        let warming = client.clone();
        runtime
            .spawn(async move { warm(&warming, connections).await })
            .await
            .expect("the connections open");
        Actor {
            name,
            runtime: Some(runtime),
            client,
        }
    }

    /// Runs `work` on this actor's runtime and waits for it.
    pub async fn run<F>(&self, work: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(work).await.expect("the actor's task")
    }

    /// Starts `work` on this actor's runtime.
    pub fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.as_ref().expect("running").spawn(work)
    }

    /// CPU seconds this actor's threads have used.
    pub fn cpu_seconds(&self) -> f64 {
        thread_cpu_seconds(self.name)
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        // Dropping a runtime from async code would block; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Opens `connections` connections in `client`'s pool, by sending as many requests at once.
async fn warm(client: &Client, connections: usize) {
    futures::stream::iter(0..connections)
        .map(|_| {
            let client = client.clone();
            async move {
                client.apiserver_version().await.expect("GET /version");
            }
        })
        .buffer_unordered(connections.max(1))
        .collect::<Vec<()>>()
        .await;
}
