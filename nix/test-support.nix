# What the VM tests in nix/tests/ share: the machine, and the load (the
# mixed load plus pooled clients, as the container suite's tests run it).
{ self }:
let
  loadgenOf = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system}.loadgen;

  # Python for testScript: start_load() and finish_load(), run on `node`
  # against `addr` with loadgen `groups`, and the checks of loadgen's report.
  # The load runs as a systemd unit until finish_load() stops it, 2 s after
  # the last disruption; its --duration is only a ceiling. loadgen exits 1
  # when a request failed or was retried and 2 when it reached its ceiling
  # before it was stopped (a disruption after that point had no load); see
  # benches/loadgen. It is named by store path, as a systemd-run unit does
  # not have the shell's PATH.
  loadPython =
    {
      pkgs,
      node ? "machine",
      addr ? "127.0.0.1:8080",
      groups,
    }:
    ''
      import json
      import re

      LOAD = "${loadgenOf pkgs}/bin/loadgen --addr ${addr} --duration {ceiling} ${groups}"

      def start_load(load=LOAD, unit="handoff-load", ceiling=600):
          ${node}.succeed(f"systemctl stop {unit} || true; systemctl reset-failed {unit} || true")
          ${node}.succeed(
              f"systemd-run --unit={unit} -p RemainAfterExit=yes"
              f" -p StandardOutput=file:/tmp/{unit}.txt "
              + load.format(ceiling=ceiling)
          )

      def finish_load(unit="handoff-load", settle=2):
          """Stops the load `settle` seconds from now; its report, once loadgen
          says that nothing failed, nothing was retried, and the load lasted."""
          ${node}.sleep(settle)
          ${node}.succeed(f"systemctl kill --signal=SIGTERM {unit}")
          ${node}.wait_until_succeeds(
              f"test \"$(systemctl show -P SubState {unit})\" != running", timeout=120
          )
          report = ${node}.succeed(f"cat /tmp/{unit}.txt")
          print(report)
          status = ${node}.succeed(f"systemctl show -P ExecMainStatus {unit}").strip()
          assert status == "0", f"loadgen exited {status}: see its report above"
          return report

      def assert_each_successor_served_during_the_drain(report):
          """After each hand-off the successor answered before the old process's
          last answer (its drain of 1 s requests): no request waited for a
          drain. An order of events, not a time bound."""
          spans = [
              (int(m[1]), float(m[2]), float(m[3]))
              for m in re.finditer(r"^pid (\d+) answered from ([0-9.]+) s to ([0-9.]+) s$", report, re.M)
          ]
          assert len(spans) >= 2, spans
          for (old, _, old_last), (new, new_first, _) in zip(spans, spans[1:]):
              assert new_first < old_last, (
                  f"pid {new} first answered at {new_first} s, after pid {old}'s last answer"
                  f" at {old_last} s: requests waited for the drain"
              )

      def journal_times(node, unit, matches):
          """The realtime timestamps (µs) of `unit`'s journal entries for which
          `matches(entry)` holds."""
          out = node.succeed(f"journalctl -u {unit} -o json --no-pager")
          entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
          return [int(e["__REALTIME_TIMESTAMP"]) for e in entries if matches(e)]
    '';
in
{
  inherit loadPython;

  # The machine: handoff enabled from this flake, curl and the load generator.
  node =
    { pkgs, ... }:
    {
      imports = [ self.nixosModules.default ];
      services.handoff.enable = true;
      environment.systemPackages = [
        pkgs.curl
        pkgs.iproute2
        (loadgenOf pkgs)
      ];
      virtualisation = {
        cores = 2;
        memorySize = 2048;
      };
    };

  # Python for testScript on `machine`: the above with the container suite's
  # load, plus under_load() and answering_pid().
  python =
    pkgs:
    loadPython {
      inherit pkgs;
      # The mixed load, and clients of a connection pool: kept connections,
      # POST, 0-300 ms pauses, never retried; idle connections must survive
      # every drain.
      groups =
        "--group fast-ka:/:12:ka --group fast-close:/:12:close"
        + " --group slow-ka:/delay/1000:4:ka --group slow-close:/delay/1000:4:close"
        + " --group pooled:/echo:16:pooled300";
    }
    + ''
    def answering_pid():
        out = machine.succeed("curl --fail --silent --max-time 30 http://127.0.0.1:8080/")
        found = re.search(r" pid (\d+) ", out)
        assert found is not None, f"no pid in {out!r}"
        return int(found.group(1))

    def wait_for_new_pid(old):
        machine.wait_until_succeeds(
            f"curl --fail --silent http://127.0.0.1:8080/ | grep -v ' pid {old} '", timeout=60
        )
        return answering_pid()

    def under_load(command, times, pause=1):
        """Runs `command` `times` times under the load (mixed and pooled),
        `pause` seconds apart (in the machine's time, whole seconds as the
        driver's sleep takes them), checking that a new process answers
        after each; the load's report."""
        start_load()
        machine.sleep(2)
        pid = answering_pid()
        for _ in range(times):
            machine.succeed(command)
            pid = wait_for_new_pid(pid)
            machine.sleep(pause)
        return finish_load()
  '';
}
