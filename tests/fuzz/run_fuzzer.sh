#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time from the seed corpus.
# New inputs go to a scratch directory, so the repository's seeds stay as
# committed. A crash leaves its input in the current directory and fails.
set -euo pipefail
exe=$1 seeds=$2 seconds=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	-error_exitcode=1 -timeout_exitcode=1 \
	-print_final_stats=1 "$scratch" "$seeds"
