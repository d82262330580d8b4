#!/usr/bin/env bash
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# link-pythons.sh DIR VERSIONS_DIR X.Y...: make DIR hold python<X.Y> -> the newest VERSIONS_DIR/<X.Y>.*/bin/python<X.Y>
# for every version asked, and nothing else, so that DIR put first on PATH lets ansible-test find each target Python
# by name (pyenv's shims on PATH would run pyenv's global version, or fail). Fails naming every version not found.
set -euo pipefail
dir=$1 versions_dir=$2
shift 2
rm -rf "$dir"
mkdir -p "$dir"
missing=()
for version in "$@"; do
  # The glob stays as written when nothing matches; sort -V puts 3.6.15 after 3.6.9.
  python=$(printf '%s\n' "$versions_dir/$version".*/bin/"python$version" | sort -V | tail -n 1)
  if [ ! -x "$python" ]; then
    missing+=("$version")
    continue
  fi
  ln -s "$python" "$dir/python$version"
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "link-pythons.sh: no Python ${missing[*]} under $versions_dir (pyenv install <version>)" >&2
  exit 1
fi
