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
    under_load("systemctl restart handoff.service", times=10)
    machine.succeed("test $(pgrep -c -x handoff) = 1")
  '';
}
