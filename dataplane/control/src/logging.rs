//! Log set-up shared by `xvpc` and `xvpc-agent`: to stderr, one event per line, colour only
//! when stderr is a terminal, and `--log-format json` (one JSON object per line) for
//! journald and log shippers. `RUST_LOG` filters as usual (default `info`). Under journald
//! (stderr is the stream `$JOURNAL_STREAM` names) text events carry no timestamp of their
//! own: the journal stamps every line already.

use std::io::{IsTerminal, Write};
use std::str::FromStr;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log events are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// An unknown `--log-format` value.
#[derive(Debug, thiserror::Error)]
#[error("unknown log format {0:?}: use text or json")]
pub struct UnknownLogFormat(String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(UnknownLogFormat(other.to_string())),
        }
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(OneLine);
    match format {
        LogFormat::Text if stderr_is_journal() => builder.with_ansi(false).without_time().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // JSON escapes newlines itself.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Is stderr the journal stream systemd connected us to? `$JOURNAL_STREAM` is `<dev>:<inode>`
/// of that stream; a child whose stderr was redirected inherits the variable but not the
/// stream, hence the comparison (as sd_journal_stream_fd(3) advises).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(var), Ok(stderr)) = (
        std::env::var("JOURNAL_STREAM"),
        std::fs::metadata("/proc/self/fd/2"),
    ) else {
        return false;
    };
    names_stream(&var, stderr.dev(), stderr.ino())
}

/// Does a `$JOURNAL_STREAM` value name the stream with this device and inode?
fn names_stream(var: &str, dev: u64, ino: u64) -> bool {
    var.split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// stderr, with newlines inside an event (a multi-line error message) escaped, so every
/// event is exactly one line. The formatter writes each event in one `write` call.
struct OneLine;

impl<'a> MakeWriter<'a> for OneLine {
    type Writer = OneLine;
    fn make_writer(&'a self) -> Self::Writer {
        OneLine
    }
}

impl Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        let mut line = Vec::with_capacity(buf.len() + 8);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                _ => line.push(b),
            }
        }
        if body.len() < buf.len() {
            line.push(b'\n');
        }
        std::io::stderr().lock().write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_our_stderr() {
        assert!(names_stream("9:123456", 9, 123456));
        assert!(!names_stream("9:123457", 9, 123456), "another stream");
        assert!(!names_stream("8:123456", 9, 123456), "another device");
        assert!(!names_stream("9", 9, 123456));
        assert!(!names_stream("", 9, 123456));
        assert!(!names_stream("x:y", 9, 123456));
    }
}
