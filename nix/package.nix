# handoff, built with nixpkgs' own Rust builder (what a nixpkgs package
# needs; no extra flake input). `hello` is examples/hello, a service built on
# the library alone (the VM tests run it beside handoff); `loadgen` is the
# load generator the VM tests drive, from the same workspace.
{
  lib,
  rustPlatform,
  buildId ? null,
}:
let
  cargoToml = lib.importTOML ../Cargo.toml;
  source = import ./source.nix { inherit lib; };
  # Only what cargo reads: a README or Nix change does not rebuild.
  src = lib.fileset.toSource {
    inherit (source) root;
    fileset = source.build;
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
      # The crate is actix-handoff (crates.io); its binary and units keep
      # the name handoff.
      cargoBuildFlags = [
        "--package"
        "actix-handoff"
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

  hello = rustPlatform.buildRustPackage (
    common
    // {
      pname = "handoff-hello";
      cargoBuildFlags = [
        "--package"
        "actix-handoff"
        "--example"
        "hello"
      ];
      doCheck = false;
      # cargo's install hook copies only binaries at the top of the release
      # folder; examples sit in its examples/ subfolder.
      postInstall = ''
        hello=$(find target -path '*/release*/examples/hello' -type f -executable | head -n 1)
        install -Dm755 "$hello" "$out/bin/hello"
      '';
      meta = {
        description = "examples/hello: a complete handoff service in under 40 lines";
        mainProgram = "hello";
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
