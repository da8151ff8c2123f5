#!/usr/bin/env bash
# Install the Debian/Ubuntu packages that turnwise (and the extras you ask for) need.
#
#   scripts/install-system-deps.sh [OPTIONS] [EXTRA ...]
#
# EXTRA is a pip extra of turnwise (`web`, `gui`, ...; commas work too, as in `dev,web`); `all`
# means every extra. The core's packages are always included. Extras without system packages
# (`dev`, `train`, ...) need nothing here.
#
# Options:
#   --check   install nothing; list what is missing and exit 1 if anything is
#   --print   print the packages the given extras need, one per line, and exit
#   -h        this help
#
# Idempotent: when every package is present it does nothing (no apt, no root needed). Otherwise
# it runs `apt-get update` once and installs only the missing packages, as root directly or
# through sudo.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# The data: one line per extra, then the apt packages it needs. The core needs none yet; each
# family adds its line when it lands (e.g. `web chromium`, `gui xvfb`, `swe bubblewrap`).
PACKAGE_TABLE='
core
text build-essential cmake
web chromium
gui xvfb matchbox-window-manager mousepad gnumeric fonts-dejavu-core dbus-daemon at-spi2-core libatk-adaptor
swe bubblewrap git
'
# ---------------------------------------------------------------------------------------------

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

mode=install
extras=(core)
while (($#)); do
  case "$1" in
    --check) mode=check ;;
    --print) mode=print ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "install-system-deps: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) IFS=', ' read -r -a more <<<"$1"; extras+=("${more[@]}") ;;
  esac
  shift
done

# packages_for EXTRA: the packages of one extra (every extra's for `all`; none for an extra the
# table does not list, since pure-Python extras have no system packages).
packages_for() {
  local wanted=$1 name rest
  while read -r name rest; do
    [[ -z $name || $name == \#* ]] && continue
    if [[ $wanted == all || $wanted == "$name" ]]; then
      echo "$rest"
    fi
  done <<<"$PACKAGE_TABLE"
}

wanted=()
for extra in "${extras[@]}"; do
  [[ -n $extra ]] || continue
  for pkg in $(packages_for "$extra"); do
    [[ " ${wanted[*]-} " == *" $pkg "* ]] || wanted+=("$pkg")
  done
done

if [[ $mode == print ]]; then
  ((${#wanted[@]})) && printf '%s\n' "${wanted[@]}"
  exit 0
fi

is_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

missing=()
if ((${#wanted[@]})); then
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-system-deps: not a Debian-based system; install these yourself: ${wanted[*]}" >&2
    exit 1
  fi
  for pkg in "${wanted[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
  done
fi

if ((${#missing[@]} == 0)); then
  echo "install-system-deps: nothing to install (extras: ${extras[*]})"
  exit 0
fi
if [[ $mode == check ]]; then
  echo "install-system-deps: missing: ${missing[*]}" >&2
  exit 1
fi

if [[ $(id -u) == 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-system-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-system-deps: installing ${missing[*]}"
# `env` carries DEBIAN_FRONTEND through sudo, which would otherwise drop it and let apt prompt.
"${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
