//! Installing CustomResourceDefinitions and waiting until their resources are served: a real
//! server accepts a CRD at once but serves its resources only once it is Established and the
//! new handler is in place, a moment later.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};

use crate::{ControlPlane, Error, START_PATIENCE};

impl ControlPlane {
    /// Server-side applies each CRD, then waits until every one is Established and a list of
    /// its resources answers.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> Result<(), Error> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in crds {
            api.patch(
                &crd.name_any(),
                &PatchParams::apply("envtest").force(),
                &Patch::Apply(crd),
            )
            .await?;
        }
        let start = Instant::now();
        for crd in crds {
            loop {
                if served(&self.client, &api, crd).await {
                    break;
                }
                if start.elapsed() > START_PATIENCE {
                    return Err(Error::Start {
                        component: format!("CRD {}", crd.name_any()),
                        reason: "not Established and served in time".into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }
}

async fn served(
    client: &kube::Client,
    api: &Api<CustomResourceDefinition>,
    crd: &CustomResourceDefinition,
) -> bool {
    let Ok(current) = api.get(&crd.name_any()).await else {
        return false;
    };
    let established = current
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    let Some(version) = crd.spec.versions.iter().find(|v| v.served) else {
        return established;
    };
    let resource = ApiResource {
        group: crd.spec.group.clone(),
        version: version.name.clone(),
        api_version: format!("{}/{}", crd.spec.group, version.name),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    let objects: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    established && objects.list(&ListParams::default().limit(1)).await.is_ok()
}
