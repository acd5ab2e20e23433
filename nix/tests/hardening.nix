# systemd-analyze security scores the unit at or below 0.5.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
in
pkgs.testers.runNixOSTest {
  name = "handoff-hardening";
  nodes.machine = support.node;
  testScript = ''
    import re
    machine.wait_for_unit("handoff.socket")
    machine.succeed("curl --fail --silent http://127.0.0.1:8080/healthz")
    report = machine.succeed("systemd-analyze security --no-pager handoff.service")
    print(report)
    found = re.search(r"Overall exposure level for handoff.service: ([0-9.]+)", report)
    assert found is not None, report
    score = float(found.group(1))
    assert score <= 0.5, f"exposure {score} above 0.5"
  '';
}
