//! Compiles the benchmark XDP programs in `ebpf/bench/` with clang into `OUT_DIR`, where
//! `src/bpf.rs` embeds them with `include_bytes!`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let src_dir = manifest.join("../../ebpf/bench");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!(
        "cargo:rerun-if-changed={}",
        src_dir.join("bench.h").display()
    );
    for prog in ["gen", "sink", "redirect"] {
        let src = src_dir.join(format!("{prog}.bpf.c"));
        let obj = out_dir.join(format!("{prog}.bpf.o"));
        println!("cargo:rerun-if-changed={}", src.display());
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {clang} to build {}: {e} (install clang, llvm and libbpf-dev)",
                    src.display()
                )
            });
        assert!(
            status.success(),
            "{clang} failed on {} ({status})",
            src.display()
        );
    }
}
