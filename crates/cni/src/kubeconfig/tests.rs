#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use super::*;

/// A kubeconfig as the chart writes one, with `user` as the body of the user entry and
/// `server` as the cluster's URL.
fn kubeconfig_text(server: &str, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: node
  cluster:
    server: {server}
contexts:
- name: node
  context:
    cluster: node
    user: rangepool-node
current-context: node
users:
- name: rangepool-node
  user:
{user}
"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The token kube will send for the loaded kubeconfig's user.
fn sent_token(kubeconfig: &Kubeconfig) -> Option<String> {
    inline_token(kubeconfig.auth_infos[0].auth_info.as_ref().unwrap())
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

#[test]
fn a_parse_error_gives_the_position_and_no_content() {
    let dir = tempfile::tempdir().unwrap();
    let text = kubeconfig_text(
        "https://10.0.0.1:6443",
        "    token: SECRET-TOKEN-123\n  bad: [unclosed\nmore: x",
    );
    let path = write(dir.path(), "kubeconfig", &text);
    let err = load(&path).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), 107);
    assert!(!msg.contains("SECRET"), "{msg}");
    assert!(!msg.contains("unclosed"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a valid kubeconfig"), "{msg}");
    assert!(msg.contains("at line 18, column "), "{msg}");
    // A value of the wrong type: serde's message would quote it.
    let err = parse("apiVersion: v1\nclusters: SECRET-TOKEN-123\n").unwrap_err();
    assert!(!err.contains("SECRET"), "{err}");
    assert!(err.contains("at line 2, column "), "{err}");
}

#[test]
fn a_well_formed_kubeconfig_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text("https://10.0.0.1:6443", "    token: abc.def"),
    );
    let kubeconfig = load(&path).unwrap();
    assert_eq!(sent_token(&kubeconfig).as_deref(), Some("abc.def"));
    // With a byte order mark, and in UTF-16 as kube also reads.
    let text = kubeconfig_text("https://10.0.0.1:6443", "    token: abc.def");
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(text.as_bytes());
    assert!(parse(&decode(bom).unwrap()).is_ok());
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(decode(utf16).unwrap(), text);
    assert_eq!(decode(vec![0xC3, 0x28]).unwrap_err(), "is not UTF-8 text");
}

#[test]
fn tokens_lose_surrounding_whitespace_and_unsendable_ones_are_refused() {
    assert_eq!(clean_token("abc.def\n"), Ok("abc.def"));
    assert_eq!(
        clean_token("  eyJhbGciOi.x-y_z\r\n\n"),
        Ok("eyJhbGciOi.x-y_z")
    );
    assert_eq!(clean_token("a\tb"), Ok("a\tb"), "a header may hold a tab");
    assert_eq!(clean_token(" \n"), Err(TokenProblem::Empty));
    assert_eq!(clean_token("abc\ndef"), Err(TokenProblem::Unsendable(4)));
    assert_eq!(clean_token("ab\u{7f}"), Err(TokenProblem::Unsendable(3)));
    assert_eq!(clean_token("\u{0}x"), Err(TokenProblem::Unsendable(1)));
    let shown = TokenProblem::Unsendable(4).to_string();
    assert!(shown.contains("control character"), "{shown}");
}

#[test]
fn a_block_scalar_token_is_trimmed_and_a_broken_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    // `token: |` keeps the final newline: kube's HTTP client panicked on it.
    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text(
            "https://10.0.0.1:6443",
            "    token: |\n      SECRET-TOKEN-123",
        ),
    );
    let kubeconfig = load(&path).unwrap();
    assert_eq!(sent_token(&kubeconfig).as_deref(), Some("SECRET-TOKEN-123"));

    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text("https://10.0.0.1:6443", "    token: \"SECRET\\nTOKEN-123\""),
    );
    let err = load(&path).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), 107);
    assert!(
        msg.contains("field token of user \"rangepool-node\": holds a control character"),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        !msg.contains("SECRET") && !msg.contains("TOKEN-123"),
        "{msg}"
    );
}

