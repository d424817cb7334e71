//! Identities with exactly the Helm chart's RBAC: the chart's ServiceAccounts, ClusterRoles,
//! Roles and bindings are rendered by the real `helm template` and applied as they are, and a
//! ServiceAccount's credentials are a token from the TokenRequest API, as a projected token is.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::Value;

use crate::{ControlPlane, Error, binaries};

/// The release the chart's objects are rendered as, and its namespace.
pub const RELEASE: &str = "rangepool";
pub const RELEASE_NAMESPACE: &str = "kube-system";

/// Whose credentials: the chart's controller ServiceAccount, or its node ServiceAccount (the
/// one the CNI plugin uses on every node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartIdentity {
    Controller,
    Node,
}

impl ChartIdentity {
    fn component(self) -> &'static str {
        match self {
            ChartIdentity::Controller => "controller",
            ChartIdentity::Node => "node",
        }
    }
}

/// A ServiceAccount's token, a kubeconfig file carrying it, and a client using that file.
#[derive(Clone)]
pub struct Credentials {
    /// `system:serviceaccount:NS:NAME`
    pub user: String,
    pub namespace: String,
    pub name: String,
    pub token: String,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

impl ControlPlane {
    /// Renders the chart's RBAC with `helm template` (values from `helm_args`, on top of
    /// `podCIDRs={10.244.0.0/16}`) and applies it. Applying again with other values changes the
    /// objects as `helm upgrade` would.
    pub async fn apply_chart_rbac(&self, helm_args: &[&str]) -> Result<Vec<Value>, Error> {
        let docs = render_rbac(helm_args)?;
        for doc in &docs {
            self.apply(doc).await?;
        }
        Ok(docs)
    }

    /// Credentials of the chart's controller or node ServiceAccount, with the chart's RBAC (as
    /// rendered with default values) applied first.
    pub async fn chart_identity(&self, who: ChartIdentity) -> Result<Credentials, Error> {
        self.chart_identity_with(who, &[]).await
    }

    /// As [`ControlPlane::chart_identity`], with the chart rendered with `helm_args`.
    pub async fn chart_identity_with(
        &self,
        who: ChartIdentity,
        helm_args: &[&str],
    ) -> Result<Credentials, Error> {
        let docs = self.apply_chart_rbac(helm_args).await?;
        let name = docs
            .iter()
            .find(|d| {
                d["kind"] == "ServiceAccount"
                    && d["metadata"]["labels"]["app.kubernetes.io/component"] == who.component()
            })
            .and_then(|d| d["metadata"]["name"].as_str())
            .ok_or_else(|| {
                Error::Chart(format!(
                    "the chart renders no {} ServiceAccount",
                    who.component()
                ))
            })?
            .to_owned();
        self.service_account(RELEASE_NAMESPACE, &name).await
    }

    /// Credentials of an existing ServiceAccount: a token valid for a day.
    pub async fn service_account(&self, namespace: &str, name: &str) -> Result<Credentials, Error> {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(86_400),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let answer = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await?;
        let token = answer
            .status
            .map(|s| s.token)
            .ok_or_else(|| Error::Chart(format!("no token issued for {namespace}/{name}")))?;
        let kubeconfig = self.dir().join(format!("{namespace}-{name}.kubeconfig"));
        std::fs::write(&kubeconfig, self.kubeconfig_for(self.url(), &token))?;
        let client = crate::client_from(&kubeconfig).await?;
        Ok(Credentials {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            token,
            kubeconfig,
            client,
        })
    }

    /// Server-side applies one object given as JSON (any kind the server serves).
    pub async fn apply(&self, doc: &Value) -> Result<(), Error> {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let name = doc["metadata"]["name"]
            .as_str()
            .ok_or_else(|| Error::Chart(format!("a {kind} without a name")))?;
        let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply("envtest").force(),
            &Patch::Apply(doc),
        )
        .await?;
        Ok(())
    }
}

/// `helm template` of the chart's ServiceAccounts and RBAC, rendered once per process for each
/// set of values (a test asks for the controller and the node with the same values).
fn render_rbac(helm_args: &[&str]) -> Result<Vec<Value>, Error> {
    static RENDERED: Mutex<BTreeMap<Vec<String>, Vec<Value>>> = Mutex::new(BTreeMap::new());
    let key: Vec<String> = helm_args.iter().map(|a| a.to_string()).collect();
    if let Some(docs) = RENDERED.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(docs.clone());
    }
    let docs = run_helm_template(helm_args)?;
    RENDERED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, docs.clone());
    Ok(docs)
}

fn run_helm_template(helm_args: &[&str]) -> Result<Vec<Value>, Error> {
    let root = binaries::repo_root();
    let helm = root.join(".tools/bin/helm");
    if !helm.exists() {
        let status = Command::new("bash")
            .arg(root.join("tests/tools/install-k8s-tools.sh"))
            .status()?;
        if !status.success() {
            return Err(Error::Chart(
                "tests/tools/install-k8s-tools.sh failed".into(),
            ));
        }
    }
    let mut command = Command::new(&helm);
    command
        .args(["template", RELEASE])
        .arg(root.join("charts/rangepool"))
        .args([
            "--namespace",
            RELEASE_NAMESPACE,
            "--set",
            "podCIDRs={10.244.0.0/16}",
        ]);
    for template in ["serviceaccounts", "rbac-controller", "rbac-node"] {
        command.args(["--show-only", &format!("templates/{template}.yaml")]);
    }
    let out = command.args(helm_args).output()?;
    if !out.status.success() {
        return Err(Error::Chart(format!(
            "helm template failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
        Error::Chart(format!(
            "helm template printed YAML that does not parse: {e}"
        ))
    })?;
    Ok(docs.into_iter().filter(|d| d.is_object()).collect())
}
