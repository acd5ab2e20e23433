# The two sources the flake builds from, as lib.fileset values (the sandbox
# twin, tests/sandbox/, evaluates the same values with nixpkgs' lib):
#
# - `build`: only what cargo reads to build, so that a README or Nix change
#   does not rebuild the package;
# - `test`: what the cargo tests read besides (the VM test files and their
#   harness input, the CI scripts they render, the README and benchmark
#   figures), for checks.cargo-test.
{ lib }:
let
  fs = lib.fileset;
  build = fs.unions [
    ../Cargo.toml
    ../Cargo.lock
    ../src
    ../examples
    ../tests
    # Workspace members: cargo reads every member's manifest.
    ../benches/loadgen
    ../benches/restart-bench
    ../benches/cost-bench
    ../containers
  ];
in
{
  root = ../.;
  inherit build;
  test = fs.unions [
    build
    ../benches
    ../nix
    ../.ci
    ../flake.nix
    ../README.md
  ];
}
