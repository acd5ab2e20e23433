# HTTPS from the module: tls.listen with certificate files readable by a
# group of their own. h2 and HTTP/1.1 answer on NAME-https.socket; HTTP/3's
# UDP socket (tls.quicListen, NAME-quic.socket) on the same port reaches the
# service, whose HTTPS answers name it in Alt-Svc; a renewal (new files,
# then a reload) serves the new certificate to new handshakes; a renewal
# with the key of another certificate fails the reload and the old
# certificate serves on; the hardening score holds with HTTPS and HTTP/3 on.
#
# HTTP/3 requests come from aioquic (nixpkgs' python3Packages.aioquic,
# tests/clients/h3_clients.py): curl has no HTTP/3 in nixpkgs' default
# build nor in Debian's (tests/nixos/ runs this script on Debian
# containers too), so Alt-Svc is checked with curl and the requests made
# by pooled aioquic clients across reloads.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
  h3Python = pkgs.python3.withPackages (ps: [ ps.aioquic ]);
  # A self-signed certificate for localhost, made in the VM (never in the
  # store), in files of group certs.
  issue = ''
    cd /var/lib/certs \
      && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
           -subj /CN=localhost -addext subjectAltName=DNS:localhost \
           -keyout key.new -out fullchain.new 2>/dev/null \
      && chgrp certs key.new fullchain.new && chmod 0640 key.new fullchain.new \
      && mv fullchain.new fullchain.pem && mv key.new key.pem'';
in
pkgs.testers.runNixOSTest {
  name = "handoff-https";
  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ support.node ];
      services.handoff.tls = {
        listen = [ 8443 ];
        # HTTP/3 on the same port, over UDP.
        quicListen = [ 8443 ];
        certificate = "/var/lib/certs/fullchain.pem";
        key = "/var/lib/certs/key.pem";
        group = "certs";
      };
      users.groups.certs = { };
      environment.systemPackages = [ pkgs.openssl ];
    };
  testScript = ''
    import json
    import re

    CURL = "curl --fail --silent --cacert /var/lib/certs/fullchain.pem -w ' %{http_version}'"

    def serial():
        return machine.succeed(
            "openssl s_client -connect 127.0.0.1:8443 -servername localhost </dev/null 2>/dev/null"
            " | openssl x509 -noout -serial"
        ).strip()

    machine.wait_for_unit("handoff-https.socket")
    machine.wait_for_unit("handoff-quic.socket")
    machine.succeed("install -d -m 0750 -g certs /var/lib/certs", "${issue}")

    with subtest("h2 and HTTP/1.1 on the https socket, plain HTTP on the other"):
        out = machine.succeed(f"{CURL} --http2 https://localhost:8443/")
        assert out.startswith("handoff ") and out.endswith(" 2"), out
        out = machine.succeed(f"{CURL} --http1.1 https://localhost:8443/")
        assert out.endswith(" 1.1"), out
        machine.succeed("curl --fail --silent http://127.0.0.1:8080/healthz")

    with subtest("HTTP/3 on the quic socket, named in Alt-Svc on HTTPS answers"):
        headers = machine.succeed(
            "curl --fail --silent --cacert /var/lib/certs/fullchain.pem"
            " -o /dev/null -D - https://localhost:8443/"
        )
        assert re.search(r'(?im)^alt-svc: h3=":8443"', headers), headers

    with subtest("HTTP/3 clients lose nothing across five reloads"):
        # 8 pooled aioquic clients: one QUIC connection each, GET and POST
        # with 0-300 ms pauses, no retry; a connection moves to a new one
        # only after the server's GOAWAY. Each reload's old process keeps
        # its connections (the successor forwards their datagrams) until
        # they move.
        machine.succeed(
            "rm -f /tmp/h3-stop && systemd-run --unit=h3-clients -p RemainAfterExit=yes"
            " -p StandardOutput=file:/tmp/h3-clients.json"
            " ${h3Python}/bin/python3 ${../../tests/clients/h3_clients.py}"
            " 127.0.0.1 8443 8 /tmp/h3-stop /var/lib/certs/fullchain.pem"
        )
        machine.sleep(2)
        for _ in range(5):
            machine.succeed("systemctl reload handoff.service")
            machine.sleep(1)
        machine.succeed("touch /tmp/h3-stop")
        machine.wait_until_succeeds('test "$(systemctl show -P SubState h3-clients)" != running', timeout=60)
        h3 = json.loads(machine.succeed("cat /tmp/h3-clients.json"))
        print("HTTP/3 clients:", {k: v for k, v in h3.items() if k not in ("timeline", "errors")})
        assert h3["failed"] == 0, h3["errors"]
        assert h3["ok"] > 0, h3
        # No answer to a request a GOAWAY had declared not processed (a
        # client would send it again elsewhere), and no connection lost.
        assert h3["answered_beyond_goaway"] == 0, h3
        assert h3["moved_without_goaway"] == 0, h3
        assert h3["moved_after_goaway"] > 0, h3
        # The first process and each of the five successors answered.
        assert len(h3["pids"]) == 6, h3["pids"]
        machine.wait_until_succeeds("test $(pgrep -c -x handoff) = 1", timeout=60)

    with subtest("a renewal is a reload"):
        first = serial()
        machine.succeed("${issue}", "systemctl reload handoff.service")
        second = serial()
        assert second.startswith("serial=") and second != first, (first, second)
        machine.succeed(f"{CURL} https://localhost:8443/")

    with subtest("a renewal with another certificate's key fails; the old one serves on"):
        machine.succeed(
            "cd /var/lib/certs && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
            " -out key.new && chgrp certs key.new && chmod 0640 key.new && mv key.new key.pem"
        )
        machine.fail("systemctl reload handoff.service")
        machine.succeed("systemctl is-active handoff.service")
        assert serial() == second

    with subtest("the hardening holds with HTTPS and HTTP/3 on"):
        report = machine.succeed("systemd-analyze security --no-pager handoff.service")
        found = re.search(r"Overall exposure level for handoff.service: ([0-9.]+)", report)
        assert found is not None, report
        score = float(found.group(1))
        assert score <= 0.5, f"exposure {score} above 0.5"
        print(f"exposure {score} with HTTPS and HTTP/3 on")
  '';
}
