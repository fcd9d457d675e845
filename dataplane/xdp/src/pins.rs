//! Pins in bpffs: what keeps the XDP programs attached while no daemon runs.
//!
//! One directory per interface, `<pin_dir>/<ifname>/`:
//!
//! | pin | what |
//! | --- | --- |
//! | `link` | the XDP bpf_link: as long as it is pinned, the program stays attached |
//! | `<program>-<mode>-<version>` | the program the link runs; its name records mode and version (bpffs refuses dots in names) |
//! | `xsks_map` | the XSKMAP: empty while no dataplane runs (its sockets close with it) |
//! | `counters` | the per-CPU counters: what was dropped while no dataplane ran survives |

use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, PerCpuArray, XskMap};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::Xdp;

use crate::{AttachMode, XdpError};

/// `BPF_FS_MAGIC` from `include/uapi/linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where bpffs is conventionally mounted (by systemd, Cilium, libxdp).
const BPFFS_MOUNT: &str = "/sys/fs/bpf";

/// The root of xvpc's pins, on a mounted bpffs.
#[derive(Clone, Debug)]
pub struct PinDir {
    root: PathBuf,
    private: bool,
}

impl PinDir {
    /// Makes sure `root` is a directory on bpffs: creates it, mounting bpffs first if the
    /// path is not on one (at `/sys/fs/bpf` for paths below it, else at `root` itself). A
    /// bpffs that cannot be mounted is an error: without pins a crash would open the guest
    /// port.
    pub fn prepare(root: &Path) -> Result<PinDir, XdpError> {
        let err = |path: &Path, reason: String| XdpError::BpfFs {
            path: path.to_path_buf(),
            reason,
        };
        if !root.is_absolute() {
            return Err(err(
                root,
                "the pin directory must be an absolute path".into(),
            ));
        }
        let mut private = false;
        if !on_bpffs(root) {
            let mount_point = if root.starts_with(BPFFS_MOUNT) {
                PathBuf::from(BPFFS_MOUNT)
            } else {
                root.to_path_buf()
            };
            std::fs::create_dir_all(&mount_point)
                .map_err(|e| err(&mount_point, format!("cannot create the mount point: {e}")))?;
            nix::mount::mount(
                Some("bpf"),
                &mount_point,
                Some("bpf"),
                nix::mount::MsFlags::MS_NOSUID
                    | nix::mount::MsFlags::MS_NODEV
                    | nix::mount::MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|e| err(&mount_point, format!("mount -t bpf failed: {e}")))?;
            private = !in_init_mount_namespace();
            if private {
                tracing::warn!(path = %mount_point.display(),
                    "mounted bpffs in a private mount namespace (ip netns exec?): the pins die \
                     with this process, so a crash detaches the XDP programs. Mount bpffs in \
                     the host's mount namespace and point dataplane.pin_dir into it");
            } else {
                tracing::info!(path = %mount_point.display(), "mounted bpffs");
            }
        }
        std::fs::create_dir_all(root)
            .map_err(|e| err(root, format!("cannot create the pin directory: {e}")))?;
        if !on_bpffs(root) {
            return Err(err(root, "not on bpffs after mounting".into()));
        }
        Ok(PinDir {
            root: root.to_path_buf(),
            private,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when this process mounted the bpffs in a mount namespace of its own: the pins
    /// then vanish with it (see [`PinDir::prepare`]).
    pub fn is_private(&self) -> bool {
        self.private
    }

    pub(crate) fn port(&self, ifname: &str) -> Result<PortPins, XdpError> {
        if ifname.is_empty() || ifname.contains('/') || ifname.starts_with('.') {
            return Err(XdpError::Pin {
                ifname: ifname.to_string(),
                path: self.root.clone(),
                reason: "not a usable interface name for a pin directory".into(),
            });
        }
        let path = self.root.join(ifname);
        std::fs::create_dir_all(&path).map_err(|e| XdpError::Pin {
            ifname: ifname.to_string(),
            path: path.clone(),
            reason: format!("cannot create the directory: {e}"),
        })?;
        Ok(PortPins {
            ifname: ifname.to_string(),
            path,
        })
    }
}

/// Is `path`, or the nearest ancestor that exists, on bpffs?
// `f_type` is i64 on x86_64 but narrower elsewhere: the cast is for those.
#[allow(clippy::unnecessary_cast)]
fn on_bpffs(path: &Path) -> bool {
    path.ancestors()
        .find(|p| p.exists())
        .and_then(|p| nix::sys::statfs::statfs(p).ok())
        .is_some_and(|s| s.filesystem_type().0 as i64 == BPF_FS_MAGIC)
}

/// An error and its sources on one line: aya's errors keep the errno in their source.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn in_init_mount_namespace() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/mnt"),
        std::fs::read_link("/proc/1/ns/mnt"),
    ) {
        (Ok(mine), Ok(init)) => mine == init,
        // PID 1's namespace is hidden from us: assume the worst.
        _ => false,
    }
}

/// The program pin's name parsed: `<program>-<mode>-<version>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProgramPin {
    pub(crate) name: String,
    pub(crate) program: String,
    pub(crate) mode: AttachMode,
    pub(crate) version: String,
}

