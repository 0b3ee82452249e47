#!/usr/bin/env bash
# build-run-image.sh [LAYOUT] - the Zenith C run image, as the OCI image
# layout LAYOUT (default build/images/run), tag "run".  Made from Debian 12
# packages only, without a Docker engine or a registry: the dependency
# closure of the runtime's libraries (libmicrohttpd12, libjansson4,
# libcurl4, libc6, and the store's libsqlite3-0 and libpq5) unpacked with
# dpkg -x, the Mozilla CA bundle, a non-root user cnb (1000:1000), no
# shell, and the CNB run-image labels.  libpq5 costs 0.14 MiB compressed:
# everything it loads (libssl3, libgssapi-krb5-2, libldap-2.5-0, ...) is
# libcurl4's closure already (docs/buildpack.md, "The run image").
#
#   ZC_RUN_SHELL=1   add busybox as /bin/sh (for debugging; not the default)
#   ZC_RUN_ROOTS     the packages whose closure is installed (default
#                    "libc6 libmicrohttpd12 libjansson4 libcurl4
#                    libsqlite3-0 libpq5"); the tests make a glibc-only
#                    image with "libc6" to check that BP_ZC_BUNDLE_LIBS=true
#                    brings the libraries along
#
# Nothing is rebuilt when the script, the setting and the Debian package
# versions are unchanged.  Prints "LAYOUT:run" on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need apt-get apt-cache dpkg python3
oci=(python3 "$ZC_ROOT/buildpack/lifecycle/ocilayout.py")

out="${1:-$ZC_ROOT/build/images/run}"
tag=run
shell="${ZC_RUN_SHELL:-0}"
DEFAULT_ROOTS="libc6 libmicrohttpd12 libjansson4 libcurl4 libsqlite3-0 libpq5"
read -r -a ROOTS <<<"${ZC_RUN_ROOTS:-$DEFAULT_ROOTS}"

# Depends and Pre-Depends only, recursively: the packages the libraries
# need to load.  ca-certificates is not in it: its own closure is dpkg,
# openssl, debconf...; only its PEM files are taken.
closure() {
	apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "$@" |
		grep -v '^ ' | grep -v '^<' | sort -u
}

mapfile -t pkgs < <(closure "${ROOTS[@]}")
((${#pkgs[@]} >= ${#ROOTS[@]})) || die "apt-cache found no dependency closure for ${ROOTS[*]}" \
	"run 'apt-get update' first"
extra=(ca-certificates)
[[ "$shell" == 1 ]] && extra+=(busybox)
key="$(
	{
		sha256sum <"${BASH_SOURCE[0]}"
		echo "shell=$shell roots=${ROOTS[*]}"
		candidate_versions "${pkgs[@]}" "${extra[@]}" base-files
	} | sha256sum | cut -c1-16
)"
if [[ -f "$out.key" && "$(cat "$out.key")" == "$key" ]] &&
	"${oci[@]}" size "$out:$tag" >/dev/null 2>&1; then
	say "run image: up to date ($out:$tag, key $key)"
	echo "$out:$tag"
	exit 0
fi

t0=$SECONDS
work="$(mktemp -d "${TMPDIR:-/tmp}/zc-run-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$work/debs" "$root"

say "run image: downloading ${#pkgs[@]} packages + ${extra[*]}"
(cd "$work/debs" && apt-get download -q=2 -o APT::Sandbox::User=root \
	"${pkgs[@]}" "${extra[@]}" >/dev/null) ||
	die "apt-get download failed" "check that the Debian mirror is reachable (apt-get update)"
for d in "$work"/debs/*.deb; do
	dpkg -x "$d" "$root"
done
# From base-files only /etc/os-release: CNB targets read ID and VERSION_ID.
(cd "$work/debs" && apt-get download -q=2 -o APT::Sandbox::User=root base-files >/dev/null)
mkdir -p "$work/base" "$root/etc" "$root/usr/lib"
dpkg -x "$work"/debs/base-files_*.deb "$work/base"
cp "$work/base/usr/lib/os-release" "$root/usr/lib/os-release"
ln -sf ../usr/lib/os-release "$root/etc/os-release"
rm -f "$work"/debs/base-files_*.deb

# The CA bundle, as update-ca-certificates would write it.
mkdir -p "$root/etc/ssl/certs"
cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root/usr/sbin/update-ca-certificates" "$root/usr/share/ca-certificates" \
	"$root/etc/ca-certificates" "$root/etc/ca-certificates.conf"

# Nothing the function does not load.
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug,bash-completion} \
	"$root/usr/lib/x86_64-linux-gnu/gconv" "$root/etc/init.d" "$root/etc/logrotate.d"

if [[ "$shell" == 1 ]]; then
	ln -sf busybox "$root/bin/sh"
fi

# Users, name service, directories.
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
cnb:x:1000:1000:cnb:/home/cnb:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
cnb:x:1000:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
install -d -m 1777 "$root/tmp"
install -d -m 0755 -o 1000 -g 1000 "$root/home/cnb" "$root/workspace" "$root/layers"
echo 'include /etc/ld.so.conf.d/*.conf' >"$root/etc/ld.so.conf"
ldconfig -r "$root"
printf '%s\n' "${pkgs[@]}" "${extra[@]}" | sort -u >"$root/etc/zenith-c-run-packages.txt"

rm -rf "$out" "$out.key"
mkdir -p "$(dirname "$out")"
desc="Zenith C run image: Debian 12 libraries for libmicrohttpd, jansson, libcurl, SQLite and libpq, CA certificates, user cnb (1000), no shell"
[[ "${ROOTS[*]}" == "$DEFAULT_ROOTS" ]] ||
	desc="Zenith C run image (closure of ${ROOTS[*]}), CA certificates, user cnb (1000), no shell"
[[ "$shell" == 1 ]] && desc="${desc%, no shell}, busybox shell"
"${oci[@]}" init "$out:$tag"
"${oci[@]}" add-layer "$out:$tag" "$root" / --created-by \
	"zenith-c build-run-image.sh: ${#pkgs[@]} Debian 12 packages (dpkg -x), CA bundle, user cnb"
config="$(python3 -c 'import json, sys
print(json.dumps({
    "User": "1000:1000",
    "WorkingDir": "/workspace",
    "Env": ["PATH=/usr/local/bin:/usr/bin:/bin",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
    "Labels": {
        "io.buildpacks.base.distro.name": "debian",
        "io.buildpacks.base.distro.version": "12",
        "io.buildpacks.base.id": "zenith-c/run-debian-12",
        "io.buildpacks.base.maintainer": "Zenith C",
        "io.buildpacks.base.description": sys.argv[1],
        "io.buildpacks.base.released": sys.argv[2],
        "io.buildpacks.rebasable": "true",
    }}))' "$desc" "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
"${oci[@]}" config "$out:$tag" "$config"
echo "$key" >"$out.key"
say "run image: built $out:$tag in $((SECONDS - t0)) s; $(du -sh "$root" | cut -f1) on disk, $("${oci[@]}" size "$out:$tag") compressed"
echo "$out:$tag"
