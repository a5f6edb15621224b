/* The simulated backend: gadget-zero-like devices in-process.
 *
 * It implements backend.h with no hardware and no kernel, so the server can
 * be run and tested anywhere. Completions are delivered on the sim's own
 * event thread, as a real backend would, optionally after a delay.
 *
 * Each "zero" device (VID:PID 0525:a4a0, high speed, busid "1-N" for the
 * N-th device) has one configuration (value 1) with these interfaces:
 *
 *   if 0  vendor class, source/sink
 *         0x81 bulk IN   source: fills every byte, value = (offset % 63)
 *         0x01 bulk OUT  sink: accepts anything
 *         0x83 int IN    source, same pattern, wMaxPacketSize 64, bInterval 4
 *         0x03 int OUT   sink
 *   if 1  vendor class, isochronous source/sink
 *         alt 0: no endpoints; alt 1:
 *         0x84 iso IN    source: packet i of a transfer is filled with the byte
 *                        (i & 0xff) and completes with min(length, 1024 - 8*(i%4))
 *                        bytes, so packet results differ per packet
 *         0x04 iso OUT   sink: every packet completes with its full length
 *   if 2  vendor class, loopback
 *         0x02 bulk OUT  appends to a FIFO (bounded, SIM_LOOPBACK_MAX bytes)
 *         0x82 bulk IN   pends until the FIFO has data, then returns up to
 *                        length bytes from it (a natural pending URB to unlink)
 *   if 3  vendor class, "locked": claimable unless sim_lock_interface() says
 *         otherwise (then claim fails with -EBUSY, as a busy OS driver would)
 *         0x85 bulk IN   source, same pattern as 0x81
 *
 * Control (ep 0): GET_DESCRIPTOR (device, configuration, string 0..3: langids,
 * manufacturer "usbip-notify", product "Simulated Gadget Zero", serial
 * "SIM000N"), GET_STATUS, GET_CONFIGURATION, GET_INTERFACE, and gadget zero's
 * vendor requests 0x5b (OUT: store up to 256 bytes) / 0x5c (IN: read them
 * back). Anything else stalls (-EPIPE), including SET_CONFIGURATION,
 * SET_INTERFACE and CLEAR_FEATURE sent raw: those go through the backend's
 * own calls.
 *
 * How the vtable behaves (chosen to match libusb/usbfs on Linux):
 * - submit: -ENODEV once the device is gone; -ENOENT for an endpoint that no
 *   current altsetting has (or configuration 0); -EINVAL for a transfer type
 *   that does not match the endpoint, a control buffer shorter than 8 +
 *   wLength, bad iso packets, or a loopback OUT longer than SIM_LOOPBACK_MAX;
 *   -EBUSY for the same transfer submitted twice, or an endpoint of a locked
 *   interface this handle has not claimed. Claims are not otherwise checked
 *   (usbfs claims implicitly). Completion is never inline: always on the
 *   event thread, after start(). Per endpoint, transfers complete in order.
 * - cancel: 0 while the transfer waits (delay, or loopback data/room); its
 *   completion then has -ECONNRESET. -ENOENT once its result is decided.
 *   In darwin mode (sim_set_darwin) it ends the whole endpoint's queue.
 * - claim_interface: -ENOENT for no such interface, -EBUSY when locked or
 *   claimed by another handle, 0 when this handle already holds it.
 *   release_interface: -ENOENT when this handle does not hold it.
 * - set_interface: -EINVAL for an altsetting the descriptors lack, -ENOENT
 *   when not claimed; flushes the interface's pending transfers (-ESHUTDOWN)
 *   and clears its endpoints' stalls.
 * - set_configuration: 0 or 1, else -EINVAL; the current value is a no-op;
 *   changing it while any interface is claimed is -EBUSY.
 * - get_active_config: -ENOENT when unconfigured, -EOVERFLOW if n is short.
 * - clear_halt: -ENOENT for an endpoint that does not exist now.
 * - reset: pending transfers fail with -ESHUTDOWN, altsettings go to 0,
 *   stalls, loopback FIFO and vendor buffer are cleared; claims and devnum
 *   stay.
 * - close with transfers still pending (a caller bug): they complete with
 *   -ESHUTDOWN on the event thread. destroy completes whatever is left with
 *   -ESHUTDOWN on the caller's thread. stop() must not be called from a
 *   callback. */
