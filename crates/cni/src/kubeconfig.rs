//! The node's kubeconfig, read so that bad input fails at once with an error that names the
//! file and the field, and never quotes a credential.
//!
//! kube reads a kubeconfig without limits and trusts what it finds: a FIFO or `/dev/zero`
//! blocks it forever, its parse errors quote the lines around the problem (bearer token
//! included), a token with a trailing newline or a `server` without a scheme makes the HTTP
//! client panic. So the plugin reads the file itself (a regular file of at most
//! [`MAX_FILE_SIZE`]), reports parse errors by position only, and checks and prepares what kube
//! will use: the `server` of the current context's cluster, its user's token (trimmed, as
//! kubectl trims a token file) or token file (read here, under the same rules, and inlined),
//! and the files kube reads itself (certificate authority, client certificate and key), which
//! must be regular files too. Everything here blocks; the caller runs it where the call's
//! deadline still holds.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use kube::config::{AuthInfo, Kubeconfig, KubeconfigError};
use serde_json::Value;

use crate::error::CniError;
use crate::text::echo;

/// The largest kubeconfig or token file read: a node's kubeconfig is a few kilobytes.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// What to write as a cluster's `server`.
const SERVER_FORM: &str = "https://HOST:PORT";

/// Why a proxy cannot be used, from the kubeconfig or from the environment.
pub(crate) const NO_PROXY_SUPPORT: &str =
    "rangepool-ipam is built without proxy support and connects to the API server directly";

/// Reads, parses and checks the kubeconfig at `path` and returns it ready for kube: the user's
/// token trimmed or read from its `tokenFile`, relative paths made absolute.
pub fn load(path: &Path) -> Result<Kubeconfig, CniError> {
    let fail = |reason: String| CniError::kubeconfig(path, reason);
    let bytes = read_regular(path).map_err(|r| fail(format!("the file {r}")))?;
    let text = decode(bytes).map_err(|r| fail(format!("the file {r}")))?;
    let mut kubeconfig = parse(&text).map_err(fail)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    prepare(&mut kubeconfig, dir).map_err(fail)?;
    Ok(kubeconfig)
}

