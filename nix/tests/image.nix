# The Nix-built image (packages.container), a NixOS system with handoff as
# PID 1's service, run by podman with --systemd=always inside a VM.
{ pkgs, self }:
let
  image = self.packages.${pkgs.stdenv.hostPlatform.system}.container;
in
pkgs.testers.runNixOSTest {
  name = "handoff-image";
  nodes.machine = {
    virtualisation = {
      podman.enable = true;
      memorySize = 2048;
      diskSize = 4096;
    };
    environment.systemPackages = [ pkgs.curl ];
  };
  testScript = ''
    machine.wait_for_unit("multi-user.target")
    machine.succeed("${image} | podman load")
    machine.succeed(
        "podman run -d --name handoff --systemd=always -p 8080:8080 localhost/handoff-nixos:latest"
    )
    machine.wait_until_succeeds("curl --fail --silent http://127.0.0.1:8080/healthz", timeout=180)
    machine.succeed("podman exec handoff systemctl is-active handoff.socket handoff.service")
    machine.succeed("podman exec handoff systemctl reload handoff.service")
    machine.wait_until_succeeds(
        "curl --fail --silent http://127.0.0.1:8080/version | grep -q '\"generation\":2'"
    )
    machine.succeed("podman stop -t 45 handoff")
  '';
}
