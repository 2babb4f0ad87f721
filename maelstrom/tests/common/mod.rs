//! Shared by the runner's integration tests: finding (and building, when stale) the root
//! crate's node binaries.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// A node binary of the root crate (`echo`, `unique-ids`, `broadcast`, …, `kafka`).
pub fn node_bin(name: &str) -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(node_bin_dir) {
        Ok(dir) => dir.join(name),
        Err(e) => panic!("{e}"),
    }
}

const NODE_BINS: [&str; 8] = [
    "echo",
    "unique-ids",
    "broadcast",
    "g-set",
    "g-counter",
    "pn-counter",
    "kafka",
    "txn-rw-register",
];

/// Where the root crate's binaries are: `target/<profile>/`, i.e. the parent of the `deps/`
/// folder holding this test executable. Builds them when missing or stale.
fn node_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("MURMUR_TEST_E2E_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return match NODE_BINS.iter().find(|b| !dir.join(b).is_file()) {
            None => Ok(dir),
            Some(b) => Err(format!(
                "MURMUR_TEST_E2E_BIN_DIR={}: no `{b}` binary there",
                dir.display()
            )),
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the test binary: {e}"))?;
    let profile_dir = exe
        .parent()
        .filter(|d| d.ends_with("deps"))
        .and_then(Path::parent)
        .ok_or_else(|| {
            format!(
                "the test binary {} is not in target/<profile>/deps/; set MURMUR_TEST_E2E_BIN_DIR to \
                 the folder holding the echo, unique-ids and broadcast binaries",
                exe.display()
            )
        })?
        .to_path_buf();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runner crate sits inside the workspace")
        .to_path_buf();
    let sources_changed = newest_mtime(&[
        workspace.join("src"),
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
    ]);
    let fresh = |b: &&str| {
        std::fs::metadata(profile_dir.join(b))
            .and_then(|m| m.modified())
            .is_ok_and(|built| match sources_changed {
                Some(src) => built >= src,
                None => true,
            })
    };
    if NODE_BINS.iter().all(fresh) {
        return Ok(profile_dir);
    }
    build_node_bins(&workspace, &profile_dir)?;
    match NODE_BINS.iter().find(|b| !profile_dir.join(b).is_file()) {
        None => Ok(profile_dir),
        Some(b) => Err(format!(
            "`cargo build -p murmur --bins` succeeded but {} does not exist",
            profile_dir.join(b).display()
        )),
    }
}

/// `cargo build -p murmur --bins` into the target directory this test was built in, with the
/// same profile (and target triple, if any).
fn build_node_bins(workspace: &Path, profile_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .unwrap_or("debug");
    let mut target_dir = profile_dir.parent().unwrap_or(profile_dir).to_path_buf();
    let mut cmd = std::process::Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", "murmur", "--bins"]);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    // target/<triple>/<profile>: Cargo marks the target directory itself with CACHEDIR.TAG.
    if !target_dir.join("CACHEDIR.TAG").exists() {
        if let (Some(triple), Some(root)) = (
            target_dir.file_name().map(|t| t.to_owned()),
            target_dir
                .parent()
                .filter(|r| r.join("CACHEDIR.TAG").exists()),
        ) {
            cmd.arg("--target").arg(triple);
            target_dir = root.to_path_buf();
        }
    }
    cmd.arg("--target-dir").arg(&target_dir);
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run {shown} to build the node binaries: {e} (is `cargo` on PATH? or set \
             MURMUR_TEST_E2E_BIN_DIR)"
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "building the node binaries failed ({}): {shown}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The newest modification time of any file under `paths`.
fn newest_mtime(paths: &[PathBuf]) -> Option<SystemTime> {
    fn walk(p: &Path, newest: &mut Option<SystemTime>) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(t) = meta.modified() {
            *newest = Some(newest.map_or(t, |n| n.max(t)));
        }
    }
    let mut newest = None;
    for p in paths {
        walk(p, &mut newest);
    }
    newest
}