/// Reads a regular file of at most [`MAX_FILE_SIZE`]; otherwise why not, as the end of a
/// sentence about the file ("is a FIFO, not a regular file").
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    let unreadable = |e: std::io::Error| format!("cannot be read: {e}");
    // Judged before opening: opening a FIFO blocks until someone writes to it.
    regular(&std::fs::metadata(path).map_err(unreadable)?)?;
    let file = File::open(path).map_err(unreadable)?;
    // The path may have been replaced meanwhile: judge what was opened as well.
    regular(&file.metadata().map_err(unreadable)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_SIZE {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `Ok` for a regular file no larger than [`MAX_FILE_SIZE`], for the files kube reads itself.
pub(crate) fn check_regular(path: &Path) -> Result<(), String> {
    regular(&std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?)
}

fn regular(meta: &Metadata) -> Result<(), String> {
    let kind = meta.file_type();
    if kind.is_file() {
        return if meta.len() > MAX_FILE_SIZE {
            Err(too_large())
        } else {
            Ok(())
        };
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    };
    Err(format!("is {what}, not a regular file"))
}

fn too_large() -> String {
    format!("is larger than {} MiB", MAX_FILE_SIZE >> 20)
}

/// The text of a kubeconfig: UTF-8, with or without a byte order mark, or UTF-16 with one
/// (as kube accepts).
fn decode(bytes: Vec<u8>) -> Result<String, String> {
    let utf16 = |rest: &[u8], from: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = rest
            .chunks(2)
            .map(|c| from([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        String::from_utf16(&units).map_err(|_| "is not valid UTF-16 text".to_owned())
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [0xEF, 0xBB, 0xBF, rest @ ..] => {
            String::from_utf8(rest.to_vec()).map_err(|_| "is not UTF-8 text".to_owned())
        }
        _ => String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned()),
    }
}

/// Parses the text. A parse error gives only its position: the parser's own message quotes the
/// lines around it, and those hold the credentials.
pub(crate) fn parse(text: &str) -> Result<Kubeconfig, String> {
    Kubeconfig::from_yaml(text).map_err(|e| match e {
        KubeconfigError::Parse(err) => {
            let at = err
                .location()
                .filter(|at| at.line() > 0)
                .map_or("at an unknown position".to_owned(), |at| {
                    format!("at line {}, column {}", at.line(), at.column())
                });
            format!(
                "the file is not a valid kubeconfig: YAML syntax or structure error {at} (the file's content is not shown, as it holds credentials)"
            )
        }
        other => echo(&other.to_string()).to_string(),
    })
}

/// Checks and prepares the entries kube will use, found as kube finds them: the current
/// context, its cluster and its user.
fn prepare(kubeconfig: &mut Kubeconfig, dir: &Path) -> Result<(), String> {
    let name = kubeconfig
        .current_context
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("current-context is not set")?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| {
            format!(
                "current-context {:?} names no entry of contexts",
                echo(&name)
            )
        })?;
    let cluster = kubeconfig
        .clusters
        .iter_mut()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_mut())
        .ok_or_else(|| {
            format!(
                "context {:?} names cluster {:?}, which is not an entry of clusters",
                echo(&name),
                echo(&context.cluster)
            )
        })?;
    let of_cluster = |field: &str| format!("field {field} of cluster {:?}", echo(&context.cluster));
    check_server(cluster.server.as_deref())
        .map_err(|r| format!("{}: {r}", of_cluster("server")))?;
    // kube is built without proxy support, and its error for a proxy shows the URL, password
    // included.
    if cluster.proxy_url.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(format!(
            "{}: {NO_PROXY_SUPPORT}; remove the field (its value is not shown, as it can hold a password)",
            of_cluster("proxy-url")
        ));
    }
    if cluster.certificate_authority_data.is_none()
        && let Some(file) = cluster.certificate_authority.as_mut()
    {
        *file = absolute(dir, file);
        check_regular(Path::new(file)).map_err(|r| {
            format!(
                "{} names {}, which {r}",
                of_cluster("certificate-authority"),
                echo(file)
            )
        })?;
    }
    // client-go does not fail on a context without a user, nor on a user it cannot find.
    let Some(user_name) = &context.user else {
        return Ok(());
    };
    if let Some(user) = kubeconfig
        .auth_infos
        .iter_mut()
        .find(|u| &u.name == user_name)
        .and_then(|u| u.auth_info.as_mut())
    {
        prepare_user(user_name, user, dir)?;
    }
    Ok(())
}

/// Trims and checks the token kube will send, reading it from `tokenFile` when that is where
/// it is, and checks the files of a client certificate.
fn prepare_user(name: &str, user: &mut AuthInfo, dir: &Path) -> Result<(), String> {
    let of_user = |field: &str| format!("field {field} of user {:?}", echo(name));
    // kube's order: an auth provider, then a user name and password, then a token, then a
    // token file. A password is sent base64-encoded and fits any header.
    let basic = user.username.is_some() && user.password.is_some();
    if user.auth_provider.is_none() && !basic {
        if user.token.is_some() {
            let raw = inline_token(user).unwrap_or_default();
            // client-go ignores an empty token (and then reads the token file, if any).
            match clean_token(&raw) {
                Ok(token) => user.token = Some(token.to_owned().into()),
                Err(TokenProblem::Empty) => user.token = None,
                Err(problem) => return Err(format!("{}: {problem}", of_user("token"))),
            }
        }
        if user.token.is_none()
            && let Some(file) = user.token_file.take()
        {
            let file = absolute(dir, &file);
            let fail =
                |r: String| format!("{} names {}, which {r}", of_user("tokenFile"), echo(&file));
            let bytes = read_regular(Path::new(&file)).map_err(fail)?;
            let text = String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".into()))?;
            let token = clean_token(&text).map_err(|p| fail(format!("holds a token that {p}")))?;
            user.token = Some(token.to_owned().into());
        }
    }
    for (field, file, inline) in [
        (
            "client-certificate",
            &mut user.client_certificate,
            user.client_certificate_data.is_some(),
        ),
        (
            "client-key",
            &mut user.client_key,
            user.client_key_data.is_some(),
        ),
    ] {
        if let Some(file) = file.as_mut().filter(|_| !inline) {
            *file = absolute(dir, file);
            check_regular(Path::new(file))
                .map_err(|r| format!("{} names {}, which {r}", of_user(field), echo(file)))?;
        }
    }
    // As kube resolves a relative command when it reads the file itself.
    if let Some(command) = user.exec.as_mut().and_then(|e| e.command.as_mut())
        && command.contains(std::path::MAIN_SEPARATOR)
    {
        *command = absolute(dir, command);
    }
    Ok(())
}

