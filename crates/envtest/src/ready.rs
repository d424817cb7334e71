//! Waiting for the API server: `/readyz` answers 200 (which includes the RBAC bootstrap), and the
//! `default` namespace the server creates for itself exists.

use std::time::Instant;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::{Error, Process, START_PATIENCE};

pub async fn wait_for_apiserver(
    client: &kube::Client,
    components: &mut [Process],
) -> Result<(), Error> {
    let start = Instant::now();
    let mut last: String;
    loop {
        for process in components.iter_mut() {
            process.check_running()?;
        }
        let request = http::Request::get("/readyz").body(Vec::new());
        let ready = match request {
            Ok(r) => client.request_text(r).await,
            Err(e) => {
                return Err(Error::Start {
                    component: "kube-apiserver".into(),
                    reason: e.to_string(),
                });
            }
        };
        match ready {
            Ok(_) => {
                let namespaces: Api<Namespace> = Api::all(client.clone());
                match namespaces.get_opt("default").await {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => last = "namespace default not created yet".into(),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        if start.elapsed() > START_PATIENCE {
            let log = components
                .iter()
                .find(|p| p.log().ends_with("kube-apiserver.log"))
                .map(|p| crate::process::tail(p.log(), 30))
                .unwrap_or_default();
            return Err(Error::Start {
                component: "kube-apiserver".into(),
                reason: format!(
                    "not ready after {} s ({last}); last lines of its log:\n{log}",
                    START_PATIENCE.as_secs()
                ),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
