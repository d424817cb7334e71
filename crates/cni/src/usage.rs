//! What `rangepool-ipam` prints for a person who runs it by hand: `--help` and `--version`.
//! Neither is a CNI call: plain text on stdout, exit 0, no log line.

use crate::version::CniVersion;

/// The text of `rangepool-ipam --help`.
pub const HELP: &str = "\
rangepool-ipam: rangepool's CNI IPAM plugin. The container runtime runs it as the \"ipam\" of a
main CNI plugin (bridge, ptp, ...) in the node's CNI configuration, for example
  \"ipam\": {\"type\": \"rangepool-ipam\", \"agentSocket\": \"/run/rangepool/agent.sock\",
           \"kubeconfig\": \"/etc/cni/net.d/rangepool/kubeconfig\", \"prefix\": {\"ipv4\": 24}}
It gives a pod the address the rangepool controller recorded for it, after checking that the
pod's IPAMBlock records that address for the pod's UID. It writes nothing to the API server.

A call follows the CNI protocol: CNI_COMMAND (ADD, DEL, CHECK, VERSION, STATUS or GC) and the
other CNI_* variables in the environment, the network configuration on standard input, and one
JSON reply on standard output. With CNI_COMMAND set, arguments are ignored. To try one by hand:
  echo '{}' | CNI_COMMAND=VERSION rangepool-ipam

Usage: rangepool-ipam --help | --version
  -h, --help     this text
  -V, --version  the plugin's version and the CNI spec versions it supports

The ipam settings (kubeconfig, agentSocket, timeout, prefix, gateway, routes, dns, logLevel,
logFile) are described in crates/cni/README.md of rangepool's sources; every error and what to
do about it in docs/troubleshooting.md.
";

/// The text of `rangepool-ipam --version`: the plugin's version and the CNI spec versions it
/// accepts, as the reference plugins print theirs.
pub fn version_text() -> String {
    format!(
        "rangepool-ipam {} (rangepool's CNI IPAM plugin)\nCNI protocol versions supported: {}\n",
        env!("CARGO_PKG_VERSION"),
        CniVersion::supported_list().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_the_crate_version_and_every_spec_version() {
        let text = version_text();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                format!(
                    "rangepool-ipam {} (rangepool's CNI IPAM plugin)",
                    env!("CARGO_PKG_VERSION")
                )
                .as_str()
            )
        );
        assert_eq!(
            lines.next(),
            Some("CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0")
        );
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn help_fits_a_terminal_and_names_both_flags() {
        for line in HELP.lines() {
            assert!(line.chars().count() <= 100, "{line:?}");
        }
        assert!(HELP.contains("--help") && HELP.contains("--version"));
    }
}
