//! Memory figures of a process from `/proc/<pid>/status`.

/// Errors reading a process's status.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The status file could not be read (the process is gone, or no permission).
    #[error("cannot read /proc/{pid}/status: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// Why.
        source: std::io::Error,
    },
    /// The field is missing or does not parse.
    #[error("/proc/{pid}/status has no parsable {field} line")]
    Field {
        /// The process.
        pid: u32,
        /// The field asked for.
        field: &'static str,
    },
}

/// Memory of a process, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Resident set now (`VmRSS`).
    pub rss: u64,
    /// Peak resident set since start (`VmHWM`).
    pub hwm: u64,
}

/// Read `VmRSS` and `VmHWM` of `pid`.
pub fn memory(pid: u32) -> Result<Memory, ProcError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|source| ProcError::Read { pid, source })?;
    Ok(Memory {
        rss: field_kib(&text, "VmRSS").ok_or(ProcError::Field {
            pid,
            field: "VmRSS",
        })? * 1024,
        hwm: field_kib(&text, "VmHWM").ok_or(ProcError::Field {
            pid,
            field: "VmHWM",
        })? * 1024,
    })
}

/// The value of a `Name:   123 kB` line.
fn field_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value = parts.next()?.parse().ok()?;
        (parts.next() == Some("kB")).then_some(value)
    })
}

/// The process name (`/proc/<pid>/comm`), trimmed.
pub fn comm(pid: u32) -> Result<String, ProcError> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .map_err(|source| ProcError::Read { pid, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let text = "Name:\txvpc\nVmHWM:\t   12345 kB\nVmRSS:\t  2048 kB\nVmRSSX: 1 kB\n";
        assert_eq!(field_kib(text, "VmHWM"), Some(12345));
        assert_eq!(field_kib(text, "VmRSS"), Some(2048));
        assert_eq!(field_kib(text, "VmSwap"), None);
        assert_eq!(field_kib("VmRSS: 12 MB\n", "VmRSS"), None);
    }

    #[test]
    fn reads_our_own_memory() {
        let m = memory(std::process::id()).expect("our own status is readable");
        assert!(m.rss > 0 && m.hwm >= m.rss, "{m:?}");
        assert!(memory(u32::MAX).is_err());
    }
}
