#!/bin/sh
# test_hostile's external mode (what the e2e scenario "hostile" runs against
# a real gadget) against usbip-notify-server --sim zero on ephemeral ports:
# proves the mode itself in the suite, in seconds.
# Usage: hostile_external.sh SERVER_BINARY TEST_HOSTILE_BINARY
set -u
server=$1
hostile=$2
dir=$(mktemp -d)
log="$dir/server.log"
"$server" --sim zero --listen 127.0.0.1 --port 0 --notify-listen 127.0.0.1 \
	--notify-port 0 --notify-token s3cret --no-import-auth --control none \
	--no-announce --log-level info > "$log" 2>&1 < /dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
port="" nport=""
for _ in $(seq 100); do
	port=$(sed -n 's/^usbip-notify info: listening on port \([0-9]*\)$/\1/p' "$log")
	nport=$(sed -n 's/^usbip-notify info: notify: listening on port \([0-9]*\) .*/\1/p' "$log")
	[ -n "$port" ] && [ -n "$nport" ] && break
	sleep 0.1
done
if [ -z "$port" ] || [ -z "$nport" ]; then
	echo "the server did not start:"; cat "$log"; exit 1
fi
HOSTILE_DEVICE=sim HOSTILE_SERVER=127.0.0.1:$port HOSTILE_NOTIFY_PORT=$nport \
	HOSTILE_SERVER_LOG="$log" "$hostile" > "$dir/out" 2>&1
rc=$?
grep -v '^hostile: skipped' "$dir/out"
kill -0 "$pid" || { echo "the server died:"; tail -20 "$log"; exit 1; }
if grep -qE 'AddressSanitizer|runtime error:' "$log"; then
	echo "sanitizer report in the server's log:"; cat "$log"; exit 1
fi
exit "$rc"
