#!/usr/bin/env bash
# Differential fuzzing of the core: fuzz/core_fuzzer.c runs operation
# sequences decoded from libFuzzer's input against the reference model of
# test/model/. Builds the target with clang, ASan and UBSan in build/fuzz,
# runs it on a copy of fuzz/corpus/ for a bounded time and ends with one line:
#   fuzz: N runs in T s, C crashes
#
#   scripts/fuzz.sh [SECONDS]             default 60
#   scripts/fuzz.sh --plant N [SECONDS]   the same target over a copy of the
#        core with bug N planted (list: fuzz/CMakeLists.txt), started from an
#        empty corpus, so the time is what the fuzzer needs to find it alone
#
# Exit status: 0 nothing found (with --plant: the planted bug was found);
# 1 a crash (with --plant: the bug survived); 2 it could not build or run.
# A crashing input is kept in build/fuzz/run/artifacts/; replay it with
#   MMN_FUZZ_TRACE=1 build/fuzz/fuzz/core_fuzzer FILE
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
. scripts/deps.sh

plant=""
if [ "${1:-}" = "--plant" ]; then
	plant=${2:-}
	shift 2 || true
	[[ "$plant" =~ ^[0-9]+$ ]] || { echo "usage: $0 [--plant N] [SECONDS]"; exit 2; }
fi
secs=${1:-60}
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [--plant N] [SECONDS]"; exit 2; }

# clang, and its compiler-rt (libFuzzer, ASan, UBSan): a recommended package
# that --no-install-recommends leaves out.
probe_libfuzzer() {
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
		clang -fsanitize=fuzzer,address,undefined -x c - -o /dev/null >/dev/null 2>&1
}
if command -v clang >/dev/null; then
	mmn_install_deps || { echo "fuzz: installing dependencies failed"; exit 2; }
else
	mmn_install_deps clang || { echo "fuzz: installing clang failed"; exit 2; }
fi
if ! probe_libfuzzer; then
	major=$(clang -dumpversion | cut -d. -f1)
	if ! mmn_install_deps "libclang-rt-$major-dev" || ! probe_libfuzzer; then
		echo "fuzz: clang cannot link -fsanitize=fuzzer,address,undefined"
		exit 2
	fi
fi

dir=build/fuzz
target=core_fuzzer${plant:+_plant$plant}
mkdir -p build
echo "=== fuzz: configure and build $target"
CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DMMN_DEBUG=2 -DMMN_WERROR=ON -DMMN_SANITIZE=address,undefined \
	-DMMN_FUZZ=ON -DMMN_FUZZ_PLANT="$plant" \
	-DBUILD_TESTING=OFF -DMMN_BUILD_EXAMPLES=OFF -DMMN_BUILD_BENCH=OFF \
	>"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 2; }
# Only the fuzz target: it compiles the core itself (with coverage feedback).
if ! cmake --build "$dir" --target "$target" >"$dir.build.log" 2>&1; then
	cat "$dir.build.log"
	grep -q "unknown target" "$dir.build.log" &&
		echo "fuzz: no target $target: does CMakeLists.txt add fuzz/ when MMN_FUZZ is on?"
	echo "fuzz: building $target failed"
	exit 2
fi

run=$dir/run
rm -rf "$run"
mkdir -p "$run/corpus" "$run/artifacts"
if [ -z "$plant" ]; then
	cp fuzz/corpus/* "$run/corpus/"		# libFuzzer adds to it: never the committed one
fi
echo "=== fuzz: $target for $secs s on $(find "$run/corpus" -type f | wc -l) seed inputs"
t0=$(date +%s%N)
MMN_FUZZ_STATS=1 "$dir/fuzz/$target" -max_total_time="$secs" -timeout=10 \
	-print_final_stats=1 -artifact_prefix="$run/artifacts/" "$run/corpus" \
	>"$run/log" 2>&1
rc=$?
t1=$(date +%s%N)
# The log without libFuzzer's progress lines.
grep -v -E '^#[0-9]+|NEW_FUNC|^"|Recommended dictionary|End of recommended' "$run/log"

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -1)
[ -n "$runs" ] || runs=$(grep -oE '^#[0-9]+' "$run/log" | tail -1 | tr -d '#')
[ -n "$runs" ] || runs=0
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
crashes=$(find "$run/artifacts" -type f | wc -l)
if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
	crashes=1		# it died without saving an input
fi
for f in "$run/artifacts"/*; do
	[ -f "$f" ] && echo "fuzz: input kept: $f (replay: MMN_FUZZ_TRACE=1 $dir/fuzz/$target $f)"
done

if [ -n "$plant" ]; then
	what=$(sed -n "s/^-- fuzz: $target: //p" "$dir.configure.log")
	if [ "$crashes" -gt 0 ]; then
		echo "fuzz: planted bug $plant ($what) found"
	else
		echo "fuzz: planted bug $plant ($what) NOT found"
	fi
fi
echo "fuzz: $runs runs in $elapsed s, $crashes crashes"
if [ -n "$plant" ]; then
	[ "$crashes" -gt 0 ] && exit 0
	exit 1
fi
[ "$crashes" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0
exit 1