#[test]
fn a_token_file_is_read_trimmed_and_inlined() {
    let dir = tempfile::tempdir().unwrap();
    // As `kubectl create token > file` writes it; relative to the kubeconfig's directory.
    write(dir.path(), "token", "SECRET-TOKEN-123\n");
    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text("https://10.0.0.1:6443", "    tokenFile: token"),
    );
    let kubeconfig = load(&path).unwrap();
    let user = kubeconfig.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(user.token_file, None, "kube must not read it again");
    assert_eq!(sent_token(&kubeconfig).as_deref(), Some("SECRET-TOKEN-123"));

    // An empty inline token is ignored, as client-go ignores it, and the file is read.
    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text(
            "https://10.0.0.1:6443",
            "    token: \"\"\n    tokenFile: token",
        ),
    );
    assert_eq!(
        sent_token(&load(&path).unwrap()).as_deref(),
        Some("SECRET-TOKEN-123")
    );

    for (content, problem) in [
        ("\n\n", "holds a token that is empty"),
        (
            "SECRET\nTOKEN-123\n",
            "holds a token that holds a control character",
        ),
    ] {
        write(dir.path(), "token", content);
        let path = write(
            dir.path(),
            "kubeconfig",
            &kubeconfig_text("https://10.0.0.1:6443", "    tokenFile: token"),
        );
        let msg = load(&path).unwrap_err().to_string();
        assert!(
            msg.contains("field tokenFile of user \"rangepool-node\" names "),
            "{msg}"
        );
        assert!(msg.contains(problem), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
    }
}

#[test]
fn servers_without_a_scheme_or_not_urls_are_refused() {
    for good in [
        "https://10.0.0.1:6443",
        "https://api.example.com",
        "HTTPS://api.example.com:443/",
        "http://127.0.0.1:8080",
        "https://[fd00::1]:6443",
        "https://rancher.example/k8s/clusters/c-abc12",
    ] {
        assert_eq!(check_server(Some(good)), Ok(()), "{good}");
    }
    let cases = [
        (
            Some("127.0.0.1:6443"),
            "\"127.0.0.1:6443\" has no scheme; write https://HOST:PORT (here https://127.0.0.1:6443)",
        ),
        (
            Some("api.example.com"),
            "has no scheme; write https://HOST:PORT (here https://api.example.com)",
        ),
        (
            Some("ftp://h:21"),
            "\"ftp://h:21\" is not an http or https URL",
        ),
        (Some("https://"), "\"https://\" names no host"),
        (Some("https://:6443"), "is not a URL"),
        (Some("https://exa mple:6443"), "is not a URL"),
        (Some("https://host:99999"), "is not a URL"),
        (Some("https://host:64x3"), "is not a URL"),
        (Some("https://[fd00::1:6443"), "is not a URL"),
        (
            Some("https://10.0.0.1:6443/\nx"),
            "\"https://10.0.0.1:6443/\\nx\" is not a URL",
        ),
        (
            None,
            "is missing; write the API server's URL as https://HOST:PORT",
        ),
        (Some(""), "is missing"),
    ];
    for (server, want) in cases {
        let got = check_server(server).unwrap_err();
        assert!(got.contains(want), "{server:?}: want {want:?} in {got}");
    }
    let got = check_server(Some("https://admin:SECRET@10.0.0.1:6443")).unwrap_err();
    assert!(!got.contains("SECRET"), "{got}");
}

#[test]
fn a_password_in_a_server_is_not_shown_whatever_else_is_wrong() {
    // Found by the fuzz test: without a scheme, or with another one, the value was shown.
    for server in [
        "admin:SECRET@10.0.0.1:6443",
        "ftp://admin:SECRET@10.0.0.1:21",
        "https://admin:SECRET@",
        "admin:SECRET@",
    ] {
        let got = check_server(Some(server)).unwrap_err();
        assert!(!got.contains("SECRET"), "{server}: {got}");
        assert!(got.contains("before '@' (not shown)"), "{server}: {got}");
    }
}

#[test]
fn the_server_error_names_the_kubeconfig_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text("127.0.0.1:6443", "    token: abc"),
    );
    let err = load(&path).unwrap_err();
    assert_eq!(err.code(), 107);
    assert_eq!(
        err.to_string(),
        format!(
            "cannot use kubeconfig {}: field server of cluster \"node\": \"127.0.0.1:6443\" has no scheme; write https://HOST:PORT (here https://127.0.0.1:6443)",
            path.display()
        )
    );
}

