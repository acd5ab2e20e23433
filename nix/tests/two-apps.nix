# Two handoff services on one machine: the reference service
# (services.handoff) and examples/hello declared as an application
# (services.handoff.apps.hello, as a user declares theirs). Each is reloaded
# under load without a failed request, and neither disturbs the other.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
  inherit (self.packages.${pkgs.stdenv.hostPlatform.system}) hello loadgen;
in
pkgs.testers.runNixOSTest {
  name = "handoff-two-apps";
  nodes.machine = {
    imports = [ support.node ];
    # What a user writes for their own service.
    services.handoff.apps.hello = {
      package = hello;
      listen = [ "8081" ];
      settings.app.greeting = "bonjour";
    };
  };
  testScript = ''
    ${support.python pkgs}

    HELLO_LOAD = (
        "${loadgen}/bin/loadgen --addr 127.0.0.1:8081 --duration {ceiling}"
        " --group hello-ka:/hello:12:ka --group hello-close:/hello:12:close"
    )

    def hello_generation():
        metrics = machine.succeed("curl --fail --silent http://127.0.0.1:8081/metrics")
        found = re.search(r"^handoff_generation (\d+)$", metrics, re.M)
        assert found is not None, metrics
        return int(found.group(1))

    machine.wait_for_unit("handoff.socket")
    machine.wait_for_unit("hello.socket")
    assert machine.succeed("curl --fail --silent http://127.0.0.1:8081/hello") == "bonjour"
    before = hello_generation()

    # Both services reloaded under load, alternately.
    start_load(HELLO_LOAD, unit="hello-load")
    start_load()
    machine.sleep(2)
    for _ in range(5):
        machine.succeed("systemctl reload handoff.service")
        machine.sleep(1)
        machine.succeed("systemctl reload hello.service")
        machine.sleep(1)
    finish_load()
    finish_load(unit="hello-load")

    assert hello_generation() == before + 5
    assert machine.succeed("curl --fail --silent http://127.0.0.1:8081/hello") == "bonjour"
    assert machine.succeed("systemctl show -P Result hello.service").strip() == "success"
  '';
}
