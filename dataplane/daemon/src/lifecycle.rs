//! The daemon's life beyond one process: `xvpc detach`, `xvpc status`, and the bounded retry
//! of a restart that races the kernel's release of the previous process's links and sockets.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use xvpc_xdp::{detach_pinned, pinned_state, AttachMode};

use crate::config::{Config, DEFAULT_PIN_DIR};

/// Which ports, and where their pins are: from a config file or named on the command line.
#[derive(Args, Debug)]
pub struct Ports {
    /// The daemon's config file (its interfaces, pin directory and stats socket).
    #[arg(long, conflicts_with_all = ["guest", "fabric"])]
    config: Option<PathBuf>,
    /// The guest port.
    #[arg(long, requires = "fabric")]
    guest: Option<String>,
    /// The fabric port.
    #[arg(long, requires = "guest")]
    fabric: Option<String>,
    /// The bpffs pin directory (with --guest/--fabric).
    #[arg(long, default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// The daemon's stats socket (with --guest/--fabric).
    #[arg(long, default_value = "/run/xvpc/stats.sock")]
    stats_socket: PathBuf,
}

struct Resolved {
    guest: String,
    fabric: String,
    pin_dir: PathBuf,
    stats_socket: PathBuf,
}

impl Ports {
    fn resolve(&self) -> anyhow::Result<Resolved> {
        if let Some(path) = &self.config {
            let c = Config::load(path)?;
            return Ok(Resolved {
                guest: c.guest_interface,
                fabric: c.fabric_interface,
                pin_dir: c.dataplane.pin_dir,
                stats_socket: c.dataplane.stats_socket,
            });
        }
        match (&self.guest, &self.fabric) {
            (Some(guest), Some(fabric)) => Ok(Resolved {
                guest: guest.clone(),
                fabric: fabric.clone(),
                pin_dir: self.pin_dir.clone(),
                stats_socket: self.stats_socket.clone(),
            }),
            _ => anyhow::bail!("name the ports: --config FILE, or --guest IF --fabric IF"),
        }
    }
}

/// `xvpc detach`: removes the pins of both ports, fabric first so the guest port is the last
/// to open.
pub fn detach(ports: &Ports) -> anyhow::Result<()> {
    let r = ports.resolve()?;
    let running = crate::stats::fetch(&r.stats_socket).is_ok();
    for (role, ifname) in [("fabric", &r.fabric), ("guest", &r.guest)] {
        let d = detach_pinned(&r.pin_dir, ifname)
            .with_context(|| format!("detaching the {role} port {ifname}"))?;
        if d.removed.is_empty() {
            println!(
                "{role} {ifname}: nothing pinned under {}",
                r.pin_dir.display()
            );
        } else {
            println!("{role} {ifname}: removed pins {}", d.removed.join(", "));
        }
    }
    if running {
        println!(
            "a dataplane is running (its stats socket {} answers): its links stay until it exits",
            r.stats_socket.display()
        );
    }
    println!(
        "WARNING: the guest port {} is an ordinary interface now: guest frames reach this host's \
         kernel stack until `xvpc run` attaches again",
        r.guest
    );
    Ok(())
}

