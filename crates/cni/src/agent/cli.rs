//! The flags of `rangepool-agent`, read by hand: the crate stays free of an argument parser
//! for five flags.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::log::{Format, Level};
use crate::text::echo;

/// Where the agent listens unless `--socket` says otherwise (the chart's path).
pub const DEFAULT_SOCKET: &str = "/run/rangepool/agent.sock";

/// The usage text of `--help`.
pub const USAGE: &str = "\
rangepool-agent: the rangepool node agent. Keeps one client for the API server and answers the
rangepool-ipam CNI plugin's ADD, CHECK and STATUS over a unix socket (the plugin's
ipam.agentSocket). Writes nothing to the API server.

Usage: rangepool-agent --kubeconfig PATH [--socket PATH] [--log-format text|json] [--log-level LEVEL]

  --kubeconfig PATH       the node's kubeconfig, the file the plugin would read; read again when
                          it is rewritten (token rotation)
  --socket PATH           the unix socket to listen on (default /run/rangepool/agent.sock); its
                          directory is made 0700, the socket 0600
  --log-format text|json  log lines on stderr as text (default) or one JSON object each
  --log-level LEVEL       error, warn, info (default) or debug (every API request)
  --help                  this text
  --version               the version
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    /// Run the agent.
    Run(Options),
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// The agent's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--kubeconfig`
    pub kubeconfig: PathBuf,
    /// `--socket`
    pub socket: PathBuf,
    /// `--log-format`
    pub log_format: Format,
    /// `--log-level`
    pub log_level: Level,
}

/// Reads the arguments (without the program's name). `--flag VALUE` and `--flag=VALUE` are
/// both accepted.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, String> {
    let mut kubeconfig = None;
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut log_format = Format::Text;
    let mut log_level = Level::Info;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument {:?} is not UTF-8", a.to_string_lossy()))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        let mut value = || -> Result<OsString, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Cli::Help),
            "--version" => return Ok(Cli::Version),
            "--kubeconfig" => kubeconfig = Some(non_empty(&flag, value()?)?),
            "--socket" => socket = non_empty(&flag, value()?)?,
            "--log-format" => {
                let v = value()?;
                log_format = v
                    .to_str()
                    .and_then(Format::parse)
                    .ok_or_else(|| format!("--log-format: {:?} is not text or json", lossy(&v)))?;
            }
            "--log-level" => {
                let v = value()?;
                log_level = v.to_str().and_then(Level::parse).ok_or_else(|| {
                    format!(
                        "--log-level: {:?} is not error, warn, info or debug",
                        lossy(&v)
                    )
                })?;
            }
            other => return Err(format!("unknown argument {:?}", echo(other))),
        }
    }
    let kubeconfig = kubeconfig.ok_or("--kubeconfig is required")?;
    Ok(Cli::Run(Options {
        kubeconfig,
        socket,
        log_format,
        log_level,
    }))
}

fn non_empty(flag: &str, value: OsString) -> Result<PathBuf, String> {
    if value.is_empty() {
        Err(format!("{flag} must not be empty"))
    } else {
        Ok(PathBuf::from(value))
    }
}

fn lossy(value: &OsString) -> String {
    echo(&value.to_string_lossy()).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Cli, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_with_and_without_equals() {
        let cli = parse_strs(&[
            "--kubeconfig",
            "/etc/cni/net.d/rangepool/kubeconfig",
            "--socket=/tmp/a.sock",
            "--log-format",
            "json",
            "--log-level=debug",
        ])
        .unwrap();
        assert_eq!(
            cli,
            Cli::Run(Options {
                kubeconfig: "/etc/cni/net.d/rangepool/kubeconfig".into(),
                socket: "/tmp/a.sock".into(),
                log_format: Format::Json,
                log_level: Level::Debug,
            })
        );
        let Cli::Run(defaults) = parse_strs(&["--kubeconfig=/k"]).unwrap() else {
            panic!("not a run");
        };
        assert_eq!(defaults.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(
            (defaults.log_format, defaults.log_level),
            (Format::Text, Level::Info)
        );
    }

    #[test]
    fn help_version_and_mistakes() {
        assert_eq!(parse_strs(&["--help"]), Ok(Cli::Help));
        assert_eq!(
            parse_strs(&["--kubeconfig", "/k", "--version"]),
            Ok(Cli::Version)
        );
        assert_eq!(parse_strs(&[]).unwrap_err(), "--kubeconfig is required");
        assert_eq!(
            parse_strs(&["--kubeconfig"]).unwrap_err(),
            "--kubeconfig needs a value"
        );
        assert_eq!(
            parse_strs(&["--kubeconfig="]).unwrap_err(),
            "--kubeconfig must not be empty"
        );
        assert_eq!(
            parse_strs(&["--kubeconfig=/k", "--log-format=yaml"]).unwrap_err(),
            "--log-format: \"yaml\" is not text or json"
        );
        assert_eq!(
            parse_strs(&["--kubeconfig=/k", "--sokcet=/x\n"]).unwrap_err(),
            "unknown argument \"--sokcet\""
        );
        assert_eq!(parse_strs(&["/k"]).unwrap_err(), "unknown argument \"/k\"");
    }
}
