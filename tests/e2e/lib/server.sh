# Start/stop the USB/IP server under test; sourced inside the guest after
# common.sh. E2E_SERVER selects it: "kernel" (usbip-host + usbipd, the
# reference) or "ours" (usbip-notify-server with its libusb backend).

USBIP_PORT=3240

# The one place that says how our server is started. Override with
# E2E_OURS_CMD in the host environment of run.sh.
ours_cmd() {
	if [ -n "${E2E_OURS_CMD:-}" ]; then
		echo "$E2E_OURS_CMD"
	else
		echo "$E2E_BUILD/src/server/usbip-notify-server --listen 127.0.0.1 --port $USBIP_PORT"
	fi
}

server_log="$E2E_RESULTS/server.log"
server_pid=""

# server_start BUSID: exports BUSID through the chosen server and waits until
# it listens on TCP 3240.
server_start() {
	local busid=$1
	case "$E2E_SERVER" in
	kernel)
		load_modules usbip-host || return 1
		run_t 20 usbipd -D || return 1
		wait_for 20 tcp_listening "$USBIP_PORT" || { log "usbipd not listening"; return 1; }
		run_t 30 usbip bind -b "$busid"
		;;
	ours)
		local cmd bin
		cmd=$(ours_cmd)
		bin=${cmd%% *}
		[ -x "$bin" ] || { log "our server is not built: $bin"; return 1; }
		log "starting: $cmd"
		$cmd > "$server_log" 2>&1 < /dev/null &
		server_pid=$!
		wait_for 20 tcp_listening "$USBIP_PORT" || { log "our server not listening"; return 1; }
		# It must offer the device before an attach can succeed.
		wait_for 20 server_lists "$busid"
		;;
	*)
		log "unknown server '$E2E_SERVER'"; return 1 ;;
	esac
}

# server_lists BUSID: the server's device list (OP_REQ_DEVLIST) has BUSID.
server_lists() {
	run_t 20 usbip list -r 127.0.0.1 2>/dev/null | grep -q "^ *$1:"
}

# server_stop BUSID: ends the export and the server.
server_stop() {
	local busid=$1
	case "$E2E_SERVER" in
	kernel)
		run_t 30 usbip unbind -b "$busid" >/dev/null 2>&1
		pkill_usbipd
		;;
	ours)
		[ -n "$server_pid" ] || return 0
		kill -TERM "$server_pid" 2>/dev/null
		wait_for 10 proc_gone "$server_pid" || kill -KILL "$server_pid" 2>/dev/null
		server_pid=""
		;;
	esac
}

proc_gone() { ! kill -0 "$1" 2>/dev/null; }

# usbipd -D leaves no pid file: find it in /proc (this guest runs nothing else).
pkill_usbipd() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = usbipd ] || continue
		kill -TERM "${p#/proc/}" 2>/dev/null
	done
}
