# A fleet behind HAProxy: lb runs containers/fleet/haproxy.cfg (its server
# lines pointed at web1..web3), the web nodes run services.handoff with a
# lame duck. Under the mixed load plus pooled clients through lb, each
# scenario fails no request: rolling reload to another build, all reloaded
# at once, rolling restart (HAProxy takes each host out before it drains),
# each host stopped and started, a broken build on one host.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
  v2 = (pkgs.callPackage ../package.nix { buildId = "v2"; }).handoff;
  inherit (self.packages.${pkgs.stdenv.hostPlatform.system}) handoff;
  # A build that cannot serve. Its reload, as any build's, asks the running
  # process for a successor from this binary (--exe), and that successor
  # fails at once: the old process must go on serving.
  broken = pkgs.writeShellScriptBin "handoff" ''
    case " $* " in
      *" reload "*) exec ${handoff}/bin/handoff "$@" --exe "$0" ;;
    esac
    echo "handoff (broken build): cannot start" >&2
    exit 1
  '';
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
      environment.systemPackages = [
        pkgs.curl
        self.packages.${pkgs.stdenv.hostPlatform.system}.loadgen
      ];
    };
    web1 = web;
    web2 = web;
    web3 = web;
  };
  testScript =
    { nodes, ... }:
    let
      # Each host switches within its own system: the test framework builds
      # a node's host name and address into that node's system, so another
      # node's would take its name and address.
      toplevels = builtins.concatStringsSep ", " (
        map (w: "\"${w}\": \"${nodes.${w}.system.build.toplevel}\"") [
          "web1"
          "web2"
          "web3"
        ]
      );
    in
    ''
      ${support.loadPython {
        inherit pkgs;
        node = "lb";
        addr = "127.0.0.1:8000";
        groups =
          "--group fast-ka:/:8:ka --group fast-close:/:8:close"
          + " --group slow-ka:/delay/1000:3:ka --group slow-close:/delay/1000:3:close"
          + " --group pooled:/echo:12:pooled300";
      }}

      webs = [web1, web2, web3]
      TOPLEVEL = {${toplevels}}

      def switch(w, specialisation):
          return f"{TOPLEVEL[w.name]}/specialisation/{specialisation}/bin/switch-to-configuration test"

      def main_pid(w):
          return w.succeed("systemctl show -P MainPID handoff.service").strip()

      # HAProxy's view of each host (its stats page, status column): "UP",
      # "DOWN", or a transition such as "UP 1/2".
      ROTATION = "curl --fail --silent 'http://127.0.0.1:8404/stats;csv' | awk -F, '$1 == \"handoff\" && $2 ~ /^web/ { print $2, $18 }'"

      def all_in_rotation():
          # Each host ready, then HAProxy's checks see it (rise 2, inter 1s).
          # Pids cannot tell the hosts apart: each is its own VM.
          for w in webs:
              w.wait_until_succeeds("curl --fail --silent http://127.0.0.1:8080/readyz", timeout=60)
          lb.wait_until_succeeds(f"test \"$({ROTATION} | grep -c ' UP$')\" = 3", timeout=60)
          lb.succeed("curl --fail --silent http://127.0.0.1:8000/readyz")

      def out_of_rotation(w):
          lb.wait_until_succeeds(f"{ROTATION} | grep -q '^{w.name} DOWN'", timeout=60)

      def assert_own_identity(w):
          # A switch keeps the host's name (and address): nixos/lib/testing
          # builds them into each node's own system.
          name = w.succeed("cat /etc/hostname").strip()
          assert name == w.name, f"{w.name} answers to the name {name} after its switch"

      start_all()
      for w in webs:
          w.wait_for_unit("handoff.socket")
          w.succeed("curl --fail --silent http://127.0.0.1:8080/readyz")
      lb.wait_for_unit("haproxy.service")
      all_in_rotation()

      with subtest("1. rolling reload to another build"):
          start_load()
          for w in webs:
              w.succeed(switch(w, "v2"))
              assert_own_identity(w)
              w.sleep(1)
          finish_load()
          for w in webs:
              w.succeed("curl --fail --silent http://127.0.0.1:8080/version | grep -q '\"build\":\"v2\"'")

      with subtest("2. all hosts reloaded at once"):
          start_load()
          lb.sleep(1)
          pids = {w.name: main_pid(w) for w in webs}
          for w in webs:
              w.execute("rm -f /tmp/reload-status; (systemctl reload handoff.service; echo $? >/tmp/reload-status) >/dev/null 2>&1 &")
          finish_load()
          for w in webs:
              w.wait_until_succeeds("test -s /tmp/reload-status", timeout=60)
              status = w.succeed("cat /tmp/reload-status").strip()
              assert status == "0", f"{w.name}: systemctl reload exited {status}"
              assert main_pid(w) != pids[w.name], f"{w.name}: the reload left pid {pids[w.name]} serving"

      with subtest("3. rolling restart with the lame duck"):
          # The lame duck's point as an order of events: HAProxy logged each
          # host DOWN before that host began its drain, so nothing queued
          # behind a drain.
          start_load()
          for i, w in enumerate(webs):
              since = int(w.succeed("date +%s%6N"))
              w.succeed("systemctl restart handoff.service")
              drain = max(journal_times(w, "handoff.service", lambda e: e.get("MESSAGE", "").startswith("draining") and "SIGTERM" in e.get("F_REASON", "")))
              down = [t for t in journal_times(lb, "haproxy.service", lambda e: f"handoff/web{i + 1} is DOWN" in e.get("MESSAGE", "")) if t >= since]
              assert down and min(down) < drain, f"web{i + 1} began its drain before HAProxy took it out"
              all_in_rotation()
          finish_load()

      with subtest("4. each host stopped and started"):
          start_load()
          for w in webs:
              w.succeed("systemctl stop handoff.socket handoff.service")
              out_of_rotation(w)
              w.succeed("systemctl start handoff.socket")
              all_in_rotation()
          finish_load()

      with subtest("5. a broken build on one host"):
          start_load()
          pid = main_pid(web2)
          web2.fail(switch(web2, "broken"))
          finish_load()
          assert main_pid(web2) == pid
          # The running process was asked: the broken build's successor ran.
          # grep -c reads to the end: grep -q would stop at the match and
          # journalctl die of SIGPIPE, which pipefail (the driver sets it)
          # turns into a failure.
          web2.succeed("journalctl --no-pager -u handoff.service | grep -c 'handoff (broken build): cannot start'")
    '';
}
