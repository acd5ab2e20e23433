# `nix develop`: the toolchain, the test suite's tools, and the Nix linters.
{ pkgs }:
pkgs.mkShell {
  packages = [
    pkgs.cargo
    pkgs.rustc
    pkgs.clippy
    pkgs.rustfmt
    pkgs.rust-analyzer
    pkgs.systemd
    pkgs.podman
    pkgs.debootstrap
    pkgs.statix
    pkgs.deadnix
    pkgs.nixfmt
  ];
}
