//! The file source: a TOML file of `[[mapping]]` tables, polled for changes.
//!
//! Polling the file's metadata every few milliseconds is simpler and more predictable than
//! inotify (editors replace files by rename, which inotify watches on the file lose), and
//! costs one `stat` per interval.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use xvpc_model::{Mapping, MappingKey};

use crate::entry::{validate, EntryError, UnderlayFamily};
use crate::store::{bump, Store};

/// A mappings file that cannot be used (the last good state is kept).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read mappings file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or a field is missing or mistyped (the message has line and key).
    #[error("mappings file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        message: String,
    },
    /// One mapping is invalid.
    #[error(
        "mappings file {path}: mapping #{index} (vni {vni}, overlay_ip {overlay_ip}): {source}"
    )]
    Entry {
        /// The file.
        path: PathBuf,
        /// 1-based position of the `[[mapping]]` table.
        index: usize,
        /// Its VNI.
        vni: u32,
        /// Its overlay address.
        overlay_ip: std::net::IpAddr,
        /// What is wrong.
        source: EntryError,
    },
    /// Two mappings with the same key.
    #[error("mappings file {path}: mapping #{index} repeats vni {vni}, overlay_ip {overlay_ip}")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based position of the second one.
        index: usize,
        /// Its VNI.
        vni: u32,
        /// Its overlay address.
        overlay_ip: std::net::IpAddr,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingsFile {
    #[serde(default)]
    mapping: Vec<Mapping>,
}

/// Parses and validates a mappings file's text.
pub fn parse_mappings(
    path: &Path,
    text: &str,
    family: UnderlayFamily,
) -> Result<HashMap<MappingKey, Mapping>, FileError> {
    let file: MappingsFile = toml::from_str(text).map_err(|e| FileError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut map = HashMap::with_capacity(file.mapping.len());
    for (i, m) in file.mapping.into_iter().enumerate() {
        validate(&m, family).map_err(|source| FileError::Entry {
            path: path.to_owned(),
            index: i + 1,
            vni: m.vni.get(),
            overlay_ip: m.overlay_ip,
            source,
        })?;
        if map.insert(m.key(), m).is_some() {
            return Err(FileError::Duplicate {
                path: path.to_owned(),
                index: i + 1,
                vni: m.vni.get(),
                overlay_ip: m.overlay_ip,
            });
        }
    }
    Ok(map)
}

/// Reads, parses and validates a mappings file.
pub fn load(
    path: &Path,
    family: UnderlayFamily,
) -> Result<HashMap<MappingKey, Mapping>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_mappings(path, &text, family)
}

/// What identifies a version of the file without reading it.
#[derive(PartialEq, Eq, Clone, Copy)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let md = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: md.ino(),
        len: md.len(),
        mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
    })
}

/// Loads the file into `store` and reloads it whenever its metadata changes, until
/// `shutdown`. A file that fails is logged once per distinct error; the last good state
/// stays.
pub fn run(
    path: PathBuf,
    interval: Duration,
    family: UnderlayFamily,
    store: Arc<Store>,
    shutdown: Arc<AtomicBool>,
) {
    let mut last: Option<Stamp> = None;
    let mut last_error: Option<String> = None;
    let mut first = true;
    while !shutdown.load(Ordering::Relaxed) {
        let now = stamp(&path);
        if first || now != last {
            first = false;
            last = now;
            match load(&path, family) {
                Ok(map) => {
                    let n = map.len();
                    store.replace_all(map, 0);
                    store.counters.source_up.store(1, Ordering::Relaxed);
                    bump(&store.counters.source_reloads);
                    last_error = None;
                    tracing::info!(path = %path.display(), mappings = n, "mappings file loaded");
                }
                Err(e) => {
                    store.counters.source_up.store(0, Ordering::Relaxed);
                    let text = e.to_string();
                    if last_error.as_deref() != Some(&text) {
                        bump(&store.counters.invalid_skipped);
                        tracing::warn!(error = %text, "mappings file rejected, keeping the last good state");
                        last_error = Some(text);
                    }
                }
            }
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[mapping]]
vni = 100
overlay_ip = "198.18.0.1"
underlay_ip = "198.19.0.1"
overlay_mac = "02:00:00:00:00:01"

[[mapping]]
vni = 100
overlay_ip = "2001:2::1"
underlay_ip = "2001:2:1::1"
overlay_mac = "02:00:00:00:00:02"
"#;

    #[test]
    fn parses_and_reports_errors_with_location() {
        let p = Path::new("m.toml");
        assert_eq!(
            parse_mappings(p, GOOD, UnderlayFamily::Any)
                .expect("good")
                .len(),
            2
        );
        assert!(parse_mappings(p, "", UnderlayFamily::Any)
            .expect("empty")
            .is_empty());
        let err = parse_mappings(
            p,
            &GOOD.replace(
                "vni = 100\noverlay_ip = \"2001",
                "vni = 99999999\noverlay_ip = \"2001",
            ),
            UnderlayFamily::Any,
        )
        .expect_err("vni out of range")
        .to_string();
        assert!(err.contains("line"), "{err}");
        let err = parse_mappings(
            p,
            &GOOD.replace("02:00:00:00:00:02", "01:00:00:00:00:02"),
            UnderlayFamily::Any,
        )
        .expect_err("multicast mac")
        .to_string();
        assert!(
            err.contains("mapping #2") && err.contains("2001:2::1"),
            "{err}"
        );
        let dup = format!(
            "{GOOD}{}",
            &GOOD[..GOOD.find("\n\n[[").expect("two tables")]
        );
        assert!(matches!(
            parse_mappings(p, &dup, UnderlayFamily::Any),
            Err(FileError::Duplicate { index: 3, .. })
        ));
        let err = parse_mappings(p, "[[mapping]]\nvni = 1\n", UnderlayFamily::Any)
            .expect_err("missing")
            .to_string();
        assert!(err.contains("overlay_ip"), "{err}");
    }
}
