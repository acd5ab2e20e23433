# The cargo checks of `nix flake check`, as plain data: the source each
# builds from (a fileset of nix/source.nix), the nixpkgs packages it puts on
# PATH beside stdenv's and the Rust toolchain's, the Python packages of its
# python3, its environment, and the script it runs in the build sandbox.
# nix/checks.nix makes derivations of them; tests/sandbox/run.py runs the
# same scripts in its twin of the sandbox, with Debian's builds of the same
# packages. The script's arguments ("$@") are empty under Nix; the twin
# passes tests/run's cargo test arguments.
let
  # What a check has unless it says otherwise: no Python, no environment.
  check =
    spec:
    {
      python = [ ];
      env = { };
    }
    // spec;
in
{
  clippy = check {
    source = "build";
    inputs = [ "clippy" ];
    script = ''
      cargo clippy --workspace --all-targets --offline "$@" -- -D warnings
    '';
  };
  fmt = check {
    source = "build";
    inputs = [ "rustfmt" ];
    script = ''
      cargo fmt --all --check
    '';
  };
  # Every cargo test. The container suite needs podman and skips itself
  # (the VM tests cover it); a test whose tool is not here records a skip.
  test = check {
    source = "test";
    inputs = [
      "systemd" # systemd-socket-activate
      "openssl" # the TLS tests' certificates
      "curl" # the HTTPS and HTTP/2 client
      "nghttp2" # h2load
      "systemfd" # the listenfd development loop (tests/apps.rs)
    ];
    # tests/live.rs's WebSocket and server-sent-events clients, the HTTPS
    # clients, tests/parity.rs's HTTP/2 frames, tests/http3.rs's HTTP/3
    # clients.
    python = [
      "websockets"
      "requests"
      "h2"
      "aioquic"
    ];
    env.HANDOFF_SKIP_CONTAINER_TESTS = "1";
    # A test that skips itself says so on stderr, which libtest hides when
    # the test passes, and appends a line to $HANDOFF_TEST_SKIPS
    # (tests/podman/mod.rs, record_skip): the list follows cargo test's
    # output, so the build log shows what did not run. A caller's own file
    # (tests/run gives the twin one) is kept; the default, in the build
    # directory, starts empty. The status is cargo test's.
    script = ''
      export HANDOFF_PYTHON=$(command -v python3)
      if [ -z "''${HANDOFF_TEST_SKIPS:-}" ]; then
        export HANDOFF_TEST_SKIPS=$NIX_BUILD_TOP/test-skips.txt
        : >"$HANDOFF_TEST_SKIPS"
      fi
      tested=0
      cargo test --workspace --offline --no-fail-fast "$@" || tested=$?
      echo
      echo "skipped tests ($HANDOFF_TEST_SKIPS):"
      if [ -s "$HANDOFF_TEST_SKIPS" ]; then
        cat "$HANDOFF_TEST_SKIPS"
      else
        echo "(none)"
      fi
      (exit "$tested")
    '';
  };
}
