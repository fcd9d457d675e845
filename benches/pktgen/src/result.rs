//! The `RESULT` lines the generator and the sink print last, as typed values.
//!
//! The binary prints them through [`fmt::Display`] and harnesses (xvpc-bench-forward) read
//! them back with [`GenResult::from_stdout`] / [`SinkResult::from_stdout`], so the format
//! lives in this one place:
//!
//! ```text
//! RESULT sent=… elapsed_ns=… pps=… size=… flows=… mode=live|afxdp
//! RESULT received=… marked=… sampled=… bytes=… future=… active_ns=… pps=… p50_ns=… p99_ns=… p999_ns=…
//! ```
use std::fmt;
use std::str::FromStr;

/// Errors reading a `RESULT` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// The output has no line starting with `RESULT `.
    #[error("no RESULT line")]
    NoLine,
    /// A key the line must carry is missing.
    #[error("no {key}= in {line:?}")]
    Missing {
        /// The key looked for.
        key: &'static str,
        /// The line.
        line: String,
    },
    /// A value does not parse as the key's type.
    #[error("{key}={value} in {line:?} is not a valid value")]
    Bad {
        /// The key.
        key: &'static str,
        /// Its value as printed.
        value: String,
        /// The line.
        line: String,
    },
}

/// How the generator transmitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxPath {
    /// XDP live frames (`BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`).
    Live,
    /// An AF_XDP socket's TX ring.
    Afxdp,
}

impl TxPath {
    /// The name in the `mode=` field and in the benchmark CSV's `gen_mode` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TxPath::Live => "live",
            TxPath::Afxdp => "afxdp",
        }
    }
}

impl FromStr for TxPath {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "live" => Ok(TxPath::Live),
            "afxdp" => Ok(TxPath::Afxdp),
            _ => Err(()),
        }
    }
}

/// The generator's `RESULT` line.
#[derive(Debug, Clone, PartialEq)]
pub struct GenResult {
    /// Frames sent (taken by the kernel).
    pub sent: u64,
    /// Run time in nanoseconds.
    pub elapsed_ns: u64,
    /// `sent` / elapsed: what was really offered (printed as a whole number).
    pub pps: f64,
    /// Frame size in bytes.
    pub size: u32,
    /// Flows (UDP source ports) cycled through.
    pub flows: u32,
    /// The transmit path that ran.
    pub mode: TxPath,
}

/// The sink's `RESULT` line.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkResult {
    /// Frames received.
    pub received: u64,
    /// Of those, frames carrying the generator's marker.
    pub marked: u64,
    /// Marked frames whose timestamp went into the latency histogram.
    pub sampled: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Marked frames with a timestamp from the future (clock trouble).
    pub future: u64,
    /// Time from the first to the last frame, in nanoseconds.
    pub active_ns: u64,
    /// Received frames per second of `active_ns` (printed as a whole number).
    pub pps: f64,
    /// Latency median, nanoseconds (a histogram bucket's upper edge; 0 without samples).
    pub p50_ns: u64,
    /// Latency 99th percentile, nanoseconds.
    pub p99_ns: u64,
    /// Latency 99.9th percentile, nanoseconds.
    pub p999_ns: u64,
}

impl fmt::Display for GenResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RESULT sent={} elapsed_ns={} pps={:.0} size={} flows={} mode={}",
            self.sent,
            self.elapsed_ns,
            self.pps,
            self.size,
            self.flows,
            self.mode.as_str()
        )
    }
}

impl fmt::Display for SinkResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RESULT received={} marked={} sampled={} bytes={} future={} active_ns={} pps={:.0} p50_ns={} p99_ns={} p999_ns={}",
            self.received,
            self.marked,
            self.sampled,
            self.bytes,
            self.future,
            self.active_ns,
            self.pps,
            self.p50_ns,
            self.p99_ns,
            self.p999_ns
        )
    }
}

/// The `key=value` pairs of the first `RESULT ` line of `stdout`.
struct Fields<'a> {
    line: &'a str,
}

impl<'a> Fields<'a> {
    fn find(stdout: &'a str) -> Result<Self, ResultError> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("RESULT "))
            .ok_or(ResultError::NoLine)?;
        Ok(Fields { line })
    }

    fn get<T: FromStr>(&self, key: &'static str) -> Result<T, ResultError> {
        let value = self
            .line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .ok_or_else(|| ResultError::Missing {
                key,
                line: self.line.to_string(),
            })?;
        value.parse().map_err(|_| ResultError::Bad {
            key,
            value: value.to_string(),
            line: self.line.to_string(),
        })
    }

