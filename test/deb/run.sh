#!/usr/bin/env bash
# The Debian packages, end to end: builds them from a copy of the source tree
# with dpkg-buildpackage, fails on any lintian error, installs them, builds
# test/install_consumer.c and examples/rcache.c through pkg-config against the
# installed packages and runs them, checks the man pages and mmn-bench, then
# removes the packages again. Run by scripts/test.sh (a few minutes).
# Needs root (or sudo) to install; exit 77 with a reason where there is none.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
		echo "SKIP: installing packages needs root or password-less sudo"; exit 77
	fi
fi
pkgs=(libmmn0 libmmn-dev libmmn-preload mmn-tools)
for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		echo "FAIL: $p is installed already; this test would remove it"; exit 1
	fi
done

work=$(mktemp -d)
installed=0
cleanup() {
	if [ "$installed" = 1 ]; then $sudo dpkg -r "${pkgs[@]}" >/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# The tree as git sees it (tracked and new files, not build outputs); without
# git, everything but the build directories.
mkdir "$work/libmmn"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' |
		tar --null -T - -cf -) | tar -C "$work/libmmn" -xf -
else
	tar -C "$src" --exclude='./build*' --exclude='./out' -cf - . | tar -C "$work/libmmn" -xf -
fi

echo "deb: dpkg-buildpackage"
(cd "$work/libmmn" && DEB_BUILD_OPTIONS="parallel=$(nproc)" \
	dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) ||
	{ tail -50 "$work/build.log"; echo "FAIL: dpkg-buildpackage"; exit 1; }
ls "$work"/*.deb
echo "deb: the hooked munmap's code in one page of the optimised library"
cmake -DLIB="$(ls "$work"/libmmn/obj-*/libmmn.so.0.*)" -DNM=nm -DLIMIT=4096 \
	-P "$src/test/check_hot.cmake" || { echo "FAIL: hot text"; exit 1; }
echo "deb: lintian"
changes=$(ls "$work"/*.changes)
lintian --fail-on error "$changes" || { echo "FAIL: lintian reports errors"; exit 1; }

echo "deb: install"
installed=1
debs=()
for p in "${pkgs[@]}"; do debs+=("$work/${p}_"*.deb); done
$sudo dpkg -i "${debs[@]}" >/dev/null

for f in /usr/include/mmn.h /usr/include/mmn/rcache.h /usr/bin/mmn-bench; do
	[ -e "$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
for page in mmn_mm_new.3 mmn_rcache_get.3 libmmn.7 mmn-bench.1 libmmn-preload.so.8; do
	sec=${page##*.}
	[ -e "/usr/share/man/man$sec/$page.gz" ] || { echo "FAIL: man page $page"; exit 1; }
done
mmn-bench --help | grep -q '^usage: mmn-bench' || { echo "FAIL: mmn-bench --help"; exit 1; }

echo "deb: build and run against the installed packages"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$src/test/install_consumer.c" $(pkg-config --cflags --libs mmn) \
	-o "$work/consumer"
"$work/consumer"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$src/examples/rcache.c" $(pkg-config --cflags --libs mmn) \
	-o "$work/rcache"
rc=0
"$work/rcache" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then echo "FAIL: examples/rcache ($rc)"; exit 1; fi
# The preload, from where the package put it.
preload=$(dpkg -L libmmn-preload | grep '/libmmn-preload.so$')
out=$(env LD_PRELOAD="$preload" MMN_LOG=stderr /bin/true 2>&1)
grep -q 'process event sources installed' <<<"$out" ||
	{ echo "FAIL: the installed preload did not start: $out"; exit 1; }

echo "deb: remove"
$sudo dpkg -r "${pkgs[@]}" >/dev/null
installed=0
[ ! -e /usr/include/mmn.h ] || { echo "FAIL: /usr/include/mmn.h left behind"; exit 1; }
echo "deb: packages build, install, work and remove"
