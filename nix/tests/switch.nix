# nixos-rebuild's switch between two configurations (other settings and
# another package build) under load: reloadIfChanged hands off each time,
# no request fails, each successor answers while the old process drains, and
# the other build answers.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
  v2 = (pkgs.callPackage ../package.nix { buildId = "v2"; }).handoff;
in
pkgs.testers.runNixOSTest {
  name = "handoff-switch";
  nodes.machine = {
    imports = [ support.node ];
    specialisation.v2.configuration.services.handoff = {
      package = v2;
      settings = {
        server.workers = 1;
        app.max_delay = "5s";
      };
    };
  };
  testScript =
    { nodes, ... }:
    let
      inherit (nodes.machine.system.build) toplevel;
    in
    ''
      ${support.python pkgs}

      def build():
          return json.loads(machine.succeed("curl --fail --silent http://127.0.0.1:8080/version"))["build"]

      machine.wait_for_unit("handoff.socket")
      assert build() == "nix"
      start_load()
      machine.sleep(2)
      for _ in range(3):
          machine.succeed("${toplevel}/specialisation/v2/bin/switch-to-configuration test")
          machine.wait_until_succeeds("curl --fail --silent http://127.0.0.1:8080/version | grep -q '\"build\":\"v2\"'")
          # v2's settings serve with its build: app.max_delay is 5 s there.
          machine.succeed("curl --silent http://127.0.0.1:8080/delay/999999 | grep -q '(5s)'")
          machine.sleep(2)
          machine.succeed("${toplevel}/bin/switch-to-configuration test")
          machine.wait_until_succeeds("curl --fail --silent http://127.0.0.1:8080/version | grep -q '\"build\":\"nix\"'")
          machine.sleep(2)
      assert_each_successor_served_during_the_drain(finish_load())

      machine.succeed("curl --silent http://127.0.0.1:8080/delay/999999 | grep -q '(10s)'")
      # Six reloads, no restart: a restart would start again at generation 1.
      version = json.loads(machine.succeed("curl --fail --silent http://127.0.0.1:8080/version"))
      assert version["generation"] == 7, version
    '';
}
