//! A small line logger to stderr and, optionally, a file, shared by the plugin and the node
//! agent.
//!
//! The plugin is a short-lived process started for every call, so a logging framework's set-up
//! cost is not worth paying: lines are formatted once and written unbuffered. Standard input is
//! never logged; callers pass only values the plugin derived from it. Control characters are
//! escaped, so that one entry is always one line whatever a message quotes. The agent logs the
//! same lines, as text or as one JSON object per line.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::text::{echo, one_line};

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures only.
    Error,
    /// Failures and surprises that were handled.
    Warn,
    /// One line per call and per API write.
    Info,
    /// Every API request.
    Debug,
}

impl Level {
    /// Parses `error`, `warn`, `info` or `debug`.
    pub fn parse(value: &str) -> Option<Level> {
        match value {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// How a line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `TIME PROGRAM LEVEL CONTEXT: MESSAGE`
    Text,
    /// `{"time": ..., "level": ..., "program": ..., "context": ..., "msg": ...}`
    Json,
}

impl Format {
    /// Parses `text` or `json`.
    pub fn parse(value: &str) -> Option<Format> {
        match value {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Writes log lines; cheap to pass by reference everywhere.
#[derive(Debug)]
pub struct Logger {
    level: Level,
    format: Format,
    /// Who writes: `rangepool-ipam` or `rangepool-agent`.
    program: &'static str,
    file: Option<File>,
    /// `COMMAND container pod`, prefixed to every line so that interleaved calls can be told apart.
    context: String,
}

impl Logger {
    /// Logs to stderr only, at `level`, as text, as `rangepool-ipam`.
    pub fn stderr(level: Level) -> Self {
        Logger {
            level,
            format: Format::Text,
            program: "rangepool-ipam",
            file: None,
            context: String::new(),
        }
    }

    /// The same logger writing as `program` in `format`.
    pub fn as_program(mut self, program: &'static str, format: Format) -> Self {
        self.program = program;
        self.format = format;
        self
    }

    /// A logger for one piece of work: same level, format and program, no file, this context.
    pub fn for_context(&self, context: String) -> Logger {
        Logger {
            level: self.level,
            format: self.format,
            program: self.program,
            file: None,
            context,
        }
    }

    /// Also appends to `path`, a regular file (created when missing). When it is something
    /// else or cannot be opened, that is logged to stderr and the call goes on: losing a log file
    /// must not fail pod networking.
    pub fn with_file(mut self, path: Option<&Path>) -> Self {
        if let Some(path) = path {
            match open_regular(path) {
                Ok(file) => self.file = Some(file),
                Err(reason) => self.warn(format_args!(
                    "cannot use log file {}: {reason}; logging to stderr only",
                    echo(&path.display().to_string())
                )),
            }
        }
        self
    }

    /// Changes the level.
    pub fn set_level(&mut self, level: Level) {
        self.level = level;
    }

    /// Sets the words prefixed to every line.
    pub fn set_context(&mut self, context: String) {
        self.context = context;
    }

    /// Whether lines of `level` are written.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Writes one line at `level`.
    pub fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        // One entry is one line, whatever the message quotes.
        let time = timestamp(SystemTime::now());
        let line = match self.format {
            Format::Text if self.context.is_empty() => format!(
                "{time} {} {} {}\n",
                self.program,
                level.label(),
                one_line(&message.to_string())
            ),
            Format::Text => format!(
                "{time} {} {} {}: {}\n",
                self.program,
                level.label(),
                one_line(&self.context),
                one_line(&message.to_string())
            ),
            // JSON escapes every control character itself.
            Format::Json => format!(
                "{}\n",
                serde_json::json!({
                    "time": time,
                    "level": level.label(),
                    "program": self.program,
                    "context": self.context,
                    "msg": message.to_string(),
                })
            ),
        };
        // Nothing sensible can be done when stderr or the log file is gone.
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(mut file) = self.file.as_ref() {
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// Error line.
    pub fn error(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Error, message);
    }

    /// Warning line.
    pub fn warn(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Warn, message);
    }

    /// Info line.
    pub fn info(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Info, message);
    }

    /// Debug line.
    pub fn debug(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Debug, message);
    }
}

/// Opens `path` to append to, creating it, unless it is there and not a regular file: opening a
/// FIFO blocks until someone reads it (past the call's deadline, which is not running yet), and
/// a device such as `/dev/stdout` would put log lines among the reply.
fn open_regular(path: &Path) -> Result<File, String> {
    let regular = |meta: &std::fs::Metadata| {
        if meta.is_file() {
            Ok(())
        } else {
            Err("it is not a regular file".to_owned())
        }
    };
    match std::fs::metadata(path) {
        Ok(meta) => regular(&meta)?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    // The path may have been replaced meanwhile: judge what was opened as well.
    regular(&file.metadata().map_err(|e| e.to_string())?)?;
    Ok(file)
}

/// UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_utc_iso8601() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn levels_filter_and_parse() {
        let log = Logger::stderr(Level::Warn);
        assert!(log.enabled(Level::Error));
        assert!(!log.enabled(Level::Info));
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse("DEBUG"), None);
    }

