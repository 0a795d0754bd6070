#!/usr/bin/env bash
# The main demo: installs what it needs, builds libmmn (release) and runs the
# device-mirror example.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
mmn_install_deps
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build/demo >/dev/null
exec build/demo/examples/mirror "$@"