fn parse_program_pin(name: &str) -> Option<ProgramPin> {
    let mut parts = name.splitn(3, '-');
    let program = parts.next()?;
    let mode = match parts.next()? {
        "driver" => AttachMode::Driver,
        "generic" => AttachMode::Generic,
        _ => return None,
    };
    let version = parts.next()?;
    (program.starts_with("xvpc_") && !version.is_empty()).then(|| ProgramPin {
        name: name.to_string(),
        program: program.to_string(),
        mode,
        version: version.to_string(),
    })
}

/// One interface's pin directory.
pub(crate) struct PortPins {
    ifname: String,
    path: PathBuf,
}

impl PortPins {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn pin_error(&self, pin: &str, reason: String) -> XdpError {
        XdpError::Pin {
            ifname: self.ifname.clone(),
            path: self.path.join(pin),
            reason,
        }
    }

    /// The pinned link, if there is one.
    pub(crate) fn open_link(&self) -> Result<Option<PinnedLink>, XdpError> {
        let path = self.path.join("link");
        if !path.exists() {
            return Ok(None);
        }
        PinnedLink::from_pin(&path)
            .map(Some)
            .map_err(|e| self.pin_error("link", format!("cannot open: {}", chain(&e))))
    }

    /// The program pin (the newest if a crash left two).
    pub(crate) fn program_pin(&self) -> Result<Option<ProgramPin>, XdpError> {
        Ok(self.program_pins()?.into_iter().last())
    }

    fn program_pins(&self) -> Result<Vec<ProgramPin>, XdpError> {
        let entries = std::fs::read_dir(&self.path)
            .map_err(|e| self.pin_error("", format!("cannot list: {e}")))?;
        let mut pins: Vec<(std::time::SystemTime, ProgramPin)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let pin = parse_program_pin(&e.file_name().to_string_lossy())?;
                let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                Some((modified, pin))
            })
            .collect();
        pins.sort_by_key(|p| p.0);
        Ok(pins.into_iter().map(|(_, p)| p).collect())
    }

    /// The pinned maps, for a program reused as it is.
    pub(crate) fn open_maps(
        &self,
    ) -> Result<(XskMap<MapData>, PerCpuArray<MapData, u64>), XdpError> {
        let open = |name: &str| {
            MapData::from_pin(self.path.join(name))
                .map_err(|e| self.pin_error(name, format!("cannot open: {}", chain(&e))))
        };
        let xsks = XskMap::try_from(Map::XskMap(open("xsks_map")?))
            .map_err(|e| self.pin_error("xsks_map", format!("not an XSKMAP: {}", chain(&e))))?;
        let counters = PerCpuArray::try_from(Map::PerCpuArray(open("counters")?)).map_err(|e| {
            self.pin_error("counters", format!("not a per-CPU array: {}", chain(&e)))
        })?;
        Ok((xsks, counters))
    }

    /// One more pinned map, for a program reused as it is.
    pub(crate) fn open_map(&self, name: &str) -> Result<MapData, XdpError> {
        MapData::from_pin(self.path.join(name))
            .map_err(|e| self.pin_error(name, format!("cannot open: {}", chain(&e))))
    }

    /// Pins `prog` as the attached program and removes the pins of older versions.
    pub(crate) fn pin_program(
        &self,
        prog: &mut Xdp,
        program: &str,
        mode: AttachMode,
        version: &str,
    ) -> Result<(), XdpError> {
        let mode_name = match mode {
            AttachMode::Driver => "driver",
            _ => "generic",
        };
        let name = format!("{program}-{mode_name}-{version}");
        let path = self.path.join(&name);
        if !path.exists() {
            prog.pin(&path).map_err(|e| {
                self.pin_error(&name, format!("cannot pin the program: {}", chain(&e)))
            })?;
        }
        for old in self.program_pins()? {
            if old.name != name {
                std::fs::remove_file(self.path.join(&old.name))
                    .map_err(|e| self.pin_error(&old.name, format!("cannot remove: {e}")))?;
            }
        }
        Ok(())
    }

    /// Pins a freshly made link; returns it as an fd.
    pub(crate) fn pin_link(&self, link: FdLink) -> Result<FdLink, XdpError> {
        link.pin(self.path.join("link"))
            .map(FdLink::from)
            .map_err(|e| self.pin_error("link", format!("cannot pin: {}", chain(&e))))
    }

    /// Removes a defunct link's pin.
    pub(crate) fn remove_link(&self) -> Result<(), XdpError> {
        std::fs::remove_file(self.path.join("link"))
            .map_err(|e| self.pin_error("link", format!("cannot remove: {e}")))
    }
}

