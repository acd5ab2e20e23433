# An OCI image whose PID 1 is a NixOS system with services.handoff: systemd
# owns handoff.socket inside the container, as in containers/Containerfile.
#
#   nix build .#container && ./result | podman load
#   podman run -d --systemd=always -p 8080:8080 localhost/handoff-nixos:latest
{
  pkgs,
  nixosSystem,
  handoffModule,
}:
let
  nixos = nixosSystem {
    modules = [
      handoffModule
      {
        nixpkgs.hostPlatform = pkgs.stdenv.hostPlatform.system;
        # Started by a container manager: no kernel, no boot loader, no udev.
        boot.isContainer = true;
        services.handoff.enable = true;
        # The container's network is podman's; it publishes the port.
        networking = {
          firewall.enable = false;
          useDHCP = false;
        };
        documentation.enable = false;
        system.stateVersion = "25.11";
      }
    ];
  };
  inherit (nixos.config.system.build) toplevel;
in
pkgs.dockerTools.streamLayeredImage {
  name = "handoff-nixos";
  tag = "latest";
  config = {
    # The closure of the system is pulled in through this reference.
    Cmd = [ "${toplevel}/init" ];
    StopSignal = "SIGRTMIN+3";
    ExposedPorts."8080/tcp" = { };
    # `podman exec NAME systemctl ...` finds NixOS's tools.
    Env = [ "PATH=/run/current-system/sw/bin:/bin" ];
  };
  passthru = { inherit toplevel; };
}
