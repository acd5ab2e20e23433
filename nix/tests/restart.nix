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
    # 1 s apart, as the reloads: the module turns systemd's start limit off
    # (startLimitIntervalSec = 0), which would refuse a sixth start in 10 s.
    under_load("systemctl restart handoff.service", times=10)
    machine.succeed("test $(pgrep -c -x handoff) = 1")
    # The idle connections crossed the last restart in the fd store: the
    # process serving now adopted some (the pooled clients keep idle ones).
    metrics = machine.succeed("curl --fail --silent http://127.0.0.1:8080/metrics")
    adopted = re.search(r"^handoff_connections_adopted_total (\d+)$", metrics, re.M)
    assert adopted is not None and int(adopted.group(1)) > 0, (
        f"no connection came from the fd store: {adopted and adopted.group(0)}"
    )
  '';
}
