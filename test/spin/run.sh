#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Model-check src/core/notifier.pml with spin: every configuration must verify
# with no error, and every planted bug (mutant) must make spin report one.
#
#   test/spin/run.sh            run everything
#   test/spin/run.sh NAME...    run only these checks (see --list)
#   test/spin/run.sh --list     list the checks
#
# Environment: CC (default cc); MMN_SPIN_NO_INSTALL=1 never runs apt-get;
# MMN_SPIN_KEEP=1 keeps the work directory (pan sources, trails).
# Exit status: 0 all as expected, 1 something unexpected, 77 spin or a C
# compiler is missing and cannot be installed (CTest reports a skip).
# The last line is "spin: N passed, M failed".

set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model=$(cd "$here/../../src/core" 2>/dev/null && pwd)/notifier.pml
CC=${CC:-cc}

# name | kind | spin -D flags | what it is
# kind: safety (assertions + invalid end states), term (no cycle at all, so
# every run terminates), bug (a mutant: spin must report an error).
checks=(
"overlap|safety||2 overlapping invalidators, reader of n0 (2 faults), n1 inserted/removed twice"
"periods|safety|-DNINV=1 -DKINV=4|4 periods in a row (the sequence wraps), reader, n1 twice"
"busy|safety|-DKINV=2 -DNFAULT=1 -DNLIFE=1|2 invalidators x 2 regions, 1 fault, n1 once"
"nonblock|safety|-DNONBLOCK=1 -DNFAULT=1|non-blockable regions whose callbacks may fail (-EAGAIN)"
"mixed|safety|-DTWOPASS=1|n1 single-pass, n0 two-pass"
"term-overlap|term||no cycle in overlap: every run ends, nothing waits forever"
"term-periods|term|-DNINV=1 -DKINV=4|no cycle in periods"
"mut1|bug|-DMUT=1|read_begin never waits"
"mut2|bug|-DMUT=2|remove of an in-tree notifier while seq is odd does not defer"
"mut3|bug|-DMUT=3|insert while partially excluded leaves seq even"
"mut4|bug|-DMUT=4|inv_end does not broadcast"
"mut5|bug|-DMUT=5|the finish pass loses its first entry"
"mut6|bug|-DMUT=6|the first _end of an odd period ends it"
"mut7|bug|-DMUT=7|read_begin loads the domain seq before the notifier's"
"mut8|bug|-DMUT=8|insert ignores lock-free regions"
"mut9|bug|-DMUT=9|a lock-free region's end never ends the period"
"mut10|bug|-DMUT=10|inv_end ends the period while lock-free regions are open"
"mut11|bug|-DMUT=11|the end of a period ignores lock-free regions opened while it applied the deferred list"
"wrap8|bug|-DSEQMOD=8 -DNINV=1 -DKINV=4 -DNFAULT=1 -DNLIFE=0|4 periods between read_begin and read_retry with seq mod 8 (ABA)"
)

if [ "${1:-}" = "--list" ]; then
	for c in "${checks[@]}"; do
		IFS='|' read -r name kind defs what <<<"$c"
		printf '%-14s %-6s %s\n' "$name" "$kind" "$what"
	done
	exit 0
fi

skip() {
	echo "spin: skipped: $*"
	exit 77
}

if ! command -v spin >/dev/null 2>&1; then
	if [ "${MMN_SPIN_NO_INSTALL:-0}" != 1 ] && [ "$(id -u)" = 0 ] &&
	   command -v apt-get >/dev/null 2>&1; then
		echo "spin: not installed; installing it with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y --no-install-recommends spin >/dev/null 2>&1 ||
			{ apt-get update >/dev/null 2>&1 &&
			  apt-get install -y --no-install-recommends spin >/dev/null 2>&1; }
	fi
	command -v spin >/dev/null 2>&1 || skip "spin is not installed (Debian: apt-get install spin)"
