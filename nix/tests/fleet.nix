# A fleet behind HAProxy: lb runs containers/fleet/haproxy.cfg (its server
# lines pointed at web1..web3), the web nodes run services.handoff with a
# lame duck. Under the mixed load plus pooled clients through lb, each
# scenario fails no request: rolling reload to another build, all reloaded
# at once, rolling restart (no fast request waits for a drain), each host
# stopped and started, a broken build on one host.
# Twin: tests/fleet.rs, a_fleet_deploys_restarts_and_loses_hosts_without_a_failed_request.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
  inherit (self.packages.${pkgs.stdenv.hostPlatform.system}) loadgen;
  v2 = (pkgs.callPackage ../package.nix { buildId = "v2"; }).handoff;
  broken = pkgs.writeShellScriptBin "handoff" "exit 1";
  haproxyConfig =
    builtins.replaceStrings
      [ "server web1 127.0.0.1:8081" "server web2 127.0.0.1:8082" "server web3 127.0.0.1:8083" ]
      [ "server web1 web1:8080" "server web2 web2:8080" "server web3 web3:8080" ]
      (builtins.readFile ../../containers/fleet/haproxy.cfg);
  web = {
    imports = [ support.node ];
    services.handoff = {
      openFirewall = true;
      settings.server.shutdown_delay = 4;
    };
    specialisation.v2.configuration.services.handoff.package = v2;
    specialisation.broken.configuration.services.handoff.package = broken;
  };
in
pkgs.testers.runNixOSTest {
  name = "handoff-fleet";
  nodes = {
    lb = {
      services.haproxy = {
        enable = true;
        config = haproxyConfig;
      };
      environment.systemPackages = [ loadgen pkgs.curl ];
    };
    web1 = web;
    web2 = web;
    web3 = web;
  };
  testScript =
    { nodes, ... }:
    let
      toplevel = nodes.web1.system.build.toplevel;
    in
    ''
      import re

      webs = [web1, web2, web3]
      LOAD = (
          "${loadgen}/bin/loadgen --addr 127.0.0.1:8000 --duration {seconds}"
          " --group fast-ka:/:8:ka --group fast-close:/:8:close"
          " --group slow-ka:/delay/1000:3:ka --group slow-close:/delay/1000:3:close"
          " --group pooled:/echo:12:pooled300"
      )

      def start_load(seconds):
          lb.succeed("rm -f /tmp/load.txt /tmp/load.rc")
          lb.succeed(
              "systemd-run --unit=load-" + str(seconds) + "-$RANDOM --collect sh -c '"
              + LOAD.format(seconds=seconds)
              + " > /tmp/load.txt 2>&1; echo $? > /tmp/load.rc'"
          )

      def finish_load(name):
          lb.wait_until_succeeds("test -e /tmp/load.rc", timeout=600)
          report = lb.succeed("cat /tmp/load.txt")
          print(name + "\n" + report)
          assert lb.succeed("cat /tmp/load.rc").strip() == "0", name + ": requests failed"
          return report

      def fast_max_ms(report):
          return max(
              float(re.search(r"max\s+([0-9.]+) ms", line).group(1))
              for line in report.splitlines()
              if line.startswith("fast")
          )

      def all_in_rotation():
          lb.wait_until_succeeds(
              "test $(for i in $(seq 12); do curl -s http://127.0.0.1:8000/; done"
              " | grep -o ' pid [0-9]*' | sort -u | wc -l) -ge 3",
              timeout=60,
          )

      start_all()
      for w in webs:
          w.wait_for_unit("handoff.socket")
          w.succeed("curl --fail --silent http://127.0.0.1:8080/readyz")
      lb.wait_for_unit("haproxy.service")
      all_in_rotation()

      with subtest("1. rolling reload to another build"):
          start_load(20)
          for w in webs:
              w.succeed("${toplevel}/specialisation/v2/bin/switch-to-configuration test")
              w.sleep(2)
          finish_load("rolling reload")
          for w in webs:
              w.succeed("curl --fail --silent http://127.0.0.1:8080/version | grep -q '\"build\":\"v2\"'")

      with subtest("2. all hosts reloaded at once"):
          start_load(10)
          lb.sleep(2)
          for w in webs:
              w.execute("systemctl reload handoff.service >/dev/null 2>&1 &")
          finish_load("all at once")

      with subtest("3. rolling restart with the lame duck"):
          start_load(40)
          for w in webs:
              w.succeed("systemctl restart handoff.service")
              all_in_rotation()
          report = finish_load("rolling restart")
          assert fast_max_ms(report) < 500, "a fast request waited for a drain"

      with subtest("4. each host stopped and started"):
          start_load(50)
          for w in webs:
              w.succeed("systemctl stop handoff.socket handoff.service")
              w.sleep(2)
              w.succeed("systemctl start handoff.socket")
              all_in_rotation()
          finish_load("hosts stopped and started")

      with subtest("5. a broken build on one host"):
          start_load(10)
          pid = web2.succeed("systemctl show -P MainPID handoff.service").strip()
          web2.fail("${toplevel}/specialisation/broken/bin/switch-to-configuration test")
          finish_load("broken build")
          assert web2.succeed("systemctl show -P MainPID handoff.service").strip() == pid
    '';
}
