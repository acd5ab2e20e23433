# systemctl restart, 10 times under the mixed load plus pooled clients: no
# request fails (idle connections wait in the fd store).
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
in
pkgs.testers.runNixOSTest {
  name = "handoff-restart";
  nodes.machine = support.node;
  testScript = ''
    ${support.python pkgs}
    machine.wait_for_unit("handoff.socket")
    # 2 s apart: systemd's start limit (5 starts in 10 s by default) counts
    # restarts; reloads are not starts.
    under_load("systemctl restart handoff.service", times=10, pause=2)
    machine.succeed("test $(pgrep -c -x handoff) = 1")
  '';
}
