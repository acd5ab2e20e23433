#!/usr/bin/env bash
# Build the handoff binary and the systemd container image.
#
#   containers/build.sh [TAG]        default TAG: localhost/handoff:latest
#
# BASE_IMAGE (environment) picks the base; default docker.io/library/debian:bookworm-slim.
# Machines without a registry make one with containers/make-base-image.sh.
set -euo pipefail

tag=${1:-localhost/handoff:latest}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

if [[ ${SKIP_CARGO_BUILD:-0} != 1 ]]; then
    (cd "$root" && cargo build --release --locked --bin handoff)
fi
binary=$root/target/release/handoff
[[ -x $binary ]] || { echo "error: $binary missing; run cargo build --release" >&2; exit 66; }

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/handoff"
cp -r "$here/units" "$context/units"
cp "$here/handoff.toml" "$context/handoff.toml"

build_args=()
[[ -n ${BASE_IMAGE:-} ]] && build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
podman build --network=host "${build_args[@]}" -f "$here/Containerfile" -t "$tag" "$context"
echo "built $tag"
