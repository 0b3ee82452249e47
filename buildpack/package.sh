#!/usr/bin/env bash
# package.sh [OUT] - the buildpack as it is shipped: buildpack.toml, bin/,
# lib/, README.md, and the Zenith C runtime sources bin/build compiles
# (runtime/include, runtime/src with its layer folders, runtime/notls), in
# OUT (default build/buildpack).  This is
# what builder.toml, `pack build --buildpack` and `make image` use.
#   --tgz FILE   also write it as a .tgz (the spec's buildpack archive)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/build/buildpack"
tgz=""
while (($#)); do
	case "$1" in
	--tgz) tgz="$2"; shift 2 ;;
	*) out="$1"; shift ;;
	esac
done

bp_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/buildpack/buildpack.toml" | head -n 1)"
rt_version="$(sed -n 's/^#define ZC_VERSION[[:space:]]*"\(.*\)"/\1/p' "$root/runtime/include/zenith.h")"
if [[ "$bp_version" != "$rt_version" ]]; then
	echo "package: buildpack.toml says $bp_version, runtime/include/zenith.h says $rt_version; they must match" >&2
	exit 1
fi

tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/runtime/src" "$tmp/runtime/include" "$tmp/runtime/notls"
cp -R "$root/buildpack/buildpack.toml" "$root/buildpack/README.md" \
	"$root/buildpack/bin" "$root/buildpack/lib" "$tmp/"
cp "$root"/runtime/include/*.h "$tmp/runtime/include/"
# runtime/src/*.h and runtime/src/<layer>/*.[ch]: the layers include each
# other's headers by relative path, so the tree keeps its shape.
cp "$root"/runtime/src/*.h "$tmp/runtime/src/"
for d in "$root"/runtime/src/*/; do
	layer="$(basename "$d")"
	mkdir -p "$tmp/runtime/src/$layer"
	cp "$d"*.[ch] "$tmp/runtime/src/$layer/"
done
cp "$root"/runtime/notls/*.c "$tmp/runtime/notls/"
# Readable by the build image's unprivileged CNB user.
chmod -R u=rwX,go=rX "$tmp"
chmod 0755 "$tmp"/bin/*
rm -rf "$out"
mv "$tmp" "$out"
if [[ -n "$tgz" ]]; then
	tar -C "$out" --owner=0 --group=0 --numeric-owner -czf "$tgz" .
fi
echo "$out"
