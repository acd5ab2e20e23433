#!/usr/bin/env bash
# Build a systemd container image for a handoff service.
#
#   containers/build.sh [TAG]                          the reference service (bin handoff)
#   containers/build.sh --bin NAME [TAG]               another binary of the workspace
#   containers/build.sh --example NAME [TAG]           an example, e.g. hello
#   containers/build.sh --binary PATH [--name NAME] [TAG]   a binary built elsewhere
#   containers/build.sh --https ...                    with NAME-https.socket and NAME-quic.socket (8443, TCP and UDP)
#   containers/build.sh --profile NAME ...             cargo's profile NAME instead of release
#
# TAG defaults to localhost/NAME:latest. The image gets NAME.socket and
# NAME.service made from containers/units/ (binary, config path, runtime
# directory renamed), /etc/NAME/NAME.toml from containers/handoff.toml, and
# the binary as /usr/local/bin/NAME.
#
# BASE_IMAGE (environment) picks the base; default docker.io/library/debian:bookworm-slim.
# Machines without a registry make one with containers/make-base-image.sh.
# SKIP_CARGO_BUILD=1 uses what target/PROFILE (target/release) already holds.
# The test suite builds with --profile suite (Cargo.toml: release without
# optimization), so that its builds never replace what target/release holds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }

kind=bin name=handoff binary="" tag="" https=0 profile=release
while (($#)); do
    case $1 in
        --bin | --example) kind=${1#--}; name=${2:?$1 needs a name}; shift 2 ;;
        --binary) kind=path; binary=${2:?--binary needs a path}; name=$(basename "$binary"); shift 2 ;;
        --name) name=${2:?--name needs a name}; shift 2 ;;
        --https) https=1; shift ;;
        --profile) profile=${2:?--profile needs a name}; shift 2 ;;
        -h | --help) usage ;;
        -*) echo "error: unknown option $1" >&2; usage ;;
        *) [[ -z $tag ]] || usage; tag=$1; shift ;;
    esac
done
[[ $name =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]] || { echo "error: $name is not a usable unit name" >&2; exit 64; }
tag=${tag:-localhost/$name:latest}

case $kind in
    bin | example)
        if [[ ${SKIP_CARGO_BUILD:-0} != 1 ]]; then
            (cd "$root" && cargo build --profile "$profile" --locked "--$kind" "$name")
        fi
        # cargo's directory for a profile: its name, debug for dev.
        dir=$profile
        [[ $profile == dev ]] && dir=debug
        binary=$root/target/$dir/$name
        [[ $kind == example ]] && binary=$root/target/$dir/examples/$name
        ;;
esac
[[ -x $binary ]] || { echo "error: $binary missing or not executable; build it first" >&2; exit 66; }

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/app"
mkdir "$context/units"
# The reference units, for this service: only names and paths change. The
# description names handoff beside another service's name only.
described=$name
[[ $name == handoff ]] || described="$name (handoff)"
for unit in socket service; do
    sed -e "s|/usr/local/bin/handoff|/usr/local/bin/$name|g" \
        -e "s|/etc/handoff/handoff.toml|/etc/$name/$name.toml|g" \
        -e "s|^RuntimeDirectory=handoff$|RuntimeDirectory=$name|" \
        -e "s|handoff\.socket|$name.socket|g" \
        -e "s|handoff\.service|$name.service|g" \
        -e "s|^Description=handoff |Description=$described |" \
        "$here/units/handoff.$unit" > "$context/units/$name.$unit"
done
if ((https)); then
    # HTTPS and HTTP/3: a second socket, a third for QUIC (UDP; a socket
    # unit names all its sockets alike, so not lines of the HTTPS one), and
    # a drop-in that gives the service all three, the certificate's paths
    # and its group.
    mkdir "$context/units/$name.service.d"
    rename=(-e "s|/etc/handoff/|/etc/$name/|g" -e "s|handoff\.socket|$name.socket|g"
        -e "s|handoff-https\.socket|$name-https.socket|g" -e "s|handoff-quic\.socket|$name-quic.socket|g"
        -e "s|handoff\.service|$name.service|g")
    for socket in https quic; do
        sed "${rename[@]}" "$here/units/https/handoff-$socket.socket" > "$context/units/$name-$socket.socket"
    done
    sed "${rename[@]}" "$here/units/https/https.conf" > "$context/units/$name.service.d/https.conf"
fi
cp "$here/handoff.toml" "$context/config.toml"
cp "$here/systemd-in-container.sh" "$context/"

build_args=(--build-arg "NAME=$name")
[[ -n ${BASE_IMAGE:-} ]] && build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
podman build --network=host "${build_args[@]}" -f "$here/Containerfile" -t "$tag" "$context"
echo "built $tag"
