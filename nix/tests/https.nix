# HTTPS from the module: tls.listen with certificate files readable by a
# group of their own. h2 and HTTP/1.1 answer on NAME-https.socket; HTTP/3's
# UDP socket (tls.quicListen, NAME-quic.socket) on the same port reaches the
# service, whose HTTPS answers name it in Alt-Svc; a renewal (new files,
# then a reload) serves the new certificate to new handshakes; a renewal
# with the key of another certificate fails the reload and the old
# certificate serves on; the hardening score holds with HTTPS and HTTP/3 on.
#
# No HTTP/3 request: the script also runs on Debian containers
# (tests/nixos/), whose curl (7.88) has no HTTP/3, and it checks the same
# in both places. The service sends Alt-Svc only once it has taken a UDP
# socket named quic; tests/http3.rs makes the HTTP/3 requests.
{ pkgs, self }:
let
  support = import ../test-support.nix { inherit self; };
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
