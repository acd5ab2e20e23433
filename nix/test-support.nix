# What the VM tests in nix/tests/ share: the machine, and the load of the
# container suite (tests/container.rs: the mixed load plus pooled clients),
# so both suites measure alike.
{ self }:
let
  loadgenOf = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system}.loadgen;

  # Python for testScript: start_load(), finish_load(), fast_max_ms(), run on
  # `node` against `addr` with loadgen `groups`. loadgen exits non-zero when
  # any request failed (see benches/loadgen); it is named by store path, as a
  # systemd-run unit does not have the shell's PATH.
  loadPython =
    {
      pkgs,
      node ? "machine",
      addr ? "127.0.0.1:8080",
      groups,
    }:
    ''
      import re

      LOAD = "${loadgenOf pkgs}/bin/loadgen --addr ${addr} --duration {seconds} ${groups}"

      def start_load(seconds):
          ${node}.succeed("rm -f /tmp/load.txt /tmp/load.rc")
          ${node}.succeed(
              "systemd-run --unit=load-$RANDOM --collect sh -c '"
              + LOAD.format(seconds=seconds)
              + " > /tmp/load.txt 2>&1; echo $? > /tmp/load.rc'"
          )

      def finish_load():
          ${node}.wait_until_succeeds("test -e /tmp/load.rc", timeout=600)
          report = ${node}.succeed("cat /tmp/load.txt")
          print(report)
          assert ${node}.succeed("cat /tmp/load.rc").strip() == "0", "requests failed under load"
          return report

      def fast_max_ms(report):
          return max(
              float(re.search(r"max\s+([0-9.]+) ms", line).group(1))
              for line in report.splitlines()
              if line.startswith("fast")
          )
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
        return int(re.search(r" pid (\d+) ", out).group(1))

    def wait_for_new_pid(old):
        machine.wait_until_succeeds(
            f"curl --fail --silent http://127.0.0.1:8080/ | grep -v ' pid {old} '", timeout=60
        )
        return answering_pid()

    def under_load(command, times, seconds):
        """Runs `command` `times` times under the load (mixed and pooled), 1.5 s apart,
        checking that a new process answers after each; the load's report."""
        start_load(seconds)
        machine.sleep(2)
        pid = answering_pid()
        for _ in range(times):
            machine.succeed(command)
            pid = wait_for_new_pid(pid)
            machine.sleep(1.5)
        return finish_load()
  '';
}
