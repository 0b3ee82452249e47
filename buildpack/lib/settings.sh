# shellcheck shell=bash
# settings.sh - sourced by bin/detect and bin/build: reads the BP_*
# settings and finds the function's source folder.  Every setting, its
# default and its meaning are listed in buildpack/README.md.

# setting NAME DEFAULT: the value of a BP_* setting.  The lifecycle passes a
# user's build-time variable both in the environment and as the file
# <platform>/env/NAME; the environment wins, the file is the fallback for
# platforms that set clear-env or only write files.
setting() {
	local name="$1" def="$2" file
	if [[ -n "${!name+x}" ]]; then
		printf '%s' "${!name}"
		return
	fi
	file="${CNB_PLATFORM_DIR:-${platform:-}}/env/$name"
	if [[ -n "${CNB_PLATFORM_DIR:-${platform:-}}" && -f "$file" ]]; then
		cat "$file"
		return
	fi
	printf '%s' "$def"
}

# source_dir: BP_ZC_SOURCE_DIR checked and normalised ("." for the app
# root).  Prints the reason and returns 1 when it is absolute, leaves the
# app directory, or is not a directory.
source_dir() {
	local dir part
	dir="$(setting BP_ZC_SOURCE_DIR .)"
	dir="${dir%/}"
	[[ -z "$dir" ]] && dir=.
	if [[ "$dir" == /* ]]; then
		echo "BP_ZC_SOURCE_DIR=\"$dir\" must be relative to the app directory"
		return 1
	fi
	local IFS=/
	for part in $dir; do
		if [[ "$part" == .. ]]; then
			echo "BP_ZC_SOURCE_DIR=\"$dir\" must stay inside the app directory (no '..')"
			return 1
		fi
	done
	if [[ ! -d "$dir" ]]; then
		echo "BP_ZC_SOURCE_DIR=\"$dir\" is not a directory in the app"
		return 1
	fi
	printf '%s' "$dir"
}

# func_yaml_name DIR...: the function's name from the first of DIR/func.yaml
# that has one, for BP_ZC_FUNCTION_NAME's default.  `func create` writes
# func.yaml, with the top-level key "name", into the folder `func build`
# hands to pack as the app (knative/func pkg/functions/function.go, Name,
# pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$); a template's manifest cannot
# carry the name, since func copies its buildEnvs into every function
# as they are (pkg/functions/template.go, Write).  Prints nothing when no
# func.yaml names a valid one.
func_yaml_name() {
	local dir line v
	for dir in "$@"; do
		[[ -f "$dir/func.yaml" ]] || continue
		line="$(grep -m1 -E '^name:' "$dir/func.yaml" || true)"
		v="${line#name:}"
		v="${v%%#*}"
		v="${v//[[:space:]]/}"
		v="${v#[\"\']}"
		v="${v%[\"\']}"
		if [[ "$v" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]]; then
			printf '%s' "$v"
			return
		fi
	done
}

# is_test_source FILE: test files carry their own main() and are never
# part of the function (test_*.c, *_test.c).
is_test_source() {
	local base="${1##*/}"
	[[ "$base" == test_*.c || "$base" == *_test.c ]]
}

# The detect rule: a line that starts a definition of the runtime's entry
# point, "int zc_function_setup(" or (return type on its own line)
# "zc_function_setup(", at the start of the line.
# shellcheck disable=SC2034 # used by bin/detect
ENTRY_RE='^(int[[:space:]]+)?zc_function_setup[[:space:]]*\('

# function_sources DIR: the .c files compiled into the function, one a
# line, sorted: every .c file directly in DIR except the test files.
function_sources() {
	local f
	for f in "$1"/*.c; do
		[[ -f "$f" ]] || continue
		is_test_source "$f" && continue
		printf '%s\n' "$f"
	done
}

# toml_string S: S as a TOML basic string.
toml_string() {
	local s="$1"
	s="${s//\\/\\\\}"
	s="${s//\"/\\\"}"
	s="${s//$'\t'/\\t}"
	s="${s//$'\n'/\\n}"
	s="${s//$'\r'/\\r}"
	printf '"%s"' "$s"
}
