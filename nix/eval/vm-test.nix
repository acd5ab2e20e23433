# Evaluates the nodes of one VM test in nix/tests/ the way NixOS would, with
# nixpkgs' real `lib` and systemd unit code (see ./nixos.nix), for
# tests/nixos/, which boots each node as a systemd container:
#
#   nix-instantiate --eval --strict --json nix/eval/vm-test.nix \
#     --arg nixpkgs /path/to/nixpkgs-subset --argstr file reload.nix
#
# For each node: its unit files, the handoff apps (package and configuration
# file, with the settings to write into it), the packages it installs, its
# HAProxy (a stand-in for NixOS's module), and each specialisation rendered
# the same way (the node's configuration extended with the specialisation's,
# as NixOS's inheritParentConfig does). Packages are stand-ins whose store
# paths say what the harness puts there: `handoffBuild` names a build of
# the handoff binary (HANDOFF_BUILD_ID), `script` a writeShellScriptBin.
# Each node's system holds its own host name and address (`network`).
{ nixpkgs, file }:
let
  system = "x86_64-linux";
  store = hash: name: "/nix/store/${hash}-${name}";
  zeros = "00000000000000000000000000000000";
  hashOf = text: builtins.substring 0 32 (builtins.hashString "sha256" text);
  fake = name: attrs: {
    type = "derivation";
    inherit name;
    outPath = store zeros name;
    meta.mainProgram = name;
  } // attrs;

  nixos = import ./nixos.nix {
    inherit nixpkgs;
    storeHash = hashOf;
    extraPkgs = {
      stdenv.hostPlatform = { inherit system; };
      testers.runNixOSTest = test: test;
      handoff = fake "handoff" { handoffBuild = "nix"; };
      curl = fake "curl" { };
      iproute2 = fake "iproute2" { };
      openssl = fake "openssl" { };
      # nix/package.nix: `handoff` built with another HANDOFF_BUILD_ID.
      callPackage = _: args: {
        handoff = fake "handoff-${args.buildId}" {
          handoffBuild = args.buildId;
          meta.mainProgram = "handoff";
        };
      };
      writeShellScriptBin = name: text: {
        type = "derivation";
        inherit name;
        outPath = store (hashOf text) name;
        meta.mainProgram = name;
        script = text;
      };
    };
  };
  inherit (nixos) lib pkgs;

  self = {
    packages.${system} = {
      inherit (pkgs) handoff;
      loadgen = fake "loadgen" { };
      inherit (pkgs) hello;
      container = fake "container" { };
    };
    nixosModules.default = ../module.nix;
  };

  test = import (../tests + "/${file}") { inherit pkgs self; };

  package = p: {
    path = p.outPath;
    inherit (p) name;
    executable = lib.getExe p;
    build = p.handoffBuild or null;
    inherit ({ script = null; } // p) script;
  };

  render =
    modules:
    let
      evaluated = nixos.eval modules;
      inherit (evaluated) config;
    in
    {
      inherit (evaluated) units failed;
      apps = lib.mapAttrs (name: app: {
        package = package app.package;
        config = {
          path = (pkgs.formats.toml { }).generate "${name}.toml" app.settings;
          inherit (app) settings;
        };
      }) (config.services.handoff.apps or { });
      packages = map package config.environment.systemPackages;
      groups = lib.attrNames config.users.groups;
      inherit (config.services) haproxy;
      network = {
        inherit (config.networking) hostName extraHosts;
        address = config.networking.primaryIPAddress;
      };
      specialisations = lib.mapAttrs (
        _: spec:
        render (
          modules
          ++ [
            spec.configuration
            { specialisation = lib.mkForce { }; }
          ]
        )
      ) config.specialisation;
    };

  # What nixos/lib/testing/network.nix builds into each node's own system:
  # its number (its name's place among the sorted names, from 1), its host
  # name, its address on vlan 1, and every node's address in /etc/hosts. A
  # node switched to another node's system takes that node's name and
  # address with it, as it would in a VM.
  numbers = lib.listToAttrs (lib.imap1 (i: name: lib.nameValuePair name i) (lib.attrNames test.nodes));
  addressOf = name: "192.168.1.${toString numbers.${name}}";
  network = name: {
    networking = {
      hostName = lib.mkDefault name;
      primaryIPAddress = addressOf name;
      extraHosts = lib.concatMapStrings (other: "${addressOf other} ${other}\n") (lib.attrNames test.nodes);
    };
  };
in
lib.mapAttrs (
  name: node:
  render [
    node
    (network name)
  ]
) test.nodes
