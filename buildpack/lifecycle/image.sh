#!/usr/bin/env bash
# image.sh FOLDER [OUTPUT] - what `make image FN=FOLDER` runs: an OCI image
# archive of a function folder, built with the buildpack and no Docker
# engine.  Makes (or reuses) the run image and the build image, packages the
# buildpack, then runs lifecycle.py: detect and build in the build image,
# export over the run image.
#
#   OUTPUT      default build/images/<folder name>.oci.tar, image name
#               localhost/<folder name>:latest
#   ZC_IMAGE_CACHE  the layer cache directory (default
#               build/images/cache/<folder name>); the runtime's cache layer
#               lives there
#   ZC_BUILDPACK    an already packaged buildpack directory (default:
#               buildpack/package.sh makes build/buildpack from this tree)
#   ZC_RUN_IMAGE    another run image, as LAYOUT:TAG (default: the one
#               build-run-image.sh makes)
#   BP_*        every BP_* variable in the environment is passed to the
#               buildpack (buildpack/README.md); BP_ZC_FUNCTION_NAME
#               defaults to the folder name here
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../images/common.sh"

fn="${1:-}"
[[ -n "$fn" && -d "$fn" ]] || die "usage: make image FN=<function folder>" \
	"for example: make image FN=examples/audit-logger"
need podman runc python3
fn="$(cd "$fn" && pwd)"
name="$(basename "$fn" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._\n-' '-')"
out="${2:-$ZC_ROOT/build/images/$name.oci.tar}"
cache="${ZC_IMAGE_CACHE:-$ZC_ROOT/build/images/cache/$name}"

t0=$SECONDS
containers_setup
run_ref="${ZC_RUN_IMAGE:-$("$ZC_ROOT/buildpack/images/build-run-image.sh")}"
build_ref="$("$ZC_ROOT/buildpack/images/build-build-image.sh")"
bp="${ZC_BUILDPACK:-$("$ZC_ROOT/buildpack/package.sh" "$ZC_ROOT/build/buildpack")}"

envs=()
[[ -n "${BP_ZC_FUNCTION_NAME:-}" ]] || envs+=(--env "BP_ZC_FUNCTION_NAME=$name")
while IFS= read -r var; do
	envs+=(--env "$var=${!var}")
done < <(compgen -e | grep '^BP_' || true)

rc=0
python3 "$ZC_ROOT/buildpack/lifecycle/lifecycle.py" --buildpack "$bp" \
	--app "$fn" --build-image "$build_ref" --run-image "$run_ref" \
	--output "$out" --tag "localhost/$name:latest" --cache "$cache" \
	"${envs[@]}" || rc=$?
((rc == 0)) || exit "$rc"
say "image: $out (localhost/$name:latest) in $((SECONDS - t0)) s"
say "run it: buildpack/images/podman.sh run --rm --read-only --network slirp4netns -p 127.0.0.1:8080:8080 oci-archive:$out"