fi
command -v "$CC" >/dev/null 2>&1 || skip "no C compiler ($CC)"
[ -r "$model" ] || { echo "spin: cannot read $model"; echo "spin: 0 passed, 1 failed"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mmn-spin.XXXXXX") || exit 1
if [ "${MMN_SPIN_KEEP:-0}" = 1 ]; then
	echo "spin: work directory $work"
else
	trap 'rm -rf "$work"' EXIT
fi
cp "$model" "$work/notifier.pml"

echo "spin: $(spin -V 2>&1 | head -n1); model $model"

passed=0
failed=0
ran=0

# run_check NAME KIND DEFS WHAT
run_check() {
	local name=$1 kind=$2 defs=$3 what=$4 dir="$work/$1"
	local ccflags panflags out errors stored depth mem secs reason

	mkdir -p "$dir"
	cp "$work/notifier.pml" "$dir/"
	case $kind in
	term)	ccflags="-DNP"; panflags="-l" ;;
	*)	ccflags="-DSAFETY"; panflags="" ;;
	esac
	# shellcheck disable=SC2086
	if ! (cd "$dir" && spin $defs -a notifier.pml >spin.log 2>&1); then
		echo "FAIL $name: spin -a failed"; sed 's/^/  /' "$dir/spin.log" | tail -n 20
		failed=$((failed + 1)); return
	fi
	# shellcheck disable=SC2086
	if ! (cd "$dir" && "$CC" -O2 -w $ccflags -DCOLLAPSE -DMEMLIM=4096 -o pan pan.c >cc.log 2>&1); then
		echo "FAIL $name: compiling pan.c failed"; sed 's/^/  /' "$dir/cc.log" | tail -n 20
		failed=$((failed + 1)); return
	fi
	# shellcheck disable=SC2086
	(cd "$dir" && ./pan -m20000 $panflags >pan.log 2>&1)
	out=$dir/pan.log
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | tail -n1)
	stored=$(awk '/states, stored/ { print $1; exit }' "$out")
	depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$out" | tail -n1)
	mem=$(awk '/total actual memory usage/ { print $1; exit }' "$out")
	secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\).*/\1/p' "$out")
	ran=$((ran + 1))

	if [ -z "$errors" ]; then
		echo "FAIL $name: pan produced no result"; tail -n 20 "$out" | sed 's/^/  /'
		failed=$((failed + 1)); return
	fi
	if [ "$kind" = bug ]; then
		if [ "$errors" -gt 0 ]; then
			reason=$(grep -m1 -E '^pan:[0-9]+: ' "$out" | sed 's/^pan:[0-9]*: //')
			[ -n "$reason" ] || reason="error reported"
			echo "PASS $name ($what): spin found: $reason"
			passed=$((passed + 1))
		else
			echo "FAIL $name ($what): spin found no error in $stored states"
			failed=$((failed + 1))
		fi
		return
	fi
	if [ "$errors" -ne 0 ]; then
		echo "FAIL $name ($what): $(grep -m1 -E '^pan:[0-9]+: ' "$out")"
		if [ -f "$dir/notifier.pml.trail" ]; then
			echo "  counterexample (last steps):"
			# shellcheck disable=SC2086
			(cd "$dir" && spin $defs -t -p -g notifier.pml 2>&1) | tail -n 40 | sed 's/^/  /'
		fi
		failed=$((failed + 1)); return
	fi
	if grep -qE 'Search not completed|max search depth too small|out of memory' "$out"; then
		echo "FAIL $name ($what): search incomplete:"
		grep -E 'Search not completed|max search depth too small|out of memory' "$out" | sed 's/^/  /'
		failed=$((failed + 1)); return
	fi
	echo "PASS $name: $stored states, depth $depth, $mem MB, ${secs}s ($what)"
	passed=$((passed + 1))
}

for c in "${checks[@]}"; do
	IFS='|' read -r name kind defs what <<<"$c"
	if [ $# -gt 0 ]; then
		want=0
		for a in "$@"; do [ "$a" = "$name" ] && want=1; done
		[ $want = 1 ] || continue
	fi
	run_check "$name" "$kind" "$defs" "$what"
done

if [ $# -gt 0 ] && [ $((passed + failed)) -eq 0 ]; then
	echo "spin: no check named $*"
	failed=1
fi
echo "spin: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
