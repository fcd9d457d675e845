//! What the daemon's and the agent's configurations share: the error both report and the
//! control socket path both default to. The two binaries depend on this crate anyway, so
//! these live here rather than twice.

use std::path::PathBuf;

/// Where the daemon listens and the agent connects unless their configs say otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/xvpc/control.sock";

/// What is wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type, ...).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, which names the key and line.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// A [`ConfigError::Invalid`] for `key`.
pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_key_and_file() {
        let e = invalid("dataplane.ring_size", "must be a power of two");
        assert_eq!(
            e.to_string(),
            "config key `dataplane.ring_size`: must be a power of two"
        );
        let e = ConfigError::Parse {
            path: PathBuf::from("/etc/xvpc.toml"),
            message: "unknown field `bogus`".into(),
        };
        assert_eq!(
            e.to_string(),
            "config file /etc/xvpc.toml: unknown field `bogus`"
        );
    }
}
