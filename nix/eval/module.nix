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
# firewall's TCP ports, and the rendered settings of each app.
{ nixpkgs, configuration }:
let
  lib = import (nixpkgs + "/lib");

  # A package that cannot be built: a name, a store path, a main program.
  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };

  pkgs = {
    handoff = fakePackage "handoff";
    hello = fakePackage "hello";
    # As pkgs.formats.toml's type (pkgs/pkgs-lib/formats.nix); `generate`
    # names a file it does not write (the result has the settings).
    formats.toml =
      { }:
      {
        type =
          let
            valueType =
              with lib.types;
              nullOr (oneOf [
                bool
                int
                float
                str
                path
                (attrsOf valueType)
                (listOf valueType)
              ])
              // {
                description = "TOML value";
              };
          in
          valueType;
        generate = name: _value: "/nix/store/00000000000000000000000000000000-${name}";
      };
    writeText = name: _text: "/nix/store/00000000000000000000000000000000-${name}";
  }
  // lib.genAttrs [
    "coreutils"
    "findutils"
    "gnugrep"
    "gnused"
    "systemd"
  ] fakePackage;

  utils = import (nixpkgs + "/nixos/lib/utils.nix") {
    inherit lib pkgs;
    inherit (evaluated) config;
  };
  systemdLib = utils.systemdUtils.lib;

  # The options of NixOS's modules that nix/module.nix sets, declared as
  # NixOS declares them.
  nixosOptions = {
    options = {
      assertions = lib.mkOption {
        type = lib.types.listOf lib.types.unspecified;
        default = [ ];
      };
      warnings = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
      };
      networking.firewall.allowedTCPPorts = lib.mkOption {
        type = lib.types.listOf lib.types.port;
        default = [ ];
      };
      systemd.services = lib.mkOption {
        type = utils.systemdUtils.types.services;
        default = { };
      };
      systemd.sockets = lib.mkOption {
        type = utils.systemdUtils.types.sockets;
        default = { };
      };
      systemd.globalEnvironment = lib.mkOption {
        type = lib.types.attrs;
        default = { };
      };
      # The PATH every service gets (nixos/modules/system/boot/systemd.nix).
      systemd.defaultPath = lib.mkOption {
        type = lib.types.listOf lib.types.package;
        default = with pkgs; [
          coreutils
          findutils
          gnugrep
          gnused
          systemd
        ];
      };
      systemd.package = lib.mkOption {
        type = lib.types.package;
        default = pkgs.systemd;
      };
    };
  };

  evaluated = lib.evalModules {
    modules = [
      nixosOptions
      ../module.nix
      configuration
    ];
    specialArgs = { inherit pkgs utils; };
  };
  inherit (evaluated) config;

  # As nixos/modules/system/boot/systemd.nix names and renders them.
  units =
    lib.mapAttrs' (
      n: v: lib.nameValuePair "${n}.service" (systemdLib.serviceToUnit (v // { name = "${n}.service"; })).text
    ) config.systemd.services
    // lib.mapAttrs' (
      n: v: lib.nameValuePair "${n}.socket" (systemdLib.socketToUnit (v // { name = "${n}.socket"; })).text
    ) config.systemd.sockets;
in
{
  inherit units;
  failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  firewall = config.networking.firewall.allowedTCPPorts;
  settings = lib.mapAttrs (_: app: app.settings) config.services.handoff.apps;
  listen = lib.mapAttrs (_: app: app.listen) config.services.handoff.apps;
}