/// The user's inline token. kube keeps it in a `SecretString`, whose reading takes the
/// `secrecy` crate's trait; its serialized form holds it as plain text.
fn inline_token(user: &AuthInfo) -> Option<String> {
    match serde_json::to_value(user).ok()? {
        Value::Object(mut fields) => match fields.remove("token")? {
            Value::String(token) => Some(token),
            _ => None,
        },
        _ => None,
    }
}

/// Why a token cannot be sent. Never holds the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    /// Nothing but whitespace.
    Empty,
    /// A character an HTTP header cannot carry, at this position (counted from 1, after
    /// trimming).
    Unsendable(usize),
}

impl std::fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenProblem::Empty => f.write_str("is empty"),
            TokenProblem::Unsendable(at) => write!(
                f,
                "holds a control character (character {at} of the token, which is not shown) that an HTTP header cannot carry; only whitespace around a token is trimmed"
            ),
        }
    }
}

/// The token as it goes into the `Authorization` header: whitespace around it trimmed, as
/// kubectl trims a token file (`kubectl create token > file` ends it with a newline).
pub(crate) fn clean_token(raw: &str) -> Result<&str, TokenProblem> {
    let token = raw.trim();
    if token.is_empty() {
        return Err(TokenProblem::Empty);
    }
    // What an HTTP header value may not hold: every control character but tab.
    match token
        .chars()
        .position(|c| c.is_ascii_control() && c != '\t')
    {
        Some(at) => Err(TokenProblem::Unsendable(at + 1)),
        None => Ok(token),
    }
}

/// Checks a cluster's `server`: kube needs an absolute `http` or `https` URL, and its HTTP
/// client panics on one without a scheme. The value is shown: it is no secret (unless it holds
/// a password before an `@`, which is then not shown, whatever else is wrong with it).
pub(crate) fn check_server(server: Option<&str>) -> Result<(), String> {
    let Some(raw) = server.filter(|s| !s.is_empty()) else {
        return Err(format!(
            "is missing; write the API server's URL as {SERVER_FORM}"
        ));
    };
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, raw),
    };
    // Judged first: every message below shows the value.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "holds a user name or password before '@' (not shown), which kube cannot use; write {SERVER_FORM}"
        ));
    }
    let shown = echo(raw);
    let Some(scheme) = scheme else {
        let example = if authority_ok(raw) {
            format!(" (here https://{shown})")
        } else {
            String::new()
        };
        return Err(format!(
            "{shown:?} has no scheme; write {SERVER_FORM}{example}"
        ));
    };
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return Err(format!(
            "{shown:?} is not an http or https URL; write {SERVER_FORM}"
        ));
    }
    if authority.is_empty() {
        return Err(format!("{shown:?} names no host; write {SERVER_FORM}"));
    }
    if !authority_ok(authority) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{shown:?} is not a URL; write {SERVER_FORM}"));
    }
    Ok(())
}

/// `HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`.
fn authority_ok(authority: &str) -> bool {
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, after)) => (
                v6.parse::<std::net::Ipv6Addr>().is_ok(),
                match after {
                    "" => None,
                    _ => match after.strip_prefix(':') {
                        Some(port) => Some(port),
                        None => return false,
                    },
                },
            ),
            None => return false,
        },
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'));
            (host_ok, port)
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok()
    });
    host_ok && port_ok
}

/// `file` relative to the kubeconfig's directory, as kube and kubectl resolve it.
fn absolute(dir: &Path, file: &str) -> String {
    if Path::new(file).is_relative() {
        match dir.join(file).to_str() {
            Some(joined) => joined.to_owned(),
            None => file.to_owned(),
        }
    } else {
        file.to_owned()
    }
}

#[cfg(test)]
mod tests;
