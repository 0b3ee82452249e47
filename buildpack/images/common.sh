# shellcheck shell=bash
# common.sh - sourced by the image scripts (build-run-image.sh,
# build-build-image.sh, ../lifecycle/image.sh, tests/image): where the cache
# lives, and podman/buildah settings that work on a machine without a
# Docker engine.  The system's /etc/containers is never touched: the
# settings are files under the cache, exported per process.
#
#   ZC_CACHE_DIR       cache root (default /var/cache/zenith-c when writable,
#                      else <repo>/build/cache): container storage holding
#                      the build image, debootstrap's .debs
#   ZC_STORAGE_DRIVER  overlay (default) or vfs; vfs is chosen by itself
#                      when the cache sits on overlayfs

ZC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [[ -z "${ZC_CACHE_DIR:-}" ]]; then
	if mkdir -p /var/cache/zenith-c 2>/dev/null && [[ -w /var/cache/zenith-c ]]; then
		ZC_CACHE_DIR=/var/cache/zenith-c
	else
		ZC_CACHE_DIR="$ZC_ROOT/build/cache"
	fi
fi
mkdir -p "$ZC_CACHE_DIR/containers"
export ZC_CACHE_DIR

say() { printf '%s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$1" >&2
	[[ -n "${2:-}" ]] && printf 'hint: %s\n' "$2" >&2
	exit 1
}

# The Debian mirror apt uses on this machine.
debian_mirror() {
	local m=""
	if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
		m="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"
	fi
	if [[ -z "$m" && -f /etc/apt/sources.list ]]; then
		m="$(awk '$1 == "deb" && $0 !~ /security/ { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list)"
	fi
	printf '%s' "${m:-http://deb.debian.org/debian}"
}

# candidate_versions PKG...: "pkg=version" lines, what apt would install
# now; part of the image cache keys, so a Debian update rebuilds them.
candidate_versions() {
	apt-cache policy "$@" 2>/dev/null | awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p $2 }'
}

# podman and buildah configuration: runc (crun refuses hybrid cgroups),
# rlimits below the hard limits, host network by default (never the CNI
# bridge), cgroupfs and file events (no systemd).
containers_setup() {
	local dir="$ZC_CACHE_DIR/containers" driver="${ZC_STORAGE_DRIVER:-}"
	if [[ -z "$driver" ]]; then
		driver=overlay
		[[ "$(stat -f -c %T "$dir" 2>/dev/null)" == overlayfs ]] && driver=vfs
	fi
	cat >"$dir/containers.conf.new" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
netns = "host"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
	cat >"$dir/storage.conf.new" <<EOF
[storage]
driver = "$driver"
runroot = "/run/zenith-c/containers"
graphroot = "$dir/storage"
EOF
	mv -f "$dir/containers.conf.new" "$dir/containers.conf"
	mv -f "$dir/storage.conf.new" "$dir/storage.conf"
	export CONTAINERS_CONF="$dir/containers.conf"
	export CONTAINERS_STORAGE_CONF="$dir/storage.conf"
}

# need TOOL...: fail with the install line when a tool is missing.
need() {
	local t missing=()
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	((${#missing[@]} == 0)) ||
		die "missing ${missing[*]}" "run 'make deps-image' (installs the Debian packages the image targets use)"
}