#[test]
fn special_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    // Opening the FIFO would block this test forever.
    assert_eq!(
        read_regular(&fifo).unwrap_err(),
        "is a FIFO, not a regular file"
    );
    assert_eq!(
        read_regular(dir.path()).unwrap_err(),
        "is a directory, not a regular file"
    );
    assert_eq!(
        read_regular(Path::new("/dev/zero")).unwrap_err(),
        "is a character device, not a regular file"
    );
    let err = load(&fifo).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot use kubeconfig {}: the file is a FIFO, not a regular file",
            fifo.display()
        )
    );
    let missing = read_regular(&dir.path().join("absent")).unwrap_err();
    assert!(missing.starts_with("cannot be read: "), "{missing}");
}

#[test]
fn files_larger_than_the_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    let file = File::create(&big).unwrap();
    file.set_len(MAX_FILE_SIZE + 1).unwrap();
    assert_eq!(read_regular(&big).unwrap_err(), "is larger than 1 MiB");
    let file = File::create(&big).unwrap();
    file.set_len(MAX_FILE_SIZE).unwrap();
    assert_eq!(
        read_regular(&big).unwrap().len(),
        usize::try_from(MAX_FILE_SIZE).unwrap()
    );
}

#[test]
fn files_kube_reads_itself_must_be_regular_too() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("ca.crt"));
    mkfifo(&dir.path().join("token"));
    let text = kubeconfig_text("https://10.0.0.1:6443", "    token: abc").replace(
        "    server: https://10.0.0.1:6443",
        "    server: https://10.0.0.1:6443\n    certificate-authority: ca.crt",
    );
    let path = write(dir.path(), "kubeconfig", &text);
    let msg = load(&path).unwrap_err().to_string();
    let ca = dir.path().join("ca.crt");
    assert!(
        msg.ends_with(&format!(
            "field certificate-authority of cluster \"node\" names {}, which is a FIFO, not a regular file",
            ca.display()
        )),
        "{msg}"
    );
    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text("https://10.0.0.1:6443", "    tokenFile: token"),
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("field tokenFile of user \"rangepool-node\" names "),
        "{msg}"
    );
    assert!(
        msg.ends_with("which is a FIFO, not a regular file"),
        "{msg}"
    );
    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text(
            "https://10.0.0.1:6443",
            "    client-certificate: /dev/zero\n    client-key: key.pem",
        ),
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("field client-certificate of user \"rangepool-node\" names /dev/zero, which is a character device"),
        "{msg}"
    );
}

#[test]
fn the_current_context_must_lead_to_a_cluster() {
    let text = kubeconfig_text("https://10.0.0.1:6443", "    token: abc");
    let cases = [
        (
            text.replace("current-context: node\n", ""),
            "current-context is not set",
        ),
        (
            text.replace("current-context: node", "current-context: other"),
            "current-context \"other\" names no entry of contexts",
        ),
        (
            text.replace("    cluster: node", "    cluster: gone"),
            "context \"node\" names cluster \"gone\", which is not an entry of clusters",
        ),
    ];
    for (text, want) in cases {
        let mut kubeconfig = parse(&text).unwrap();
        let got = prepare(&mut kubeconfig, Path::new("/")).unwrap_err();
        assert_eq!(got, want);
    }
    // A context without a user, or naming an unknown one, is no error (as in client-go).
    let mut kubeconfig = parse(&text.replace("    user: rangepool-node\n", "")).unwrap();
    assert_eq!(prepare(&mut kubeconfig, Path::new("/")), Ok(()));
}

#[test]
fn a_proxy_is_refused_without_showing_its_password() {
    // Found by the fuzz test: kube's own error for it showed the URL, password included.
    let dir = tempfile::tempdir().unwrap();
    let server = "https://10.0.0.1:6443\n    proxy-url: http://node:SECRET@10.0.0.2:3128";
    let path = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig_text(server, "    token: abc"),
    );
    let msg = load(&path).unwrap_err().to_string();
    assert!(!msg.contains("SECRET"), "{msg}");
    assert!(
        msg.contains("field proxy-url of cluster \"node\"")
            && msg.contains("without proxy support"),
        "{msg}"
    );
}
