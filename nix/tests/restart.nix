# systemctl restart, 10 times under mixed load: no request fails.
# Twin: tests/container.rs, restarts_under_load_fail_no_request.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
in
pkgs.testers.runNixOSTest {
  name = "handoff-restart";
  nodes.machine = support.node;
  testScript = ''
    ${support.python}
    machine.wait_for_unit("handoff.socket")
    start_load(40)
    machine.sleep(2)
    pid = answering_pid()
    for _ in range(10):
        machine.succeed("systemctl restart handoff.service")
        pid = wait_for_new_pid(pid)
        machine.sleep(1.5)
    finish_load()
    machine.succeed("test $(pgrep -c -x handoff) = 1")
  '';
}
