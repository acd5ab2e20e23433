# `nix flake check`: the cargo checks on the package's source, and every VM
# test in nix/tests/ (picked up by file name, Linux only).
{
  self,
  lib,
  pkgs,
  handoff,
}:
let
  cargoCheck =
    name: command:
    handoff.overrideAttrs (old: {
      pname = "handoff-${name}";
      nativeBuildInputs = old.nativeBuildInputs ++ [
        pkgs.clippy
        pkgs.rustfmt
      ];
      buildPhase = ''
        runHook preBuild
        ${command}
        runHook postBuild
      '';
      # The container suite needs podman; the VM tests cover it.
      HANDOFF_SKIP_CONTAINER_TESTS = "1";
      doCheck = false;
      installPhase = "touch $out";
    });

  vmTests = lib.mapAttrs' (
    file: _: lib.nameValuePair "vm-${lib.removeSuffix ".nix" file}" (import ./tests/${file} { inherit pkgs self; })
  ) (lib.filterAttrs (file: type: type == "regular" && lib.hasSuffix ".nix" file) (builtins.readDir ./tests));
in
{
  clippy = cargoCheck "clippy" "cargo clippy --workspace --all-targets --offline -- -D warnings";
  fmt = cargoCheck "fmt" "cargo fmt --all --check";
  cargo-test = cargoCheck "test" ''
    export PATH=${pkgs.systemd}/bin:$PATH
    # tests/live.rs's WebSocket and server-sent-events clients.
    export HANDOFF_PYTHON=${
      pkgs.python3.withPackages (ps: [
        ps.websockets
        ps.requests
      ])
    }/bin/python3
    cargo test --workspace --offline
  '';
  # Lints the Nix code. statix is not on crates.io, so CI on Debian cannot run
  # it; deadnix runs in both places.
  nix-lint = pkgs.runCommand "handoff-nix-lint" { nativeBuildInputs = [ pkgs.statix pkgs.deadnix ]; } ''
    cd ${self}
    statix check .
    deadnix --fail .
    touch $out
  '';
}
// lib.optionalAttrs pkgs.stdenv.isLinux vmTests
