//! nixpkgs' `lib` and NixOS's systemd unit code, what nix/eval/ evaluates
//! the NixOS module with (tests/module.rs, tests/nixos.rs): the subset
//! archive at `$HANDOFF_NIXPKGS_SUBSET`, else `../shared/nixpkgs-eval/`
//! beside the checkout or in `/work/shared/nixpkgs-eval/`, unpacked once per
//! test binary; else a whole nixpkgs where Nix finds one (`<nixpkgs>` on
//! `NIX_PATH`, as a NixOS machine or a channel has it), which has the same
//! files and all of NixOS besides.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::podman;

const ARCHIVE: &str = "nixpkgs-eval/nixpkgs-subset.tar.gz";

/// The unpacked subset; None (and `test` recorded as skipped) where there
/// is no archive, as in `nix flake check`'s sandbox. CI has it and fails on
/// any skip.
pub fn nixpkgs(test: &str) -> Option<&'static Path> {
    static DIR: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    let found = DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let tried: Vec<PathBuf> = std::env::var_os("HANDOFF_NIXPKGS_SUBSET")
            .map(PathBuf::from)
            .into_iter()
            .chain([
                root.join("../shared").join(ARCHIVE),
                Path::new("/work/shared").join(ARCHIVE),
            ])
            .collect();
        let Some(archive) = tried.iter().find(|p| p.is_file()) else {
            return whole_nixpkgs().map(|path| (tempfile::tempdir().unwrap(), path));
        };
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(dir.path())
            .status()
            .expect("tar");
        assert!(status.success(), "cannot unpack {archive:?}");
        let nixpkgs = dir.path().join("nixpkgs");
        Some((dir, nixpkgs))
    });
    match found {
        Some((_, path)) => Some(path),
        None => {
            podman::record_skip(
                test,
                "no nixpkgs: no subset archive (HANDOFF_NIXPKGS_SUBSET, ../shared/nixpkgs-eval/nixpkgs-subset.tar.gz) and no <nixpkgs> on NIX_PATH",
            );
            None
        }
    }
}

/// A whole nixpkgs on `NIX_PATH` (`nix-instantiate --find-file nixpkgs`),
/// if it has the files the evaluation reads.
fn whole_nixpkgs() -> Option<PathBuf> {
    let out = Command::new("nix-instantiate")
        .args(["--find-file", "nixpkgs"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success()
        && path.join("lib/default.nix").is_file()
        && path.join("nixos/lib/systemd-lib.nix").is_file())
    .then_some(path)
}
