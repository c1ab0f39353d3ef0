#!/usr/bin/env bash
# mk/require-debian-packages.sh TARGET PACKAGE:PROBE...
#
# Makes sure the Debian packages a make target needs are installed, so that
# `make demo` and `make test` work on a fresh machine with nothing else
# typed. PROBE is a command name (looked up on PATH) or an absolute path
# that the package provides; a package whose probe is found is left alone.
#
# Missing packages are installed with apt-get when this runs as root or with
# passwordless sudo, each announced on one line:
#   installing Debian package spin (needed by model-check)
# Otherwise the target fails at once, naming the exact command to run.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 TARGET PACKAGE:PROBE..." >&2
  exit 2
fi
target=$1
shift

# The packages of "$@" whose probe is not found, one per line.
absent() {
  local spec probe
  for spec in "$@"; do
    probe=${spec#*:}
    case $probe in
      /*) [ -e "$probe" ] && continue ;;
      *) command -v "$probe" >/dev/null 2>&1 && continue ;;
    esac
    echo "${spec%%:*}"
  done
}

mapfile -t missing < <(absent "$@")
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "$target: needs ${missing[*]} (Debian package names), and this machine has no apt-get: install them with its package manager" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "$target: needs the Debian package(s) ${missing[*]}, and this user cannot install them (not root, no passwordless sudo): run" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

for pkg in "${missing[@]}"; do
  echo "installing Debian package $pkg (needed by $target)"
done
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# A fresh machine may have no package lists yet: update them once, here.
# Another apt run holding dpkg's lock is waited for, not an error.
apt=(apt-get -o DPkg::Lock::Timeout=600)
if ! "${sudo[@]}" "${apt[@]}" update -qq >"$log" 2>&1 ||
   ! "${sudo[@]}" "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
  echo "$target: apt-get could not install ${missing[*]}:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
mapfile -t still < <(absent "$@")
if [ ${#still[@]} -ne 0 ]; then
  echo "$target: apt-get installed ${missing[*]} but ${still[*]} still provide nothing here (see the probes in the Makefile)" >&2
  exit 1
fi
