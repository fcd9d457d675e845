//! `results.csv`: one row per measurement, the columns `benches/pktgen/report.py` reads.
//! `dut_tier` (the 18th) follows `gen_mode`, and `losses` (the 19th) follows it; report.py reads
//! older files without them.
//!
//! Written by hand: every value is a number, a fixed word or the quoted drop list (which
//! holds no quote or comma-separated values of its own: `path=value;path=value`).
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::options::{Dir, System};
use crate::search::ZeroLoss;
use crate::HarnessError;

/// The header line (without newline).
pub const HEADER: &str = "rep,size,system,dir,gen_pps,sink_pps,sink_frames,zero_loss_pps,zl_lossy_pps,dut_ns_per_pkt,p50_ns,p99_ns,lat_base,steered,check,dut_drops,gen_mode,dut_tier,losses";

/// What the latency run was paced against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatBase {
    /// 50 % of the zero-loss rate.
    ZeroLoss,
    /// 50 % of the max forwarding rate (no zero-loss rate found, or no search).
    Max,
}

/// Outcome of the correctness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Not run (repetitions after the first).
    NotRun,
    /// Every one of `n` captured frames was as expected.
    Ok(usize),
    /// Nothing was captured.
    NothingCaptured,
    /// A frame was wrong (the log says which).
    Fail,
    /// The xvpc systems' counters did not account for the frames ([`crate::tier`]; the log
    /// says how).
    Accounting,
}

