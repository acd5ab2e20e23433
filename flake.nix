{
  description = "handoff: an actix-web service that restarts and redeploys with zero downtime under systemd socket activation";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: {
        inherit (final.callPackage ./nix/package.nix { }) handoff;
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

      # The module, with the package from this flake unless set otherwise.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.handoff.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.handoff;
        };

      checks = forAllSystems (
        pkgs:
        import ./nix/checks.nix {
          inherit self lib pkgs;
          inherit (self.packages.${pkgs.stdenv.hostPlatform.system}) handoff;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = import ./nix/devshell.nix { inherit pkgs; };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
