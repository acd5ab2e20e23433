# handoff, built with nixpkgs' own Rust builder (what a nixpkgs package
# needs; no extra flake input). `loadgen` is the load generator the VM tests
# drive, from the same workspace.
{
  lib,
  rustPlatform,
  buildId ? null,
}:
let
  cargoToml = lib.importTOML ../Cargo.toml;
  fs = lib.fileset;
  # Only what cargo reads: a README or Nix change does not rebuild.
  src = fs.toSource {
    root = ../.;
    fileset = fs.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      # Workspace members: cargo reads every member's manifest.
      ../benches/loadgen
      ../benches/restart-bench
      ../containers
    ];
  };
  common = {
    inherit src;
    inherit (cargoToml.package) version;
    cargoLock.lockFile = ../Cargo.lock;
    strictDeps = true;
  };
in
{
  handoff = rustPlatform.buildRustPackage (
    common
    // {
      pname = "handoff";
      cargoBuildFlags = [
        "--package"
        "handoff"
      ];
      # Reported by /version and `/`; a different value makes a different
      # build, which the switch VM test tells apart.
      HANDOFF_BUILD_ID = if buildId == null then "nix" else buildId;
      # The suite runs as checks.cargo-test (with the container tests left to
      # the VM tests), not on every package build.
      doCheck = false;
      meta = {
        inherit (cargoToml.package) description;
        homepage = cargoToml.package.repository;
        license = with lib.licenses; [
          mit
          asl20
        ];
        mainProgram = "handoff";
        platforms = lib.platforms.linux;
      };
    }
  );

  loadgen = rustPlatform.buildRustPackage (
    common
    // {
      pname = "handoff-loadgen";
      cargoBuildFlags = [
        "--package"
        "loadgen"
      ];
      doCheck = false;
      meta = {
        description = "HTTP/1.1 load that records every request's outcome (handoff's tests)";
        mainProgram = "loadgen";
        platforms = lib.platforms.linux;
      };
    }
  );
}
