# systemctl reload, 10 times under the mixed load plus pooled clients: each
# reload hands the sockets and the idle connections to a new process; no
# request fails or is retried, and each successor answers while the old
# process still drains (nothing waits for a drain).
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
in
pkgs.testers.runNixOSTest {
  name = "handoff-reload";
  nodes.machine = support.node;
  testScript = ''
    ${support.python pkgs}
    machine.wait_for_unit("handoff.socket")
    report = under_load("systemctl reload handoff.service", times=10)
    assert_each_successor_served_during_the_drain(report)

    version = json.loads(machine.succeed("curl --fail --silent http://127.0.0.1:8080/version"))
    assert version["generation"] == 11, version
    main = int(machine.succeed("systemctl show -p MainPID --value handoff.service"))
    assert version["pid"] == main, (version, main)
    machine.wait_until_succeeds("test $(pgrep -c -x handoff) = 1", timeout=30)
  '';
}