/// What is pinned for one interface (`xvpc status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedState {
    /// The pin directory.
    pub path: PathBuf,
    /// A link is pinned (the program stays attached without a daemon).
    pub link: bool,
    /// The pinned program's name, mode and version, if any.
    pub program: Option<(String, AttachMode, String)>,
    /// The kernel's id of the program the link runs (compare with `ip link`'s `prog/xdp id`).
    pub link_program_id: Option<u32>,
    /// The pinned counters, summed over CPUs, by index (the program's counter enum in
    /// `ebpf/xvpc_xdp.h`): they keep counting while no daemon runs.
    pub counters: Vec<u64>,
}

/// What is pinned for `ifname` under `root`, or `None` if nothing is. Reads only.
pub fn pinned_state(root: &Path, ifname: &str) -> Result<Option<PinnedState>, XdpError> {
    let path = root.join(ifname);
    if !path.is_dir() {
        return Ok(None);
    }
    let port = PortPins {
        ifname: ifname.to_string(),
        path: path.clone(),
    };
    let link = port.open_link()?.map(FdLink::from);
    let link_program_id = link
        .as_ref()
        .and_then(|l| l.info().ok())
        .map(|i| i.program_id());
    let program = port.program_pin()?.map(|p| (p.program, p.mode, p.version));
    let counters = if path.join("counters").exists() {
        let (_, counters) = port.open_maps()?;
        (0..counters.len())
            .map(|i| {
                counters
                    .get(&i, 0)
                    .map(|v| v.iter().fold(0u64, |a, x| a.wrapping_add(*x)))
                    .map_err(|e| port.pin_error("counters", format!("cannot read: {}", chain(&e))))
            })
            .collect::<Result<Vec<u64>, XdpError>>()?
    } else {
        Vec::new()
    };
    Ok(Some(PinnedState {
        path,
        link: link.is_some(),
        program,
        link_program_id,
        counters,
    }))
}

/// What [`detach_pinned`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detached {
    /// The pins removed (file names).
    pub removed: Vec<String>,
}

/// Removes every pin of `ifname` under `root`, and the directory: once no process holds the
/// link any more (a running daemon does, until it exits), the program is detached and the
/// interface is an ordinary one again. The only thing that opens the guest port.
pub fn detach_pinned(root: &Path, ifname: &str) -> Result<Detached, XdpError> {
    let path = root.join(ifname);
    let mut out = Detached::default();
    if !path.is_dir() {
        return Ok(out);
    }
    let err = |p: &Path, e: std::io::Error| XdpError::Pin {
        ifname: ifname.to_string(),
        path: p.to_path_buf(),
        reason: format!("cannot remove: {e}"),
    };
    // The link first: from then on the interface is open, whatever else fails.
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .map_err(|e| err(&path, e))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| n != "link");
    for name in names {
        let p = path.join(&name);
        std::fs::remove_file(&p).map_err(|e| err(&p, e))?;
        out.removed.push(name);
    }
    std::fs::remove_dir(&path).map_err(|e| err(&path, e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_pin_names_round_trip_and_junk_is_ignored() {
        let p = parse_program_pin("xvpc_guest-driver-0123456789abcdef").expect("parses");
        assert_eq!(p.program, "xvpc_guest");
        assert_eq!(p.mode, AttachMode::Driver);
        assert_eq!(p.version, "0123456789abcdef");
        assert_eq!(
            parse_program_pin("xvpc_fabric-generic-ff").map(|p| p.mode),
            Some(AttachMode::Generic)
        );
        for junk in [
            "link",
            "xsks_map",
            "counters",
            "xvpc_guest-auto-1",
            "other-driver-1",
            "xvpc_guest-driver-",
        ] {
            assert_eq!(parse_program_pin(junk), None, "{junk}");
        }
    }

    #[test]
    fn relative_pin_dirs_are_refused() {
        assert!(matches!(
            PinDir::prepare(Path::new("relative/pins")),
            Err(XdpError::BpfFs { .. })
        ));
    }
}