#ifndef USBIP_NOTIFY_BACKEND_SIM_H
#define USBIP_NOTIFY_BACKEND_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

#define SIM_MAX_DEVICES 16
#define SIM_LOOPBACK_MAX (64u * 1024u)

/* spec: comma-separated device kinds, e.g. "zero" or "zero,zero" (the only
 * kind so far is "zero"). Returns NULL on a bad spec. Destroy with
 * b->ops->destroy(b). */
struct backend *sim_backend_new(const char *spec);

/* Test and demo controls, callable from any thread. Each returns 0 or
 * -ENODEV for an unknown busid. */

/* A stalled endpoint completes every transfer with -EPIPE until cleared
 * (clear_halt through the backend, or stalled = false here). */
int sim_set_stall(struct backend *b, const char *busid, uint8_t endpoint, bool stalled);

/* Every later completion on that device is delayed by ms milliseconds. */
int sim_set_delay(struct backend *b, const char *busid, uint32_t ms);

/* The device vanishes: pending transfers complete with -ESHUTDOWN, later
 * calls on its handles fail with -ENODEV, a BK_DEVICE_LEFT event is sent and
 * enumerate no longer lists it. */
int sim_unplug(struct backend *b, const char *busid);

/* A vanished device comes back (same busid, a new devnum); BK_DEVICE_ARRIVED.
 * Unplugging an absent device is -ENODEV, plugging a present one -EBUSY. */
int sim_plug(struct backend *b, const char *busid);

/* Makes claim_interface(ifnum) fail with -EBUSY (locked = true) or succeed.
 * An existing claim is not taken away. -EINVAL for ifnum >= 4. */
int sim_lock_interface(struct backend *b, const char *busid, uint8_t ifnum, bool locked);

/* How often the server asked to take this device's OS drivers
 * (backend_ops.detach_drivers; the sim has none and only counts). */
int sim_drivers_taken(struct backend *b, const char *busid);

/* How often the device was reset (through any handle). */
int sim_resets(struct backend *b, const char *busid);

/* Darwin mode (before opening handles), as libusb behaves on macOS:
 * handles carry BK_QUIRK_CANCEL_ABORTS_ENDPOINT, and a cancel ends every
 * transfer of that handle pending on the endpoint with -ECONNRESET (the
 * one at the head of the queue maybe with data moved: a source or sink
 * still waiting for its delay half of it in whole packets, a loopback OUT
 * waiting for room the whole packets that fit). A handle closed after
 * non-control transfers without a reset since leaves the device stuck:
 * its non-control transfers fail with -EPROTO until the next reset. */
int sim_set_darwin(struct backend *b, bool on);

/* Transfers a darwin-mode cancel ended besides the one it was for. */
int sim_pipe_bystanders(struct backend *b);

/* The next transfer submitted on that endpoint of the device wedges: it
 * never completes on its own, and cancel (which says 0), reset, set_interface
 * and set_configuration leave it alone; close, unplug and destroy end it
 * with -ESHUTDOWN, sim_unwedge lets it run (or fail -ECONNRESET if it was
 * cancelled meanwhile). */
int sim_wedge_next(struct backend *b, const char *busid, uint8_t endpoint);
int sim_unwedge(struct backend *b, const char *busid);

/* Device memory (backend_ops.buf_alloc), malloc'ed behind a header: at
 * most `bytes` out at once (default: no limit; 0: none at all), as usbfs's
 * memory limit refuses more. sim_dev_mem_bytes: bytes out now;
 * sim_dev_mem_left_at_close: buffers still out when their handle closed
 * (the server must give them back first). */
void sim_set_dev_mem_limit(struct backend *b, size_t bytes);
size_t sim_dev_mem_bytes(struct backend *b);
unsigned long sim_dev_mem_allocs(struct backend *b); /* buffers handed out, ever */
int sim_dev_mem_left_at_close(struct backend *b);

/* Calls fn(ctx) after each transfer's complete() has returned, on the
 * thread delivering it, before the delivery goes on (NULL: none). A test
 * that holds it there sees what the completion did by itself, before the
 * dispatch returned to its caller. */
void sim_set_delivered_hook(struct backend *b, void (*fn)(void *ctx), void *ctx);

/* Counters for leak checks in tests: transfers submitted but not yet
 * completed, and interfaces currently claimed, over all handles. */
int sim_pending_transfers(struct backend *b);
int sim_claimed_interfaces(struct backend *b);

#endif
