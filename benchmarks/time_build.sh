#!/bin/bash
# Times a full build of the C++ core (both modules, Release, as pip builds it)
# for each REF given, in the order given, each from scratch in its own folder:
#
#   bash benchmarks/time_build.sh REF [REF ...]        e.g.  cf7eecb HEAD cf7eecb HEAD
#
# Give the references interleaved (old new old new) so that a change in the
# machine's load falls on both. Needs cmake, ninja, pybind11 and cmeel-eigen in
# the active Python environment (the build dependencies of pyproject.toml).
# Prints, per build, the wall time, the CPU time (user + system, all compiler
# processes together) and the 1-minute load average before and after, then the
# five slowest compile steps from ninja's log. CPU time is what the build costs;
# wall time is what a user waits, and on a busy machine it says more about the
# other jobs than about the build.
#
# HSSLIN_KEEP_BUILDS=DIR keeps each build's modules in DIR/<n>-<ref>/ (for
# benchmarks/ab_core.py, which compares their products' speed).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 REF [REF ...]" >&2; exit 2; }
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=$(command -v python3)
pybind11_dir=$("$py" -m pybind11 --cmakedir)
jobs=${HSSLIN_BUILD_JOBS:-$(nproc)}
echo "full builds, ninja -j$jobs, $(nproc) CPUs, compiler $(c++ --version | head -1)"
printf '%-12s %10s %10s   %s\n' ref wall_s cpu_s "load before -> after"
i=0
for ref in "$@"; do
  i=$((i + 1))
  src=$work/src$i build=$work/build$i
  mkdir -p "$src"
  git -C "$repo" archive "$ref" | tar -x -C "$src"
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$py" \
    -Dpybind11_DIR="$pybind11_dir" > "$work/configure$i.log"
  l0=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%e %U %S' -o "$work/time$i" ninja -C "$build" -j"$jobs" > "$work/ninja$i.log"
  read -r wall user sys < "$work/time$i"
  printf '%-12s %10.1f %10.1f   %s -> %s\n' "$ref" "$wall" "$(echo "$user + $sys" | bc)" "$l0" \
    "$(cut -d' ' -f1 /proc/loadavg)"
  # ninja's log: start_ms end_ms mtime target hash; the slowest steps of this build.
  awk 'NR > 1 { printf "    %7.1f s  %s\n", ($2 - $1) / 1000, $4 }' "$build/.ninja_log" | sort -rn | head -5
  if [ -n "${HSSLIN_KEEP_BUILDS:-}" ]; then
    mkdir -p "$HSSLIN_KEEP_BUILDS/$i-$ref" && cp "$build"/_core*.so "$HSSLIN_KEEP_BUILDS/$i-$ref/"
  fi
  rm -rf "$src" "$build"
done
