# Evaluates nix/module.nix the way NixOS does, through nixpkgs' real `lib`
# and its systemd unit code, without the rest of nixpkgs: the evaluation
# tests/module.rs runs (Debian's Nix 2.8, no nixpkgs checkout needed).
#
#   nix-instantiate --eval --strict --json nix/eval/module.nix \
#     --arg nixpkgs /path/to/nixpkgs-subset --arg configuration '{ ... }'
#
# `nixpkgs` holds nixpkgs' `lib/` and `nixos/lib/` (systemd-lib.nix,
# systemd-types.nix, systemd-unit-options.nix, utils.nix): see the
# nixpkgs-eval archive's README. What NixOS's own modules would declare and
# the module sets (systemd.services and .sockets with NixOS's unit types,
# networking.firewall, assertions) is declared here as NixOS declares it;
# packages are stand-ins with store-like paths, since nothing is built.
#
# The result: the unit files as NixOS would write them (`units`, by file
# name), the messages of the assertions that fail (`failed`), the
# firewall's TCP ports (`firewall`) and UDP ports (`firewallUdp`), the
# rendered settings of each app, and what it asks of security.acme.
{ nixpkgs, configuration }:
let
  nixos = import ./nixos.nix { inherit nixpkgs; };
  inherit (nixos) lib;
  evaluated = nixos.eval [
    ../module.nix
    configuration
  ];
  inherit (evaluated) config;
in
{
  inherit (evaluated) units failed;
  firewall = config.networking.firewall.allowedTCPPorts;
  firewallUdp = config.networking.firewall.allowedUDPPorts;
  settings = lib.mapAttrs (_: app: app.settings) config.services.handoff.apps;
  listen = lib.mapAttrs (_: app: app.listen) config.services.handoff.apps;
  acme = config.security.acme.certs;
}
