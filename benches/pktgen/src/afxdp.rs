//! The generator's fallback where XDP live frames are missing (kernels before 5.18) or refused
//! for the device: frames written in user space exactly as `gen.bpf.c` writes them
//! ([`Template::write_frame`]) and sent through one AF_XDP socket on queue 0 of the device.
//! Slower than live frames (one copy into the UMEM per frame, a `sendto` per batch in copy
//! mode), but the same frames, bounds, pacing and report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xvpc_xsk::{BindMode, Desc, Port, SocketOptions, UmemConfig};

use crate::args::GenSpec;
use crate::bpf::{BenchError, GenReport, StopReason};
use crate::frame::Template;
use crate::pace::Pacer;

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `bpf_ktime_get_ns()` reads, so a timestamp
/// written here compares with one taken in the sink's XDP program (the latency).
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        (ts.tv_sec() as u64).saturating_mul(1_000_000_000) + ts.tv_nsec() as u64
    })
}

/// Frames written and queued per round at full speed.
const BATCH: usize = 64;
/// How long the end of a run waits for the kernel to transmit what is queued.
const DRAIN: Duration = Duration::from_secs(1);

/// Transmits `template` frames on `spec.dev` until `spec.count` frames, `spec.duration` or
/// `stop`; `sent` counts frames the kernel took off the TX ring.
pub fn run(
    template: &Template,
    spec: &GenSpec,
    stop: &AtomicBool,
) -> Result<GenReport, BenchError> {
    // 4 KiB chunks: every frame size the generator accepts fits after the headroom.
    let umem = UmemConfig {
        frame_size: 4096,
        ..UmemConfig::default()
    };
    let mut port = Port::new(
        &spec.dev,
        0,
        umem,
        BindMode::Auto,
        &SocketOptions::default(),
    )
    .map_err(|source| BenchError::AfXdp {
        dev: spec.dev.clone(),
        source,
    })?;
    let len = template.frame.len();
    let start_in_chunk = umem.headroom as usize;
    let mut pacer = Pacer::new(spec.rate, u64::MAX);
    let per_round = if spec.rate == 0 {
        BATCH as u64
    } else {
        pacer.per_round()
    };
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut queued = 0u64;
    let mut descs = [Desc::default(); BATCH];
    let reason = loop {
        if stop.load(Ordering::Relaxed) {
            break StopReason::Signal;
        }
        if queued >= spec.count {
            break StopReason::Count;
        }
        if Instant::now() >= deadline {
            break StopReason::Duration;
        }
        let mut round = per_round.min(spec.count - queued);
        while round > 0 {
            let want = round.min(BATCH as u64) as usize;
            let mut k = 0;
            while k < want {
                let Some(base) = port.alloc() else { break };
                let n = queued + k as u64;
                let ts = if template.is_sampled(n) {
                    monotonic_ns()
                } else {
                    0
                };
                match port.frame(Desc::from_chunk(base, start_in_chunk, len)) {
                    Ok(mut frame) => {
                        template.write_frame(n, ts, frame.data_mut());
                        descs[k] = frame.desc();
                        k += 1;
                    }
                    Err(_) => {
                        // The UMEM chunk cannot hold the frame: a size validation missed.
                        port.release(base);
                        break;
                    }
                }
            }
            let accepted = port.send(&descs[..k]);
            for d in &descs[accepted..k] {
                port.release(d.addr);
            }
            queued += accepted as u64;
            round -= accepted as u64;
            port.service();
            if accepted < want {
                // TX ring or free list exhausted: let the kernel catch up.
                break;
            }
        }
        pacer.wait();
    };
    let elapsed = start.elapsed();
    let drain_until = Instant::now() + DRAIN;
    while port.accounting().in_tx[0] > 0 && Instant::now() < drain_until {
        port.service();
        let _ = port.wait(Duration::from_millis(1));
    }
    // Queued minus what is still on the TX ring: what the kernel took.
    let sent = queued - u64::from(port.accounting().in_tx[0]);
    Ok(GenReport {
        sent,
        elapsed,
        reason,
    })
}
