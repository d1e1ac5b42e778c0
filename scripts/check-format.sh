#!/bin/sh
# check-format.sh fails, naming the files, when a tracked C file differs from
# what clang-format makes of it with the project's .clang-format.
set -eu
cd "$(dirname "$0")/.."
bad=""
for f in $(git ls-files 'src/*.c' 'src/*.h' 'test/unit/*.c' 'test/unit/*.h' 'fuzz/*.c'); do
	clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -n "$bad" ]; then
	echo "check-format.sh: not formatted with clang-format (run clang-format -i on them):" >&2
	for f in $bad; do echo "  $f" >&2; done
	exit 1
fi
