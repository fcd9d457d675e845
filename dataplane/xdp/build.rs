//! Compiles the C XDP programs in `ebpf/` with clang into `OUT_DIR`, where `src/lib.rs`
//! embeds them, so the daemon ships as one binary.

use std::path::PathBuf;
use std::process::Command;

const PROGRAMS: &[&str] = &["guest", "guest_fast", "fabric", "fabric_fast"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ebpf = manifest.join("../../ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    println!("cargo:rerun-if-env-changed=CLANG");
    for header in ["xvpc_xdp.h", "fabric_steer.h"] {
        println!("cargo:rerun-if-changed={}", ebpf.join(header).display());
    }

    // Debian keeps asm/types.h under the multiarch directory, which `-target bpf` does not
    // search by itself.
    let host = std::env::var("HOST").unwrap_or_default();
    let arch = host.split('-').next().unwrap_or("x86_64");
    let multiarch = format!("/usr/include/{arch}-linux-gnu");

    for p in PROGRAMS {
        let src = ebpf.join(format!("{p}.bpf.c"));
        let obj = out.join(format!("{p}.bpf.o"));
        println!("cargo:rerun-if-changed={}", src.display());
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg(format!("-I{multiarch}"))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj);
        let output = match cmd.output() {
            Ok(o) => o,
            Err(e) => panic!(
                "xvpc-xdp: cannot run `{clang}` ({e}). The XDP programs are C built with \
                 clang: install it (Debian: apt-get install -y clang llvm libbpf-dev) or set \
                 CLANG=/path/to/clang"
            ),
        };
        if !output.status.success() {
            panic!(
                "xvpc-xdp: clang failed to compile {} ({}):\n{}\nNeeds libbpf-dev for \
                 bpf/bpf_helpers.h and linux headers for {multiarch}/asm/types.h",
                src.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
