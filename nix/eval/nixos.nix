# The part of a NixOS evaluation that handoff's module touches, built from
# nixpkgs' real `lib` and its systemd unit code (the nixpkgs-eval subset),
# without the rest of nixpkgs: what nix/eval/module.nix and
# nix/eval/vm-test.nix share.
#
#   (import ./nixos.nix { inherit nixpkgs; }).eval modules
#
# gives the evaluated `config` and the unit files as NixOS would write them
# (`units`, by file name). What NixOS's own modules declare and handoff's
# module sets is declared here as NixOS declares it; options of NixOS modules
# the VM tests' nodes set but nothing here renders (virtualisation,
# environment.systemPackages, services.haproxy) are freeform stand-ins, read
# by nix/eval/vm-test.nix.
#
# Packages are stand-ins with store-like paths, since nothing is built:
# `extraPkgs` adds to them, and `storeHash` names the files that
# pkgs.formats.toml and pkgs.writeText would write (a fixed hash by default;
# nix/eval/vm-test.nix hashes the content, so that two configurations name
# two files, as in a real store).
{
  nixpkgs,
  extraPkgs ? { },
  storeHash ? _: "00000000000000000000000000000000",
}:
let
  lib = import (nixpkgs + "/lib");

  # A package that cannot be built: a name, a store path, a main program.
  fakePackage =
    name:
    {
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
    formats.toml = _: {
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
      generate = name: value: "/nix/store/${storeHash (builtins.toJSON value)}-${name}";
    };
    writeText = name: text: "/nix/store/${storeHash text}-${name}";
  }
  // lib.genAttrs [
    "coreutils"
    "findutils"
    "gnugrep"
    "gnused"
    "systemd"
  ] fakePackage
  // extraPkgs;

  freeform = lib.mkOption {
    type = lib.types.attrsOf lib.types.anything;
    default = { };
  };

  nixosOptions =
    { utils, config, ... }:
    let
      evaluatedConfig = config;
    in
    {
      config.assertions = lib.concatLists (
        lib.mapAttrsToList (name: cert: [
          {
            assertion =
              lib.length (
                lib.filter (x: x != null) [
                  cert.dnsProvider
                  cert.webroot
                  cert.listenHTTP
                  cert.s3Bucket
                ]
              ) == 1;
            message = "(the ACME module's) Exactly one of the options `security.acme.certs.${name}.dnsProvider`, `security.acme.certs.${name}.webroot`, `security.acme.certs.${name}.listenHTTP` and `security.acme.certs.${name}.s3Bucket` is required.";
          }
        ]) config.security.acme.certs
      );
      options = {
        assertions = lib.mkOption {
          type = lib.types.listOf lib.types.unspecified;
          default = [ ];
        };
        warnings = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = [ ];
        };
        networking = {
          firewall.allowedTCPPorts = lib.mkOption {
            type = lib.types.listOf lib.types.port;
            default = [ ];
          };
          firewall.allowedUDPPorts = lib.mkOption {
            type = lib.types.listOf lib.types.port;
            default = [ ];
          };
          # What nixos/lib/testing/network.nix sets in each VM test node's
          # own system (nix/eval/vm-test.nix): its name, its address, the
          # other nodes' addresses in /etc/hosts.
          hostName = lib.mkOption {
            type = lib.types.str;
            default = "nixos";
          };
          primaryIPAddress = lib.mkOption {
            type = lib.types.str;
            default = "";
          };
          extraHosts = lib.mkOption {
            type = lib.types.lines;
            default = "";
          };
        };
        systemd = {
          services = lib.mkOption {
            type = utils.systemdUtils.types.services;
            default = { };
          };
          sockets = lib.mkOption {
            type = utils.systemdUtils.types.sockets;
            default = { };
          };
          globalEnvironment = lib.mkOption {
            type = lib.types.attrs;
            default = { };
          };
          # The PATH every service gets (nixos/modules/system/boot/systemd.nix).
          defaultPath = lib.mkOption {
            type = lib.types.listOf lib.types.package;
            default = with pkgs; [
              coreutils
              findutils
              gnugrep
              gnused
              systemd
            ];
          };
          package = lib.mkOption {
            type = lib.types.package;
            default = pkgs.systemd;
          };
        };

        # Stand-ins: set by the VM tests' nodes, rendered by nothing here.
        environment.systemPackages = lib.mkOption {
          type = lib.types.listOf lib.types.package;
          default = [ ];
        };
        # As nixos/modules/security/acme (default.nix, inheritableModule):
        # the options the module sets or reads. A certificate's `group` and
        # `reloadServices` default to security.acme.defaults' unless it sets
        # inheritDefaults = false; a definition replaces that default. Each
        # certificate needs exactly one way to answer the CA's challenge
        # (the module's own assertion, below).
        security.acme =
          let
            inheritable =
              isDefaults:
              { config, ... }:
              let
                inherited =
                  name: default:
                  if isDefaults || !config.inheritDefaults then default else acme.defaults.${name};
              in
              {
                options = {
                  group = lib.mkOption {
                    type = lib.types.str;
                    default = inherited "group" "acme";
                  };
                  reloadServices = lib.mkOption {
                    type = lib.types.listOf lib.types.str;
                    default = inherited "reloadServices" [ ];
                  };
                  webroot = lib.mkOption {
                    type = lib.types.nullOr lib.types.str;
                    default = inherited "webroot" null;
                  };
                  dnsProvider = lib.mkOption {
                    type = lib.types.nullOr lib.types.str;
                    default = inherited "dnsProvider" null;
                  };
                  listenHTTP = lib.mkOption {
                    type = lib.types.nullOr lib.types.str;
                    default = inherited "listenHTTP" null;
                  };
                }
                // lib.optionalAttrs (!isDefaults) {
                  inheritDefaults = lib.mkOption {
                    type = lib.types.bool;
                    default = true;
                  };
                  s3Bucket = lib.mkOption {
                    type = lib.types.nullOr lib.types.str;
                    default = null;
                  };
                };
              };
            inherit (evaluatedConfig.security) acme;
          in
          {
            defaults = lib.mkOption {
              type = lib.types.submodule (inheritable true);
              default = { };
            };
            certs = lib.mkOption {
              type = lib.types.attrsOf (lib.types.submodule (inheritable false));
              default = { };
            };
          };
        # As nixos/modules/config/users-groups.nix: the groups to create
        # (the harness makes them with systemd-sysusers).
        users.groups = lib.mkOption {
          type = lib.types.attrsOf (
            lib.types.submodule {
              freeformType = lib.types.attrsOf lib.types.anything;
            }
          );
          default = { };
        };
        virtualisation = freeform;
        services.haproxy = freeform;
        # As nixos/modules/system/activation/specialisation.nix: each is the
        # node's configuration extended with `configuration`
        # (inheritParentConfig); nix/eval/vm-test.nix evaluates them.
        specialisation = lib.mkOption {
          type = lib.types.attrsOf (
            lib.types.submodule {
              options.configuration = lib.mkOption {
                type = lib.types.deferredModule;
                default = { };
              };
            }
          );
          default = { };
        };
      };
    };

  eval =
    modules:
    let
      evaluated = lib.evalModules {
        modules = [ nixosOptions ] ++ modules;
        specialArgs = { inherit pkgs utils; };
      };
      utils = import (nixpkgs + "/nixos/lib/utils.nix") {
        inherit lib pkgs;
        inherit (evaluated) config;
      };
      systemdLib = utils.systemdUtils.lib;
      inherit (evaluated) config;
    in
    {
      inherit config;
      # As nixos/modules/system/boot/systemd.nix names and renders them.
      units =
        lib.mapAttrs' (
          n: v: lib.nameValuePair "${n}.service" (systemdLib.serviceToUnit (v // { name = "${n}.service"; })).text
        ) config.systemd.services
        // lib.mapAttrs' (
          n: v: lib.nameValuePair "${n}.socket" (systemdLib.socketToUnit (v // { name = "${n}.socket"; })).text
        ) config.systemd.sockets;
      failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
    };
in
{
  inherit lib pkgs eval;
}
