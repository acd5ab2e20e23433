# The socket listens, the service waits; the first request starts it and is
# answered.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
in
pkgs.testers.runNixOSTest {
  name = "handoff-activation";
  nodes.machine = support.node;
  testScript = ''
    ${support.python pkgs}
    machine.wait_for_unit("sockets.target")
    machine.wait_for_unit("handoff.socket")
    machine.succeed("ss -Htln 'sport = :8080' | grep -q LISTEN")
    machine.fail("systemctl is-active --quiet handoff.service")

    first = machine.succeed("curl --fail --silent http://127.0.0.1:8080/")
    assert first.startswith("handoff "), first
    machine.succeed("systemctl is-active --quiet handoff.service")
    main = int(machine.succeed("systemctl show -p MainPID --value handoff.service"))
    assert f" pid {main} " in first, (main, first)
  '';
}
