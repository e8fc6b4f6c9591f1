#!/bin/bash
# Times the README's main job from a fresh clone and a fresh venv, phase by phase:
#   pip install torch==2.13.0 && pip install ".[torch]" && hsslin demo
#
#   bash benchmarks/time_main_job.sh [REF] [WORKDIR]
#
# REF (default HEAD) is checked out from this repository into WORKDIR/clone (default
# a new temporary folder); the venv is WORKDIR/venv. Prints one line per phase with
# its wall time and the 1-minute load average before and after it: the figures mean
# something only on a quiet machine (load average near 0), so say which it was.
set -euo pipefail
ref=${1:-HEAD}
work=${2:-$(mktemp -d)}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
git clone -q "$repo" "$work/clone"
git -C "$work/clone" checkout -q "$ref"
python3 -m venv "$work/venv"
. "$work/venv/bin/activate"
cd "$work/clone"
phase() {
  local name=$1; shift
  local l0 t0 t1
  l0=$(cut -d' ' -f1 /proc/loadavg); t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  printf '%-16s %8.1f s   load %s -> %s\n' "$name" "$(echo "$t1 - $t0" | bc)" "$l0" "$(cut -d' ' -f1 /proc/loadavg)"
}
echo "main job of $(git rev-parse --short HEAD) in $work ($(nproc) CPUs)"
phase "torch" pip install -q torch==2.13.0
phase "hsslin[torch]" pip install -q ".[torch]"
phase "hsslin demo" hsslin demo > "$work/demo.txt"
echo "demo output: $work/demo.txt"