    /// A rate: a finite, non-negative number.
    fn rate(&self, key: &'static str) -> Result<f64, ResultError> {
        let v: f64 = self.get(key)?;
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(ResultError::Bad {
                key,
                value: v.to_string(),
                line: self.line.to_string(),
            })
        }
    }
}

impl GenResult {
    /// Reads the generator's `RESULT` line out of its whole stdout.
    pub fn from_stdout(stdout: &str) -> Result<Self, ResultError> {
        let f = Fields::find(stdout)?;
        Ok(GenResult {
            sent: f.get("sent")?,
            elapsed_ns: f.get("elapsed_ns")?,
            pps: f.rate("pps")?,
            size: f.get("size")?,
            flows: f.get("flows")?,
            mode: f.get("mode")?,
        })
    }
}

impl SinkResult {
    /// Reads the sink's `RESULT` line out of its whole stdout.
    pub fn from_stdout(stdout: &str) -> Result<Self, ResultError> {
        let f = Fields::find(stdout)?;
        Ok(SinkResult {
            received: f.get("received")?,
            marked: f.get("marked")?,
            sampled: f.get("sampled")?,
            bytes: f.get("bytes")?,
            future: f.get("future")?,
            active_ns: f.get("active_ns")?,
            pps: f.rate("pps")?,
            p50_ns: f.get("p50_ns")?,
            p99_ns: f.get("p99_ns")?,
            p999_ns: f.get("p999_ns")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEN: &str = "sent 2000 frames of 64 bytes on g0 in 1.000 s: 0.002 Mpps (0.00 Gbit/s on the wire), stopped by Duration\n\
        RESULT sent=2000 elapsed_ns=1000123456 pps=2000 size=64 flows=64 mode=afxdp\n";
    const SINK: &str = "received 10 frames (9 with marker, 640 bytes) at 0.000 Mpps over 0.100 s; latency p50 < 8 us, p99 < 16 us, p99.9 < 16 us\n\
        RESULT received=10 marked=9 sampled=3 bytes=640 future=0 active_ns=100000000 pps=100 p50_ns=8000 p99_ns=16000 p999_ns=16000\n";

    #[test]
    fn generator_line_round_trips() {
        let r = GenResult::from_stdout(GEN).expect("parses");
        assert_eq!(
            r,
            GenResult {
                sent: 2000,
                elapsed_ns: 1_000_123_456,
                pps: 2000.0,
                size: 64,
                flows: 64,
                mode: TxPath::Afxdp
            }
        );
        assert_eq!(
            format!("{r}\n"),
            GEN.lines().nth(1).expect("a RESULT line").to_string() + "\n"
        );
    }

    #[test]
    fn sink_line_round_trips() {
        let r = SinkResult::from_stdout(SINK).expect("parses");
        assert_eq!(r.marked, 9);
        assert_eq!(r.p99_ns, 16000);
        assert_eq!(r.pps, 100.0);
        assert_eq!(r.to_string(), SINK.lines().nth(1).expect("a RESULT line"));
    }

    #[test]
    fn rates_print_as_whole_numbers() {
        let r = GenResult {
            sent: 1,
            elapsed_ns: 1,
            pps: 1234.56,
            size: 64,
            flows: 1,
            mode: TxPath::Live,
        };
        assert_eq!(
            r.to_string(),
            "RESULT sent=1 elapsed_ns=1 pps=1235 size=64 flows=1 mode=live"
        );
    }

    #[test]
    fn missing_or_bad_fields_are_errors() {
        assert_eq!(
            GenResult::from_stdout("sent 5 frames\n"),
            Err(ResultError::NoLine)
        );
        assert!(matches!(
            GenResult::from_stdout("RESULT sent=5 elapsed_ns=1 pps=5 size=64 flows=1"),
            Err(ResultError::Missing { key: "mode", .. })
        ));
        assert!(matches!(
            GenResult::from_stdout("RESULT sent=-5 elapsed_ns=1 pps=5 size=64 flows=1 mode=live"),
            Err(ResultError::Bad { key: "sent", .. })
        ));
        assert!(matches!(
            GenResult::from_stdout("RESULT sent=5 elapsed_ns=1 pps=NaN size=64 flows=1 mode=live"),
            Err(ResultError::Bad { key: "pps", .. })
        ));
        assert!(matches!(
            GenResult::from_stdout("RESULT sent=5 elapsed_ns=1 pps=5 size=64 flows=1 mode=turbo"),
            Err(ResultError::Bad { key: "mode", .. })
        ));
        // A key that is a suffix of another (`sent` in `resent`) is not that key.
        assert!(matches!(
            GenResult::from_stdout("RESULT resent=5 elapsed_ns=1 pps=5 size=64 flows=1 mode=live"),
            Err(ResultError::Missing { key: "sent", .. })
        ));
    }
}