/// The id of the XDP program attached to `ifname` now, from `ip -d link` (`prog/xdp id N`).
fn attached_program_id(ifname: &str) -> Option<u32> {
    let out = std::process::Command::new("ip")
        .args(["-d", "link", "show", "dev", ifname])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = text.split("prog/xdp id ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `xvpc status`: attached, pinned, versions, and whether a dataplane serves the sockets.
/// Exits non-zero when a port is not held closed by a pinned program.
pub fn status(ports: &Ports) -> anyhow::Result<()> {
    let r = ports.resolve()?;
    let mut closed = true;
    for (role, ifname) in [("guest", &r.guest), ("fabric", &r.fabric)] {
        let attached = attached_program_id(ifname);
        let state = pinned_state(&r.pin_dir, ifname)
            .with_context(|| format!("reading the pins of {ifname}"))?;
        let line = match state {
            Some(s) if s.link => {
                let (program, mode, version) = s.program.map_or_else(
                    || ("?".to_string(), "?".to_string(), "?".to_string()),
                    |(p, m, v)| {
                        let m = match m {
                            AttachMode::Driver => "driver",
                            _ => "generic",
                        };
                        (p, m.to_string(), v)
                    },
                );
                let live = attached.is_some() && attached == s.link_program_id;
                closed &= live;
                // The pinned counters go on counting while no daemon runs.
                let names: &[&str] = match role {
                    "guest" => &["redirected", "dropped_no_socket"],
                    _ => &["steered", "passed", "dropped_no_socket", "malformed"],
                };
                let counters: Vec<String> = names
                    .iter()
                    .zip(&s.counters)
                    .map(|(n, v)| format!("{n} {v}"))
                    .collect();
                format!(
                    "{role} {ifname}: {program} version {version} ({mode} mode), pinned at {}, {}; counters: {}",
                    s.path.display(),
                    if live {
                        "attached".to_string()
                    } else {
                        format!(
                            "NOT attached (the interface runs {:?}, the link {:?}: defunct pin)",
                            attached, s.link_program_id
                        )
                    },
                    counters.join(", ")
                )
            }
            _ => {
                closed = false;
                format!(
                    "{role} {ifname}: not pinned under {}{}",
                    r.pin_dir.display(),
                    match attached {
                        Some(id) => format!(" (some XDP program, id {id}, is attached)"),
                        None => " and no XDP program attached: OPEN".to_string(),
                    }
                )
            }
        };
        println!("{line}");
    }
    match crate::stats::fetch(&r.stats_socket) {
        Ok(_) => println!(
            "dataplane: running (stats socket {} answers)",
            r.stats_socket.display()
        ),
        Err(_) => println!(
            "dataplane: not running (no answer on {}): the pinned programs drop what it would forward",
            r.stats_socket.display()
        ),
    }
    if !closed {
        anyhow::bail!("a port is not held closed by a pinned xvpc program");
    }
    Ok(())
}

/// True if `e` or an error it wraps is EBUSY or EEXIST: the kernel still holds what the
/// previous process had.
fn is_busy(e: &(dyn Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST)) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// Tries of [`retry_busy`] and the pause between them: 5 s in all.
const BUSY_TRIES: u32 = 50;
const BUSY_PAUSE: Duration = Duration::from_millis(100);

/// Runs `f` until it succeeds or fails with something other than EBUSY/EEXIST, at most
/// [`BUSY_TRIES`] times.
pub fn retry_busy<T, E>(what: &str, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E>
where
    E: Error + 'static,
{
    let mut tries = 1;
    loop {
        match f() {
            Err(e) if is_busy(&e) && tries < BUSY_TRIES => {
                if tries == 1 || tries % 10 == 0 {
                    tracing::warn!(error = %e, tries, "{what}: busy (the kernel is still \
                        releasing the previous process's objects); retrying for up to 5 s");
                }
                tries += 1;
                std::thread::sleep(BUSY_PAUSE);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn busy_is_found_through_the_source_chain_and_retried_with_a_bound() {
        let busy = || Wrapper(std::io::Error::from_raw_os_error(libc::EBUSY));
        assert!(is_busy(&busy()));
        assert!(is_busy(&Wrapper(std::io::Error::from_raw_os_error(
            libc::EEXIST
        ))));
        assert!(!is_busy(&Wrapper(std::io::Error::from_raw_os_error(
            libc::EPERM
        ))));

        let mut calls = 0;
        let r: Result<(), Wrapper> = retry_busy("test", || {
            calls += 1;
            if calls < 3 {
                Err(busy())
            } else {
                Ok(())
            }
        });
        assert!(r.is_ok());
        assert_eq!(calls, 3, "retried until it worked");

        let mut calls = 0;
        let r: Result<(), Wrapper> = retry_busy("test", || {
            calls += 1;
            Err(Wrapper(std::io::Error::from_raw_os_error(libc::EPERM)))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1, "other errors are not retried");
    }
}
