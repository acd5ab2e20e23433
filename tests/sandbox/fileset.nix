# The files of one fileset of nix/source.nix, as nixpkgs' own lib.fileset
# computes them (its toList), for tests/sandbox/run.py.
#
# Debian's Nix is 2.8; lib.fileset reads file types with
# builtins.readFileType (Nix 2.14). Every file of lib is imported with
# builtins that have it, defined from readDir, which reports the same
# types ("regular", "directory", "symlink", "unknown").
{
  libPath,
  sourceFile,
  name,
}:
let
  builtins' = builtins // {
    readFileType = path: (builtins.readDir (dirOf path)).${baseNameOf path};
  };
  scope = {
    builtins = builtins';
    import = scopedImport scope;
  };
  lib = scopedImport scope libPath;
  source = import sourceFile { inherit lib; };
in
map toString (lib.fileset.toList source.${name})
