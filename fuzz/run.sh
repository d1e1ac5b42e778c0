#!/bin/sh
# fuzz/run.sh SECONDS - build the libFuzzer targets with clang and run each
# for SECONDS, starting from a seed corpus made of test/unit/data.
#
# Without clang it says so and exits 0: fuzzing is optional.  The build goes
# to build-fuzz/ (or $EFM_FUZZ_BUILD), the corpus each run grows and any
# crashing input to build-fuzz/fuzz-work/.  Exits 1 when a target failed.
set -eu

secs=${1:?usage: fuzz/run.sh SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${EFM_FUZZ_BUILD:-$root/build-fuzz}
work=$build/fuzz-work
data=$root/test/unit/data

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz/run.sh: clang is not installed; nothing fuzzed (apt-get install clang)"
	exit 0
fi

CC=clang cmake -S "$root" -B "$build" -DEFM_FUZZ=ON -DEFM_SANITIZE=ON >/dev/null
cmake --build "$build" -j2 --target fuzz_props fuzz_config fuzz_frame fuzz_admin >/dev/null

# Seeds: the unit tests' configuration files, in each target's input format.
mkdir -p "$work/seeds/props" "$work/seeds/config" "$work/seeds/frame" "$work/seeds/admin"
for f in "$data"/*; do
	name=$(basename "$f")
	cp "$f" "$work/seeds/props/$name"
	case $name in
	*.yaml) { printf 'Y'; cat "$f"; } >"$work/seeds/config/$name" ;;
	*.properties)
		nodes=$data/${name%.properties}.nodes
		{
			printf 'P'
			cat "$f"
			if [ -f "$nodes" ]; then
				printf '\n%%%%nodes%%%%\n'
				cat "$nodes"
			fi
		} >"$work/seeds/config/$name"
		;;
	esac
done
# A frame: one byte of read size, a 4-byte big-endian length, a JSON object.
frame_seed() {
	len=$(printf '%s' "$2" | wc -c)
	printf "$1\\$(printf '%03o' $((len >> 24 & 255)))\\$(printf '%03o' $((len >> 16 & 255)))"
	printf "\\$(printf '%03o' $((len >> 8 & 255)))\\$(printf '%03o' $((len & 255)))"
	printf '%s' "$2"
}
frame_seed '\003' '{"type":"join","id":"00000000000000ab","address":"127.0.0.2:7800","role":1}' \
	>"$work/seeds/frame/join"
frame_seed '\377' '{"type":"heartbeat","xlog":"0/3000060","db":1,"info":""}' \
	>"$work/seeds/frame/heartbeat"

# Admin requests: one line each, as efm sends them and as nobody should.
n=0
for req in '{"command":"cluster-status-json","args":[]}' \
	'{"command":"add-node","args":["10.0.0.9","1"]}' \
	'{"command":"allow-node","args":["[fe80::1%eth0]:7800"]}' \
	'{"command":"set-priority","args":["db-2.example.com:7800","1000000"]}' \
	'{"command":"remove-node","args":["%n%n%n%s%s"]}' \
	'{"command":"promote","args":["-switchover"]}' \
	'{"command":"disallow-node","args":[7,"99999999999999"]}' \
	'{"command":"stop-cluster"}'; do
	n=$((n + 1))
	printf '%s' "$req" >"$work/seeds/admin/req$n"
done

status=0
for t in props config frame admin; do
	mkdir -p "$work/corpus-$t"
	echo "== fuzz_$t for ${secs}s"
	if ! "$build/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/fuzz_$t-" \
		"$work/corpus-$t" "$work/seeds/$t" >"$work/fuzz_$t.log" 2>&1; then
		echo "fuzz_$t FAILED: see $work/fuzz_$t.log and $work/fuzz_$t-*"
		status=1
	fi
	grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)|^#[0-9]+ *DONE' \
		"$work/fuzz_$t.log" || true
done
exit $status
