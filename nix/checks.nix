# The flake's checks: `quick` (the package, the cargo checks of
# nix/cargo-checks.nix on their sources, the Nix lints, the module evaluated
# into a system) and `vmTests` (every file of nix/tests/, by its name).
{
  self,
  lib,
  pkgs,
}:
let
  source = import ./source.nix { inherit lib; };
  specs = import ./cargo-checks.nix;
  inherit (pkgs.callPackage ./package.nix { }) handoff;

  # A cargo check is the package's build with the spec's script as its
  # build phase, on the spec's source, with the spec's inputs on PATH;
  # tests/sandbox/run.py runs the same script in its twin of the sandbox.
  cargoCheck =
    name: spec:
    handoff.overrideAttrs (
      old:
      {
        pname = "handoff-${name}";
        src = lib.fileset.toSource {
          inherit (source) root;
          fileset = source.${spec.source};
        };
        nativeBuildInputs =
          old.nativeBuildInputs
          ++ map (input: pkgs.${input}) spec.inputs
          ++ lib.optional (spec.python != [ ]) (pkgs.python3.withPackages (ps: map (p: ps.${p}) spec.python));
        buildPhase = ''
          runHook preBuild
          set -- # the script's arguments: none here
          ${spec.script}
          runHook postBuild
        '';
        doCheck = false;
        installPhase = "touch $out";
      }
      // spec.env
    );

  # The reference service as a NixOS system would have it: evaluating the
  # system's derivation runs every NixOS assertion and the module's own.
  # HTTPS and HTTP/3 on, so that NixOS's own socket and firewall options
  # (listenDatagrams, allowedUDPPorts) take what the module gives them.
  system = lib.nixosSystem {
    modules = [
      self.nixosModules.default
      {
        nixpkgs.hostPlatform = pkgs.stdenv.hostPlatform.system;
        boot.isContainer = true;
        system.stateVersion = lib.trivial.release;
        services.handoff = {
          enable = true;
          openFirewall = true;
          tls = {
            listen = [ 8443 ];
            quicListen = [ 8443 ];
            # Named, never read: nothing runs here.
            certificate = "/var/lib/certs/fullchain.pem";
            key = "/var/lib/certs/key.pem";
          };
        };
      }
    ];
  };
in
{
  quick = {
    inherit handoff;
    clippy = cargoCheck "clippy" specs.clippy;
    fmt = cargoCheck "fmt" specs.fmt;
    cargo-test = cargoCheck "test" specs.test;
    # statix exits 1 on any report; deadnix --fail on any unused binding.
    nix-lint = pkgs.runCommand "handoff-nix-lint" { nativeBuildInputs = [ pkgs.statix pkgs.deadnix ]; } ''
      cd ${self}
      statix check .
      deadnix --fail .
      touch $out
    '';
    module-eval = pkgs.writeText "handoff-module-eval" ''
      ${builtins.unsafeDiscardStringContext system.config.system.build.toplevel.drvPath}
      ${system.config.systemd.units."handoff.socket".text}
      ${system.config.systemd.units."handoff.service".text}
      ${system.config.systemd.units."handoff-https.socket".text}
      ${system.config.systemd.units."handoff-quic.socket".text}
    '';
  };

  vmTests = lib.mapAttrs' (
    file: _: lib.nameValuePair (lib.removeSuffix ".nix" file) (import ./tests/${file} { inherit pkgs self; })
  ) (lib.filterAttrs (file: type: type == "regular" && lib.hasSuffix ".nix" file) (builtins.readDir ./tests));
}
