#!/bin/sh
# build.sh - the two entry points of the README, for a Debian 12 machine, as root.
#
#   ./build.sh demo   install dependencies, build, run the local demo cluster
#   ./build.sh test   install dependencies, build with sanitizers, run every test
#                     (unit, each fuzz target for 12 s, integration)
#   ./build.sh build  build only (into ./build)
set -eu
cd "$(dirname "$0")"
jobs=$(nproc 2>/dev/null || echo 2)

build() { # build DIR [cmake options...]
	dir=$1
	shift
	cmake -S . -B "$dir" -DEFM_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j "$jobs"
}

case "${1:-}" in
demo)
	scripts/install-deps.sh
	build build
	exec scripts/demo.sh build
	;;
test)
	scripts/install-deps.sh
	scripts/check-format.sh
	build build-test -DEFM_SANITIZE=ON
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	(cd build-test && ctest --output-on-failure)
	# Every fuzz target for a few seconds: a crash, leak or hang fails the run.
	fuzz/run.sh 12
	EFM_BUILD_DIR=$PWD/build-test /usr/bin/python3 -m pytest -q -ra test/integration
	;;
build)
	build build
	;;
*)
	echo "usage: ./build.sh demo|test|build" >&2
	exit 2
	;;
esac