    #[test]
    fn file_receives_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.log");
        let mut log = Logger::stderr(Level::Info).with_file(Some(&path));
        log.set_context("ADD abc ns/web".into());
        log.info(format_args!("verified 10.0.0.1"));
        log.debug(format_args!("not written"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("INFO ADD abc ns/web: verified 10.0.0.1"),
            "{text}"
        );
        assert!(!text.contains("not written"));
    }

    #[test]
    fn a_log_file_that_is_not_a_regular_file_is_not_opened() {
        // Found by the fuzz test: a FIFO as `logFile` blocked the call for ever, and
        // `/dev/stdout` put log lines among the reply.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let log = Logger::stderr(Level::Info).with_file(Some(&fifo));
            let _ = tx.send(log.file.is_none());
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
        for path in [dir.path(), Path::new("/dev/null")] {
            let log = Logger::stderr(Level::Info).with_file(Some(path));
            assert!(log.file.is_none(), "{}", path.display());
        }
        let missing = dir.path().join("ipam.log");
        assert!(
            Logger::stderr(Level::Info)
                .with_file(Some(&missing))
                .file
                .is_some()
        );
    }

    #[test]
    fn json_lines_are_one_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let mut log = Logger::stderr(Level::Info)
            .as_program("rangepool-agent", Format::Json)
            .with_file(Some(&path));
        log.set_context("ADD c1\nfake".into());
        log.info(format_args!("verified\n{{\"level\":\"ERROR\"}}"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["program"], "rangepool-agent");
        assert_eq!(line["context"], "ADD c1\nfake");
        assert_eq!(line["msg"], "verified\n{\"level\":\"ERROR\"}");
        assert_eq!(Format::parse("json"), Some(Format::Json));
        assert_eq!(Format::parse("JSON"), None);
        let child = log.for_context("CHECK".into());
        assert!(child.file.is_none() && child.format == Format::Json);
        // Text without a context has no empty one.
        let text = dir.path().join("text.log");
        Logger::stderr(Level::Info)
            .as_program("rangepool-agent", Format::Text)
            .with_file(Some(&text))
            .info(format_args!("listening"));
        let line = std::fs::read_to_string(&text).unwrap();
        assert!(
            line.ends_with("Z rangepool-agent INFO listening\n"),
            "{line}"
        );
    }

    #[test]
    fn a_message_cannot_forge_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.log");
        let mut log = Logger::stderr(Level::Info).with_file(Some(&path));
        log.set_context("ADD c1\nfake".into());
        log.error(format_args!(
            "refused\n2023-01-01 rangepool-ipam INFO forged: ok"
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("ADD c1\\nfake: refused\\n2023-01-01 rangepool-ipam INFO forged"),
            "{text}"
        );
    }
}