impl Check {
    fn as_csv(&self) -> String {
        match self {
            Check::NotRun => "-".into(),
            Check::Ok(n) => format!("ok({n})"),
            Check::NothingCaptured => "FAIL:nothing-captured".into(),
            Check::Fail => "FAIL".into(),
            Check::Accounting => "FAIL:accounting".into(),
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Repetition, 1-based.
    pub rep: u32,
    /// Guest frame size.
    pub size: u16,
    /// The system.
    pub system: System,
    /// The direction.
    pub dir: Dir,
    /// Generator rate of the full-speed run (`None`: it printed no result).
    pub gen_pps: Option<f64>,
    /// Sink rate of the full-speed run: the max forwarding rate.
    pub sink_pps: Option<f64>,
    /// Marked frames the sink counted in the full-speed run.
    pub sink_frames: Option<u64>,
    /// The zero-loss search's result (`None` with `--no-zero-loss`).
    pub zero_loss: Option<ZeroLoss>,
    /// DUT core busy time per forwarded frame, ns.
    pub dut_ns_per_pkt: Option<u64>,
    /// Latency median and 99th percentile, ns (`None`: no latency run, or no sink result).
    pub p50_ns: Option<u64>,
    /// See `p50_ns`.
    pub p99_ns: Option<u64>,
    /// What the latency run was paced against (`None`: no latency run).
    pub lat_base: Option<LatBase>,
    /// Receive steering was on.
    pub steered: bool,
    /// The correctness check.
    pub check: Check,
    /// xvpc's drop counters that moved, `path=value;...` (empty for other systems).
    pub dut_drops: String,
    /// Generator modes the runs used, in order of first use (normally one).
    pub gen_modes: Vec<&'static str>,
    /// xvpc's split of the forwarded frames between its tiers ([`crate::tier::Split`]; empty
    /// for other systems).
    pub dut_tier: String,
    /// The kernel's drop counters around the DUT that moved in the full-speed run
    /// ([`crate::losses::column`]; every system).
    pub losses: String,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

impl Row {
    /// The CSV line (without newline).
    pub fn to_csv(&self) -> String {
        let mut s = String::new();
        let rate = |v: Option<f64>| format!("{:.0}", v.unwrap_or(0.0));
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\",{},{},{}",
            self.rep,
            self.size,
            self.system,
            self.dir,
            rate(self.gen_pps),
            rate(self.sink_pps),
            self.sink_frames.unwrap_or(0),
            opt(self.zero_loss.map(|z| z.pps)),
            opt(self.zero_loss.and_then(|z| z.lossy_pps)),
            opt(self.dut_ns_per_pkt),
            opt(self.p50_ns),
            opt(self.p99_ns),
            match self.lat_base {
                Some(LatBase::ZeroLoss) => "zero-loss",
                Some(LatBase::Max) => "max",
                None => "",
            },
            u8::from(self.steered),
            self.check.as_csv(),
            // A quote inside would end the field early: never write one.
            self.dut_drops.replace('"', "'"),
            self.gen_modes.join("+"),
            // Words and numbers joined by `=` and `;`: no comma, no quote.
            self.dut_tier,
            // The same alphabet.
            self.losses,
        );
        s
    }
}

/// `results.csv`, appended to row by row (so a failed run keeps what it measured).
pub struct CsvFile {
    path: PathBuf,
    file: File,
}

impl CsvFile {
    /// Creates (truncates) the file and writes the header.
    pub fn create(path: &Path) -> Result<CsvFile, HarnessError> {
        let io = |source| HarnessError::Io {
            what: "writing",
            path: path.display().to_string(),
            source,
        };
        let mut file = File::create(path).map_err(io)?;
        writeln!(file, "{HEADER}").map_err(io)?;
        Ok(CsvFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one row.
    pub fn append(&mut self, line: &str) -> Result<(), HarnessError> {
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(|source| HarnessError::Io {
                what: "writing",
                path: self.path.display().to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_has_the_header_and_every_row() {
        let dir = std::env::temp_dir().join(format!("xvpc-bench-csv-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp file");
        let path = dir.join("results.csv");
        std::fs::write(&path, "stale\n").expect("temp file");
        let mut f = CsvFile::create(&path).expect("temp file");
        f.append(&row().to_csv()).expect("temp file");
        f.append(&Row { rep: 2, ..row() }.to_csv())
            .expect("temp file");
        let text = std::fs::read_to_string(&path).expect("temp file");
        std::fs::remove_dir_all(&dir).expect("temp file");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], HEADER);
        assert!(lines[1].starts_with("1,64,xvpc,"));
        assert!(lines[2].starts_with("2,64,xvpc,"));
        assert!(text.ends_with('\n'));
    }

    fn row() -> Row {
        Row {
            rep: 1,
            size: 64,
            system: System::Xvpc,
            dir: Dir::Egress,
            gen_pps: Some(2_101_234.0),
            sink_pps: Some(612_345.0),
            sink_frames: Some(612_000),
            zero_loss: Some(ZeroLoss {
                pps: 250_000,
                lossy_pps: Some(312_000),
            }),
            dut_ns_per_pkt: Some(1_634),
            p50_ns: None,
            p99_ns: None,
            lat_base: None,
            steered: true,
            check: Check::Ok(20),
            dut_drops: "workers.0.drops.no_mapping=3".into(),
            gen_modes: vec!["afxdp"],
            dut_tier: "xdp=0;workers=612000;kernel_dropped=0".into(),
            losses: "xsk_fill_empty=12;out_refused=3".into(),
        }
    }

    /// Lines as bash bench.sh wrote them for the same values.
    #[test]
    fn rows_match_bench_sh() {
        assert_eq!(HEADER.split(',').count(), 19);
        assert_eq!(
            row().to_csv(),
            "1,64,xvpc,egress,2101234,612345,612000,250000,312000,1634,,,,1,ok(20),\"workers.0.drops.no_mapping=3\",afxdp,xdp=0;workers=612000;kernel_dropped=0,xsk_fill_empty=12;out_refused=3"
        );
        let r = Row {
            system: System::KernelVxlan,
            dir: Dir::Ingress,
            gen_pps: None,
            sink_pps: None,
            sink_frames: None,
            zero_loss: Some(ZeroLoss {
                pps: 0,
                lossy_pps: None,
            }),
            dut_ns_per_pkt: None,
            p50_ns: Some(8_000),
            p99_ns: Some(64_000),
            lat_base: Some(LatBase::Max),
            steered: false,
            check: Check::NothingCaptured,
            dut_drops: String::new(),
            gen_modes: vec!["live", "afxdp"],
            dut_tier: String::new(),
            losses: "gen_refused=7".into(),
            ..row()
        };
        assert_eq!(
            r.to_csv(),
            "1,64,kernel-vxlan,ingress,0,0,0,0,,,8000,64000,max,0,FAIL:nothing-captured,\"\",live+afxdp,,gen_refused=7"
        );
        let r = Row {
            zero_loss: None,
            check: Check::NotRun,
            lat_base: Some(LatBase::ZeroLoss),
            gen_modes: vec![],
            ..row()
        };
        assert_eq!(
            r.to_csv(),
            "1,64,xvpc,egress,2101234,612345,612000,,,1634,,,zero-loss,1,-,\"workers.0.drops.no_mapping=3\",,xdp=0;workers=612000;kernel_dropped=0,xsk_fill_empty=12;out_refused=3"
        );
        let r = Row {
            system: System::XvpcXdp,
            check: Check::Accounting,
            dut_tier: String::new(),
            ..row()
        };
        assert!(
            r.to_csv().starts_with("1,64,xvpc-xdp,egress,")
                && r.to_csv().contains(",1,FAIL:accounting,"),
            "{}",
            r.to_csv()
        );
    }

    /// report.py reads the file with Python's csv module: every row has the header's columns,
    /// whatever the drop list holds.
    #[test]
    fn every_row_has_the_header_columns() {
        let r = Row {
            dut_drops: "a=1;b\"=2".into(),
            ..row()
        };
        let line = r.to_csv();
        // Split like a CSV reader: commas outside quotes.
        let mut cols = 1;
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => cols += 1,
                _ => {}
            }
        }
        assert!(!quoted, "{line}");
        assert_eq!(cols, HEADER.split(',').count(), "{line}");
    }
}
