#!/usr/bin/env bash
# The main demo: installs what it needs, builds libmmn (release) and runs
# `mmn-bench scaling`: one invalidation covering N simulated GPUs, single-pass
# against two-pass. It ends with the speed-up at the largest device count.
# Extra arguments go to mmn-bench (e.g. --plot scaling.svg, --driver svm).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
mmn_install_deps
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build/demo >/dev/null
exec build/demo/tools/mmn-bench scaling "$@"
