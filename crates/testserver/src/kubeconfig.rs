//! A kubeconfig pointing at the server: plain HTTP on loopback, a dummy token, namespace `default`.

use std::path::Path;

/// The kubeconfig text for `url`.
pub fn render(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: rangepool-testserver
  cluster:
    server: {url}
contexts:
- name: rangepool-testserver
  context:
    cluster: rangepool-testserver
    user: rangepool-testserver
    namespace: default
current-context: rangepool-testserver
users:
- name: rangepool-testserver
  user:
    token: rangepool-testserver-dummy-token
preferences: {{}}
"
    )
}

/// Write it to `path`, creating parent directories.
pub fn write(path: &Path, url: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, render(url))
}
