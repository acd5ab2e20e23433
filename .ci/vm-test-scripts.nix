# Renders the testScript of every NixOS VM test with stand-ins for nixpkgs
# and this flake, so that the cargo tests (which have no nixpkgs) can check
# and run the Python they produce. Evaluated with nix-instantiate --eval by
# tests/nixos.rs (the test driver's script checks, tests/nixos/
# script_checks.py) and by tests/nixos/run.py, which runs a rendered script.
let
  system = "x86_64-linux";
  fake = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    stdenv.hostPlatform = { inherit system; };
    testers.runNixOSTest = test: test;
    writeShellScriptBin = name: _: fake name;
    curl = fake "curl";
    # A Python environment: python3-env-PACKAGE-..., which tests/nixos/
    # stands in for with Debian's Python and the packages from PyPI.
    python3.withPackages =
      f: fake "python3-env-${builtins.concatStringsSep "-" (f { aioquic = "aioquic"; })}";
    callPackage = _: _: { handoff = fake "handoff-v2"; };
  };
  self = {
    packages.${system} = {
      loadgen = fake "loadgen";
      hello = fake "hello";
      container = fake "container";
    };
    nixosModules.default = { };
  };
  tests = builtins.attrNames (builtins.readDir ../nix/tests);
  # The script, and the node names the test driver defines as variables.
  # Each node's system is /nix/store/...-toplevel-NAME, as tests/nixos/
  # installs it.
  script =
    file:
    let
      test = import (../nix/tests + "/${file}") { inherit pkgs self; };
      nodes = builtins.mapAttrs (name: _: { system.build.toplevel = fake "toplevel-${name}"; }) test.nodes;
    in
    {
      source =
        if builtins.isFunction test.testScript then test.testScript { inherit nodes; } else test.testScript;
      nodes = builtins.attrNames test.nodes;
    };
in
builtins.listToAttrs (
  map (file: {
    name = file;
    value = script file;
  }) tests
)
