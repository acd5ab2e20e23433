{
  description = "handoff: an actix-web service that restarts and redeploys with zero downtime under systemd socket activation";

  # The stable release flake.lock pins; nixos-unstable and 25.11 (rustc
  # 1.91, the workspace needs 1.89) are supported too (README, "NixOS"). A
  # system's own nixpkgs replaces this one with
  # `inputs.handoff.inputs.nixpkgs.follows`.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      checksOf = pkgs: import ./nix/checks.nix { inherit self lib pkgs; };
    in
    {
      # Every package of the flake, built with the nixpkgs the overlay is
      # applied to. `hello` and `loadgen` get the prefix their pnames have:
      # nixpkgs has a `hello` of its own.
      overlays.default =
        final: _prev:
        let
          built = final.callPackage ./nix/package.nix { };
        in
        {
          inherit (built) handoff;
          handoff-hello = built.hello;
          handoff-loadgen = built.loadgen;
        };

      packages = forAllSystems (
        pkgs:
        let
          built = pkgs.callPackage ./nix/package.nix { };
        in
        {
          inherit (built) handoff hello loadgen;
          default = built.handoff;
          container = import ./nix/container.nix {
            inherit pkgs;
            inherit (lib) nixosSystem;
            handoffModule = self.nixosModules.default;
          };
        }
      );

      # The module, with the package built from the system's own nixpkgs
      # (`pkgs`): no second nixpkgs is evaluated and the closure shares the
      # system's libraries. Set services.handoff.package to use another.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.handoff.package = lib.mkDefault (pkgs.callPackage ./nix/package.nix { }).handoff;
        };

      # `nix flake check`: the quick checks (the package, clippy, rustfmt, the
      # cargo tests, the Nix lints, the module evaluated into a system) and
      # every VM test (`vm-NAME`). `HANDOFF_CHECKS=quick nix flake check
      # --impure` runs the quick ones alone: builtins.getEnv reads "" in the
      # pure evaluation flakes have by default, so without --impure the
      # variable changes nothing. `nix build .#vmTests.fleet` builds one VM
      # test.
      checks = forAllSystems (
        pkgs:
        let
          checks = checksOf pkgs;
          quickOnly = builtins.getEnv "HANDOFF_CHECKS" == "quick";
        in
        checks.quick
        // lib.optionalAttrs (!quickOnly) (lib.mapAttrs' (name: lib.nameValuePair "vm-${name}") checks.vmTests)
      );

      legacyPackages = forAllSystems (
        pkgs:
        let
          checks = checksOf pkgs;
        in
        {
          quickChecks = pkgs.linkFarm "handoff-quick-checks" checks.quick;
          inherit (checks) vmTests;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = import ./nix/devshell.nix { inherit pkgs; };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
