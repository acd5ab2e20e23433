"""nixpkgs' test_driver package as the scripts' type check sees it: each
module re-exports the classes of tests/nixos/driver.py, which carry the
real driver's names and signatures. Only type checkers import this."""
