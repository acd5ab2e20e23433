//! The Rust version the workspace says it needs (`rust-version`, and the
//! README's "1.89 or newer") holds for what `Cargo.lock` locks: no locked
//! package may need a newer Rust. No older toolchain can be installed here
//! to try; the packages' own `rust-version` fields are what cargo checks.

use std::process::Command;

/// major.minor.patch, a missing part 0 ("1.89" is "1.89.0").
fn version(v: &str) -> [u64; 3] {
    let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
    [(); 3].map(|()| parts.next().unwrap_or(0))
}

#[test]
fn no_locked_package_needs_a_newer_rust_than_the_workspace_says() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = env!("CARGO_PKG_RUST_VERSION");
    assert!(!ours.is_empty(), "Cargo.toml has no rust-version");
    let mut newer: Vec<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(ours))
                .then(|| format!("{} {} needs {needs}", p["name"], p["version"]))
        })
        .collect();
    newer.sort();
    assert!(
        newer.is_empty(),
        "the workspace says Rust {ours}, but Cargo.lock has: {newer:?} (resolve MSRV-aware: \
         cargo update -p NAME --precise VERSION)"
    );
    // Every member says it too, so that `cargo update` resolves for it.
    for member in metadata["workspace_members"].as_array().unwrap() {
        let id = member.as_str().unwrap();
        let package = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap();
        assert_eq!(package["rust_version"], ours, "{}", package["name"]);
    }
}
