#!/usr/bin/env bash
# build-build-image.sh - the Zenith C build image, in the local container
# storage (see common.sh) as localhost/zenith-c/build:<key>, also tagged
# localhost/zenith-c/build:bookworm.  Debian 12 minbase (debootstrap) with
# the toolchain and the -dev packages of the runtime's libraries, the CNB
# build user cnb (1001:1001, CNB_USER_ID / CNB_GROUP_ID) and the CNB
# build-image labels.
#
# The image is kept between runs: when the script and the Debian package
# versions are unchanged, nothing is done (well under a second).  A cold
# build takes about 1.5-2 minutes, most of it debootstrap; its .debs are
# kept under the cache, so a rebuild downloads only what changed.
# Prints the image reference on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need apt-cache debootstrap podman runc chroot
containers_setup

# The runtime compiles against the headers of every library it uses;
# libcurl, libsqlite3, libpq and zlib (the trace exporter's gzip) are
# loaded with dlopen, so their -dev packages are there for the headers
# (and for BP_ZC_BUNDLE_LIBS to find the shared libraries), not for
# linking.
PKGS=(build-essential pkg-config libmicrohttpd-dev libjansson-dev
      libcurl4-openssl-dev libsqlite3-dev libpq-dev zlib1g-dev
      ca-certificates)
UID_GID=1001
repo=localhost/zenith-c/build

key="$(
	{
		sha256sum <"${BASH_SOURCE[0]}"
		candidate_versions "${PKGS[@]}" gcc-12 libc6-dev libmicrohttpd12 \
			libjansson4 libcurl4 libsqlite3-0 libpq5
	} | sha256sum | cut -c1-16
)"
ref="$repo:$key"
if podman image exists "$ref"; then
	say "build image: up to date ($ref)"
	echo "$ref"
	exit 0
fi

# One build at a time; a second caller waits, then finds the image.
exec 9>"$ZC_CACHE_DIR/build-image.lock"
flock 9
if podman image exists "$ref"; then
	echo "$ref"
	exit 0
fi

t0=$SECONDS
# The prepared tree is kept until the import succeeds, so a failed import
# does not cost another debootstrap.
root="$ZC_CACHE_DIR/build-rootfs"
debs="$ZC_CACHE_DIR/debootstrap-debs"
mkdir -p "$debs"
unmount_proc() {
	# Never delete through a mount.
	if mountpoint -q "$root/proc" 2>/dev/null; then
		umount "$root/proc"
	fi
}
trap unmount_proc EXIT

if [[ -f "$root/.zenith-c-prepared" && "$(cat "$root/.zenith-c-prepared")" == "$key" ]]; then
	say "build image: reusing the prepared tree $root"
else
	unmount_proc
	rm -rf "$root"
	mirror="$(debian_mirror)"
	say "build image: debootstrap --variant=minbase bookworm from $mirror"
	debootstrap --variant=minbase --cache-dir="$debs" bookworm "$root" "$mirror" \
		>"$ZC_CACHE_DIR/debootstrap.log" 2>&1 ||
		die "debootstrap failed (log: $ZC_CACHE_DIR/debootstrap.log)" \
			"check that the Debian mirror $mirror is reachable"
	say "build image: minbase in $((SECONDS - t0)) s; installing ${PKGS[*]}"

	# The same suites as this machine (updates and security included), so the
	# build image links against the library versions the run image carries.
	if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
		cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
		: >"$root/etc/apt/sources.list"
	fi
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	mount -t proc proc "$root/proc"
	chroot "$root" /bin/sh -ec "
		export DEBIAN_FRONTEND=noninteractive LC_ALL=C
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends ${PKGS[*]} >/dev/null
		apt-get clean
		rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
		rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/*
		groupadd -g $UID_GID cnb
		useradd -u $UID_GID -g $UID_GID -m -d /home/cnb -s /bin/bash cnb
		install -d -m 0755 -o $UID_GID -g $UID_GID /workspace /layers
		install -d -m 0755 /cnb /cnb/buildpacks /platform
	" >"$ZC_CACHE_DIR/build-image-apt.log" 2>&1 ||
		die "installing the toolchain in the build image failed (log: $ZC_CACHE_DIR/build-image-apt.log)" ""
	umount "$root/proc"
	: >"$root/etc/resolv.conf"
	echo "$key" >"$root/.zenith-c-prepared"
	say "build image: toolchain in $((SECONDS - t0)) s"
fi
say "build image: importing"

released="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
tar -C "$root" --numeric-owner --exclude=./.zenith-c-prepared -cf - . |
	podman import -q \
		--change "USER $UID_GID:$UID_GID" \
		--change "WORKDIR /workspace" \
		--change "ENV PATH=/usr/local/bin:/usr/bin:/bin" \
		--change "ENV CNB_USER_ID=$UID_GID" \
		--change "ENV CNB_GROUP_ID=$UID_GID" \
		--change "ENV HOME=/home/cnb" \
		--change "LABEL io.buildpacks.base.distro.name=debian" \
		--change "LABEL io.buildpacks.base.distro.version=12" \
		--change "LABEL io.buildpacks.base.maintainer=\"Zenith C\"" \
		--change "LABEL io.buildpacks.base.description=\"Zenith C build image: Debian 12, build-essential, pkg-config, libmicrohttpd/jansson/libcurl/sqlite3/libpq -dev packages, user cnb (1001)\"" \
		--change "LABEL io.buildpacks.base.released=$released" \
		--change "LABEL zenith-c.build-image.key=$key" \
		- "$ref" >/dev/null
rm -rf "$root"
podman tag "$ref" "$repo:bookworm"
# Older keys are dead weight in the storage.
podman images --format '{{.Repository}}:{{.Tag}}' "$repo" 2>/dev/null |
	grep -v -e ":$key\$" -e ':bookworm$' | xargs -r podman rmi -f >/dev/null 2>&1 || true
say "build image: $ref in $((SECONDS - t0)) s, $(podman image inspect --format '{{.Size}}' "$ref" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
echo "$ref"
