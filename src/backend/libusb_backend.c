/* The libusb backend: lifecycle, event thread, hotplug and the handle's
 * configuration calls. Enumeration lives in libusb_enum.c, transfers in
 * libusb_transfer.c; the locking rules are in libusb_internal.h.
 *
 * Kernel drivers are detached and re-attached explicitly (not with
 * libusb_set_auto_detach_kernel_driver) so that set_configuration can
 * release interfaces without handing them back to the kernel in between,
 * and so close() can give back exactly what we took. */
#include "backend/libusb_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/netlink.h>
#include <sys/socket.h>
#endif

#include "backend/libusb_internal.h"
#include "backend/libusb_map.h"
#include "common/log.h"
#include "proto/busid.h"
#include "proto/linux_errno.h"

/* Longest single wait of the event thread, and how long close() waits for
 * transfers a careless caller left pending. */
#define LU_EVENT_WAIT_MAX_MS 1000u
/* Shortest rescan period while libusb's hotplug events flow. */
#define LU_SAFETY_RESCAN_MS 10000u
#define LU_CLOSE_DRAIN_MS 5000u
#define LU_CLOSE_POLL_MS 100u

static struct lu_backend *to_lu(struct backend *b)
{
	return (struct lu_backend *)b;
}

static struct lu_handle *to_lh(struct bk_handle *h)
{
	return (struct lu_handle *)h;
}

void libusb_backend_options_init(struct libusb_backend_options *opt)
{
	/* A compound literal: a field added later starts zeroed, not as garbage. */
	*opt = (struct libusb_backend_options){
		.rescan_interval_ms = LIBUSB_BACKEND_DEFAULT_RESCAN_MS,
		.use_hotplug = true,
		.sysfs_root = LIBUSB_BACKEND_DEFAULT_SYSFS_ROOT,
	};
}

/* ---- Hotplug and rescan ------------------------------------------------ */

/* Runs wherever libusb handles events (the event thread, an attached
 * caller's loop_dispatch, or a thread inside a synchronous libusb call):
 * only queues the device and wakes the rescan thread, which does the work.
 * libusb allows taking a reference here. */
static int LIBUSB_CALL on_libusb_hotplug(libusb_context *ctx, libusb_device *dev,
					 libusb_hotplug_event event, void *user)
{
	struct lu_backend *b = user;
	struct lu_hp_event *e = malloc(sizeof(*e));

	(void)ctx;
	pthread_mutex_lock(&b->lock);
	if (e != NULL) {
		e->next = NULL;
		e->dev = libusb_ref_device(dev);
		e->arrived = event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED;
		*b->hp_tail = e;
		b->hp_tail = &e->next;
	} else {
		b->rescan_now = true; /* no memory: a full rescan finds it */
	}
	pthread_cond_signal(&b->rescan_cond);
	pthread_mutex_unlock(&b->lock);
	return 0; /* stay registered */
}

/* Takes the queued hotplug events. Caller holds b->lock. */
static struct lu_hp_event *take_events_locked(struct lu_backend *b)
{
	struct lu_hp_event *e = b->hp_head;

	b->hp_head = NULL;
	b->hp_tail = &b->hp_head;
	return e;
}

static void free_events(struct lu_hp_event *e)
{
	while (e != NULL) {
		struct lu_hp_event *next = e->next;

		libusb_unref_device(e->dev);
		free(e);
		e = next;
	}
}

static void deliver(struct lu_backend *b, enum bk_hotplug_event ev,
		    const struct bk_device_info *info)
{
	bk_hotplug_fn fn = b->base.hotplug;

	log_debug("libusb: device %s %s", info->busid,
		  ev == BK_DEVICE_ARRIVED ? "arrived" : "left");
	if (fn != NULL)
		fn(b->base.hotplug_ctx, ev, info);
}

/* Rescan thread only (the sole writer of known, so it reads it without the
 * lock). Removes known[i] and reports it gone. */
static void known_remove(struct lu_backend *b, size_t i)
{
	struct bk_device_info gone = b->known[i];

	pthread_mutex_lock(&b->lock);
	b->known[i] = b->known[b->nknown - 1];
	b->nknown--;
	pthread_mutex_unlock(&b->lock);
	deliver(b, BK_DEVICE_LEFT, &gone);
}

/* Rescan thread only. Adds info and reports it; false when out of memory. */
static bool known_add(struct lu_backend *b, const struct bk_device_info *info)
{
	struct bk_device_info *grown = realloc(b->known, (b->nknown + 1) * sizeof(*grown));

	if (grown == NULL)
		return false;
	pthread_mutex_lock(&b->lock);
	b->known = grown;
	b->known[b->nknown++] = *info;
	pthread_mutex_unlock(&b->lock);
	deliver(b, BK_DEVICE_ARRIVED, info);
	return true;
}

/* One libusb hotplug event, straight from the device libusb handed us: no
 * scan, and on Linux no device I/O (descriptors are libusb's cached copy,
 * strings come from sysfs). Duplicates (a device the seed scan or a rescan
 * already reported) are dropped by the same busid/bus/device comparison
 * the rescan diff uses, so every plug gives one ARRIVED, every unplug one
 * LEFT. Returns false when a full rescan should settle it instead. */
static bool handle_event(struct lu_backend *b, const struct lu_hp_event *e)
{
	if (e->arrived) {
		struct bk_device_info info;
		int r = lu_device_info(b, e->dev, b->known, b->nknown, &info);

		if (r == -LNX_ENOENT)
			return true; /* a root hub, a vhci copy */
		if (r < 0) {
			log_debug("libusb: arrival of %u-%u: %s", libusb_get_bus_number(e->dev),
				  libusb_get_device_address(e->dev), linux_errno_name(r));
			return false;
		}
		for (size_t i = 0; i < b->nknown; i++) {
			if (lu_same_device(&b->known[i], &info))
				return true;
			/* Same port, new device number: its departure was missed. */
			if (strcmp(b->known[i].busid, info.busid) == 0) {
				known_remove(b, i);
				break;
			}
		}
		return known_add(b, &info);
	}
	uint8_t bus = libusb_get_bus_number(e->dev);
	uint8_t addr = libusb_get_device_address(e->dev);

	for (size_t i = 0; i < b->nknown; i++) {
		if (b->known[i].busnum == bus && b->known[i].devnum == addr) {
			known_remove(b, i);
			break;
		}
	}
	return true;
}

/* Rescan thread only: a full scan diffed against known. */
static void rescan_and_notify(struct lu_backend *b)
{
	struct bk_device_info *fresh = NULL;
	size_t nfresh = 0;
	size_t *left = NULL;
	size_t *arrived = NULL;
	int r = lu_scan(b, b->known, b->nknown, &fresh, &nfresh);

	if (r < 0) {
		log_warn("libusb: rescan failed: %s", linux_errno_name(r));
		return;
	}
	left = calloc(b->nknown + 1, sizeof(*left));
	arrived = calloc(nfresh + 1, sizeof(*arrived));
	if (left == NULL || arrived == NULL) {
		log_warn("libusb: rescan: out of memory");
		goto out_free;
	}
	size_t nleft = lu_diff(fresh, nfresh, b->known, b->nknown, left);
	size_t narrived = lu_diff(b->known, b->nknown, fresh, nfresh, arrived);

	pthread_mutex_lock(&b->lock);
	struct bk_device_info *old = b->known;

	b->known = fresh;
	b->nknown = nfresh;
	pthread_mutex_unlock(&b->lock);
	fresh = NULL; /* now b->known */

	/* No lock held: the callback may enumerate or open. */
	for (size_t i = 0; i < nleft; i++)
		deliver(b, BK_DEVICE_LEFT, &old[left[i]]);
	for (size_t i = 0; i < narrived; i++)
		deliver(b, BK_DEVICE_ARRIVED, &b->known[arrived[i]]);
	free(old);
out_free:
	free(fresh);
	free(left);
	free(arrived);
}

/* Whether libusb's hotplug events can be expected at all. On Linux,
 * libusb built with udev (Debian's is) hears of devices only from the udev
 * daemon, whose control socket tells that it runs; without one (a minimal
 * guest) the callback stays silent and the main context's device list
 * never changes, so only the sysfs rescan sees devices come and go. */
static bool hotplug_events_flow(const struct lu_backend *b)
{
	if (!b->hp_registered)
		return false;
#ifdef __linux__
	return access("/run/udev/control", F_OK) == 0;
#else
	return true;
#endif
}

/* The event thread does nothing but libusb's event handling, so transfer
 * completions are never held up. Enumeration must not run here: listing a
 * device reads its descriptors, and a device that is itself enumerating
 * through us (the vhci copy of a device we export, in the same machine)
 * holds its lock until one of our completions arrives. */
static void *event_thread(void *arg)
{
	struct lu_backend *b = arg;

	while (!atomic_load(&b->stopping) && !atomic_load(&b->event_stop)) {
		struct timeval tv = {
			.tv_sec = LU_EVENT_WAIT_MAX_MS / 1000u,
			.tv_usec = (suseconds_t)((LU_EVENT_WAIT_MAX_MS % 1000u) * 1000u),
		};
		/* Returns early on events and on libusb_interrupt_event_handler
		 * from stop() or loop_attach(). */
		int r = libusb_handle_events_timeout_completed(b->ctx, &tv, NULL);

		if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
			log_warn("libusb: handling events: %s", libusb_error_name(r));
			struct timespec pause = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };

			nanosleep(&pause, NULL); /* no busy loop on a persistent error */
		}
	}
	return NULL;
}

/* Caller holds life_lock. */
static int event_thread_start(struct lu_backend *b)
{
	atomic_store(&b->event_stop, false);
	int r = pthread_create(&b->thread, NULL, event_thread, b);

	if (r != 0)
		return r;
	pthread_mutex_lock(&b->lock);
	b->event_thread_on = true;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

/* Caller holds life_lock. The interrupt wakes the thread from its wait in
 * libusb at once; if it is between waits, the flag stays pending in the
 * context and ends its next wait (or the next loop_dispatch) early. */
static void event_thread_stop(struct lu_backend *b)
{
	pthread_mutex_lock(&b->lock);
	bool on = b->event_thread_on;

	pthread_mutex_unlock(&b->lock);
	if (!on)
		return;
	atomic_store(&b->event_stop, true);
	libusb_interrupt_event_handler(b->ctx);
	pthread_join(b->thread, NULL);
	pthread_mutex_lock(&b->lock);
	b->event_thread_on = false;
	pthread_mutex_unlock(&b->lock);
}

/* The rescan thread: works off queued hotplug events as they come, and
 * rescans every scan_ms (0: never) or when an event could not be handled.
 * Delivers every BK_DEVICE_* event, with no lock held. */
static void *rescan_thread(void *arg)
{
	struct lu_backend *b = arg;

	pthread_mutex_lock(&b->lock);
	while (!atomic_load(&b->stopping)) {
		if (b->hp_head == NULL && !b->rescan_now) {
			if (b->scan_ms > 0) {
				struct timespec deadline;

				clock_gettime(CLOCK_REALTIME, &deadline);
				uint64_t ns = (uint64_t)deadline.tv_nsec +
					      (uint64_t)(b->scan_ms % 1000u) * 1000000u;
				deadline.tv_sec += (time_t)(b->scan_ms / 1000u + ns / 1000000000u);
				deadline.tv_nsec = (long)(ns % 1000000000u);
				if (pthread_cond_timedwait(&b->rescan_cond, &b->lock, &deadline) ==
				    ETIMEDOUT)
					b->rescan_now = true;
			} else {
				pthread_cond_wait(&b->rescan_cond, &b->lock);
			}
			continue; /* check stopping, then what woke us */
		}
		struct lu_hp_event *events = take_events_locked(b);
		bool full = b->rescan_now;

		b->rescan_now = false;
		pthread_mutex_unlock(&b->lock);
		for (struct lu_hp_event *e = events; e != NULL; e = e->next)
			if (!handle_event(b, e))
				full = true;
		free_events(events);
		if (full)
			rescan_and_notify(b);
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

#ifdef __linux__
/* Without a udev daemon nobody relays the kernel's uevents to libusb, but
 * the kernel broadcasts them to anyone listening: a USB device bound to its
 * driver or removed asks the rescan thread for a scan at once, so a plug is
 * seen without waiting for the rescan timer. */
static void *uevent_thread(void *arg)
{
	struct lu_backend *b = arg;
	char buf[8192];

	for (;;) {
		struct pollfd p[2] = { { .fd = b->uevent_fd, .events = POLLIN },
				       { .fd = b->uevent_stop[0], .events = POLLIN } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("libusb: uevents: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents != 0)
			break;
		bool want = false;

		for (;;) {
			struct sockaddr_nl from;
			struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
			struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from),
					     .msg_iov = &iov, .msg_iovlen = 1 };
			ssize_t n = recvmsg(b->uevent_fd, &mh, MSG_DONTWAIT);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				want |= errno == ENOBUFS; /* some were lost */
				break;
			}
			if (mh.msg_namelen != sizeof(from) || from.nl_pid != 0)
				continue; /* only the kernel's own */
			want |= lu_uevent_wants_rescan(buf, (size_t)n);
		}
		if (want) {
			pthread_mutex_lock(&b->lock);
			b->rescan_now = true;
			pthread_cond_signal(&b->rescan_cond);
			pthread_mutex_unlock(&b->lock);
		}
	}
	return NULL;
}

/* Caller holds life_lock. Best effort: without it the timer still works. */
static void uevent_start(struct lu_backend *b)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			NETLINK_KOBJECT_UEVENT);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_debug("libusb: no kernel uevents: %s", strerror(errno));
		goto err_close;
	}
	if (pipe(b->uevent_stop) < 0)
		goto err_close;
	fcntl(b->uevent_stop[0], F_SETFD, FD_CLOEXEC);
	fcntl(b->uevent_stop[1], F_SETFD, FD_CLOEXEC);
	b->uevent_fd = fd;
	if (pthread_create(&b->uevent_thread, NULL, uevent_thread, b) != 0)
		goto err_close_pipe;
	b->uevent_on = true;
	return;

err_close_pipe:
	close(b->uevent_stop[0]);
	close(b->uevent_stop[1]);
err_close:
	if (fd >= 0)
		close(fd);
	b->uevent_fd = -1;
}

/* Caller holds life_lock. */
static void uevent_stop(struct lu_backend *b)
{
	if (!b->uevent_on)
		return;
	(void)!write(b->uevent_stop[1], "x", 1);
	pthread_join(b->uevent_thread, NULL);
	close(b->uevent_stop[0]);
	close(b->uevent_stop[1]);
	close(b->uevent_fd);
	b->uevent_fd = -1;
	b->uevent_on = false;
}
#else
static void uevent_start(struct lu_backend *b)
{
	(void)b;
}

static void uevent_stop(struct lu_backend *b)
{
	(void)b;
}
#endif

static int lu_start(struct backend *base)
{
	struct lu_backend *b = to_lu(base);
	struct bk_device_info *seed = NULL;
	size_t nseed = 0;

	pthread_mutex_lock(&b->life_lock);
	pthread_mutex_lock(&b->lock);
	bool running = b->running;
	bool attached = b->loop_attached;

	pthread_mutex_unlock(&b->lock);
	if (running) {
		pthread_mutex_unlock(&b->life_lock);
		return -LNX_EBUSY;
	}

	/* Registered before the seed scan, so that nothing plugged in between
	 * is missed; events about devices the scan saw are dropped as
	 * duplicates. */
	atomic_store(&b->stopping, false);
	pthread_mutex_lock(&b->lock);
	free_events(take_events_locked(b)); /* left over from a previous run */
	pthread_mutex_unlock(&b->lock);
	b->hp_registered = false;
	if (b->use_hotplug && libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
		int r = libusb_hotplug_register_callback(
			b->ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
			0, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
			LIBUSB_HOTPLUG_MATCH_ANY, on_libusb_hotplug, b, &b->hp_handle);
		if (r == LIBUSB_SUCCESS)
			b->hp_registered = true;
		else
			log_warn("libusb: no hotplug callback (%s), rescan only",
				 libusb_error_name(r));
	}
	/* With hotplug events the rescan is only a safety net against events
	 * libusb lost (its udev monitor drops them when its socket buffer
	 * overflows), at a slow period; without them it is the only source. */
	if (hotplug_events_flow(b)) {
		b->scan_ms = b->rescan_ms == 0 ? 0
			     : (b->rescan_ms > LU_SAFETY_RESCAN_MS ? b->rescan_ms
								   : LU_SAFETY_RESCAN_MS);
	} else {
		b->scan_ms = b->rescan_ms;
	}

	/* Devices present now are the baseline: events report changes only. */
	int r = lu_scan(b, NULL, 0, &seed, &nseed);

	if (r < 0)
		log_warn("libusb: initial scan failed: %s", linux_errno_name(r));
	pthread_mutex_lock(&b->lock);
	free(b->known);
	b->known = seed;
	b->nknown = nseed;
	b->rescan_now = false;
	pthread_mutex_unlock(&b->lock);

	/* An attached loop handles the events itself. */
	if (!attached) {
		r = event_thread_start(b);
		if (r != 0) {
			log_error("libusb: cannot start the event thread: %s", strerror(r));
			goto err_deregister;
		}
	}
	r = pthread_create(&b->rescan_thread, NULL, rescan_thread, b);
	if (r != 0) {
		log_error("libusb: cannot start the rescan thread: %s", strerror(r));
		atomic_store(&b->stopping, true);
		event_thread_stop(b);
		goto err_deregister;
	}
	if (!hotplug_events_flow(b)) {
		uevent_start(b);
		const char *how = b->uevent_on ? (b->rescan_ms > 0 ? "kernel uevents and a rescan"
								 : "kernel uevents only")
					       : (b->rescan_ms > 0 ? "a rescan" : "nothing (rescan off)");

		log_info("libusb: no libusb hotplug events to expect (%s); devices are seen by %s "
			 "(every %u ms)", b->hp_registered ? "no udev daemon" : "hotplug off", how,
			 b->rescan_ms);
	}
	pthread_mutex_lock(&b->lock);
	b->running = true;
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&b->life_lock);
	return 0;

err_deregister:
	if (b->hp_registered)
		libusb_hotplug_deregister_callback(b->ctx, b->hp_handle);
	b->hp_registered = false;
	pthread_mutex_unlock(&b->life_lock);
	return -LNX_ENOMEM;
}

/* Caller holds life_lock. */
static void stop_locked(struct lu_backend *b)
{
	pthread_mutex_lock(&b->lock);
	bool running = b->running;

	b->running = false;
	pthread_mutex_unlock(&b->lock);
	if (!running)
		return;

	uevent_stop(b);
	pthread_mutex_lock(&b->lock);
	atomic_store(&b->stopping, true);
	pthread_cond_signal(&b->rescan_cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->rescan_thread, NULL);
	event_thread_stop(b); /* not running while a loop is attached */
	if (b->hp_registered)
		libusb_hotplug_deregister_callback(b->ctx, b->hp_handle);
	b->hp_registered = false;
	pthread_mutex_lock(&b->lock);
	free_events(take_events_locked(b));
	pthread_mutex_unlock(&b->lock);
}

static void lu_stop(struct backend *base)
{
	struct lu_backend *b = to_lu(base);

	lu_give_back_drivers(b); /* while the context still finds devices */
	pthread_mutex_lock(&b->life_lock);
	stop_locked(b);
	pthread_mutex_unlock(&b->life_lock);
}

/* ---- Event-loop integration (backend.h, loop_*) ------------------------- */

/* libusb calls these from whichever thread adds or removes an event source
 * (opening or closing a device, its own init), maybe with its own locks
 * held: only flag and wake. */
static void notify_fd_set_changed(struct lu_backend *b)
{
	atomic_store(&b->loop_dirty, true);
	pthread_mutex_lock(&b->wake_lock);
	if (b->loop_wake != NULL)
		b->loop_wake(b->loop_ctx);
	pthread_mutex_unlock(&b->wake_lock);
}

static void LIBUSB_CALL on_pollfd_added(int fd, short events, void *user)
{
	(void)fd;
	(void)events;
	notify_fd_set_changed(user);
}

static void LIBUSB_CALL on_pollfd_removed(int fd, void *user)
{
	(void)fd;
	notify_fd_set_changed(user);
}

/* Caller holds life_lock; the loop is attached. */
static void loop_release(struct lu_backend *b)
{
	libusb_set_pollfd_notifiers(b->ctx, NULL, NULL, NULL);
	pthread_mutex_lock(&b->wake_lock);
	b->loop_wake = NULL;
	b->loop_ctx = NULL;
	pthread_mutex_unlock(&b->wake_lock);
	libusb_free_pollfds(b->loop_pollfds);
	b->loop_pollfds = NULL;
	b->loop_npollfds = 0;
	pthread_mutex_lock(&b->lock);
	b->loop_attached = false;
	pthread_mutex_unlock(&b->lock);
}

static int lu_loop_attach(struct backend *base, void (*wake)(void *ctx), void *ctx)
{
	struct lu_backend *b = to_lu(base);

	if (wake == NULL)
		return -LNX_EINVAL;
	pthread_mutex_lock(&b->life_lock);
	pthread_mutex_lock(&b->lock);
	bool attached = b->loop_attached;

	b->loop_attached = true;
	pthread_mutex_unlock(&b->lock);
	if (attached) {
		pthread_mutex_unlock(&b->life_lock);
		return -LNX_EBUSY;
	}
	pthread_mutex_lock(&b->wake_lock);
	b->loop_wake = wake;
	b->loop_ctx = ctx;
	pthread_mutex_unlock(&b->wake_lock);
	atomic_store(&b->loop_dirty, true);
	libusb_set_pollfd_notifiers(b->ctx, on_pollfd_added, on_pollfd_removed, b);
	/* From here on completions wait for the caller's loop_dispatch (or a
	 * blocking libusb call on another thread, which handles events
	 * itself). */
	event_thread_stop(b);
	pthread_mutex_unlock(&b->life_lock);
	return 0;
}

static int ms_from_timeval(const struct timeval *tv)
{
	int64_t ms = (int64_t)tv->tv_sec * 1000 + ((int64_t)tv->tv_usec + 999) / 1000;

	if (ms < 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int lu_loop_fds(struct backend *base, struct pollfd *fds, int max, int *timeout_ms)
{
	struct lu_backend *b = to_lu(base);

	*timeout_ms = -1;
	/* Cleared before reading the set: a change after this point sets it
	 * again, so the next call fetches anew. */
	if (atomic_exchange(&b->loop_dirty, false) || b->loop_pollfds == NULL) {
		libusb_free_pollfds(b->loop_pollfds);
		b->loop_npollfds = 0;
		b->loop_pollfds = libusb_get_pollfds(b->ctx); /* allocates */
		if (b->loop_pollfds == NULL)
			return -LNX_ENOMEM; /* or a platform without pollfds */
		while (b->loop_pollfds[b->loop_npollfds] != NULL)
			b->loop_npollfds++;
	}
	if (b->loop_npollfds > max)
		return -LNX_EOVERFLOW; /* more than max: nothing written */
	for (int i = 0; i < b->loop_npollfds; i++) {
		fds[i].fd = b->loop_pollfds[i]->fd;
		fds[i].events = b->loop_pollfds[i]->events;
		fds[i].revents = 0;
	}
	/* Linux: libusb arms a timerfd among its fds for its own timeouts. */
	if (!libusb_pollfds_handle_timeouts(b->ctx)) {
		struct timeval tv;
		int r = libusb_get_next_timeout(b->ctx, &tv);

		if (r == 1)
			*timeout_ms = ms_from_timeval(&tv);
		else if (r < 0)
			*timeout_ms = (int)LU_EVENT_WAIT_MAX_MS; /* ask again later */
	}
	return b->loop_npollfds;
}

static void lu_loop_dispatch(struct backend *base)
{
	struct lu_backend *b = to_lu(base);
	struct timeval zero = { 0, 0 };

	/* Never blocks: when another thread handles events (a synchronous
	 * libusb call), libusb waits at most the zero timeout for it. */
	int r = libusb_handle_events_timeout_completed(b->ctx, &zero, NULL);

	/* INTERRUPTED: a libusb_interrupt_event_handler left pending. */
	if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED && r != LIBUSB_ERROR_TIMEOUT)
		log_debug("libusb: handling events: %s", libusb_error_name(r));
}

static void lu_loop_detach(struct backend *base)
{
	struct lu_backend *b = to_lu(base);

	pthread_mutex_lock(&b->life_lock);
	pthread_mutex_lock(&b->lock);
	bool attached = b->loop_attached;
	bool running = b->running;

	pthread_mutex_unlock(&b->lock);
	if (attached) {
		loop_release(b);
		if (running) {
			int r = event_thread_start(b);

			if (r != 0)
				log_error("libusb: cannot restart the event thread: %s",
					  strerror(r));
		}
	}
	pthread_mutex_unlock(&b->life_lock);
}

static void lu_destroy(struct backend *base)
{
	struct lu_backend *b = to_lu(base);

	if (b == NULL)
		return;
	lu_give_back_drivers(b); /* a caller that never stopped */
	pthread_mutex_lock(&b->life_lock);
	stop_locked(b);
	if (b->loop_attached)
		loop_release(b); /* a caller that never detached */
	pthread_mutex_unlock(&b->life_lock);
	free_events(take_events_locked(b)); /* they hold references into ctx */
	libusb_exit(b->ctx);
	free(b->known);
	free(b->sysfs_root);
	pthread_cond_destroy(&b->rescan_cond);
	pthread_mutex_destroy(&b->wake_lock);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->life_lock);
	free(b);
}

static int lu_enumerate(struct backend *base, struct bk_device_info **out, size_t *count)
{
	struct lu_backend *b = to_lu(base);
	struct bk_device_info *prev = NULL;
	size_t nprev = 0;

	/* The last rescan's strings spare us reopening known devices. */
	pthread_mutex_lock(&b->lock);
	if (b->nknown > 0) {
		prev = malloc(b->nknown * sizeof(*prev));
		if (prev != NULL) {
			memcpy(prev, b->known, b->nknown * sizeof(*prev));
			nprev = b->nknown;
		}
	}
	pthread_mutex_unlock(&b->lock);

	int r = lu_scan(b, prev, nprev, out, count);

	free(prev);
	return r;
}

/* ---- Opening ------------------------------------------------------------- */

#ifdef __linux__
/* Opens a device the main context does not know (its list only follows
 * udev events) through its usbfs node. */
static int open_sys_device(struct lu_backend *b, uint8_t busnum, uint8_t devnum,
			   libusb_device_handle **dh, int *fd_out)
{
	char node[64];

	snprintf(node, sizeof(node), "/dev/bus/usb/%03u/%03u", busnum, devnum);
	int fd = open(node, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? -LNX_ENODEV : (errno == EACCES ? -LNX_EPERM : -LNX_EIO);
	int r = libusb_wrap_sys_device(b->ctx, (intptr_t)fd, dh);

	if (r != LIBUSB_SUCCESS) {
		close(fd);
		return lnx_errno_from_libusb_error(r);
	}
	*fd_out = fd;
	return 0;
}
#endif

int lu_open_device(struct lu_backend *b, const char *busid, libusb_device_handle **dh,
		   int *fd_out)
{
	libusb_device *dev = NULL;
	uint8_t busnum, devnum, mbus, mdev;

	*fd_out = -1;
	/* Where is it now? sysfs knows on Linux, whatever libusb's list says
	 * (it is stale without udev); elsewhere the main context's list is
	 * current. */
#ifdef __linux__
	int r = lu_sysfs_locate(b->sysfs_root, b->include_vhci, busid, &busnum, &devnum);
#else
	int r = lu_locate(b, b->ctx, busid, &busnum, &devnum, NULL);
#endif
	if (r < 0)
		return r;

	/* The usual way: the main context knows the same device. */
	if (lu_locate(b, b->ctx, busid, &mbus, &mdev, &dev) == 0) {
		if (mbus == busnum && mdev == devnum) {
			r = libusb_open(dev, dh);
			libusb_unref_device(dev);
			return lnx_errno_from_libusb_error(r);
		}
		libusb_unref_device(dev); /* a stale entry of an earlier device */
	}
#ifdef __linux__
	return open_sys_device(b, busnum, devnum, dh, fd_out);
#else
	return -LNX_ENODEV;
#endif
}

static int lu_open(struct backend *base, const char *busid, struct bk_handle **out)
{
	struct lu_backend *b = to_lu(base);
	struct lu_handle *h;
	int r;

	*out = NULL;
	if (busid == NULL || !busid_valid(busid))
		return -LNX_EINVAL;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -LNX_ENOMEM;
	h->base.backend = base;
	h->base.quirks = lu_os_handle_quirks();
	h->b = b;
	h->sys_fd = -1;
	h->no_dev_mem = b->no_dev_mem;
	r = lu_open_device(b, busid, &h->dh, &h->sys_fd);
	if (r < 0)
		goto err_free;
	if (pthread_mutex_init(&h->ctl_lock, NULL) != 0) {
		r = -LNX_ENOMEM;
		goto err_close_device;
	}
	if (pthread_mutex_init(&h->xfer_lock, NULL) != 0) {
		r = -LNX_ENOMEM;
		goto err_destroy_ctl;
	}
	if (pthread_cond_init(&h->idle, NULL) != 0) {
		r = -LNX_ENOMEM;
		goto err_destroy_xfer;
	}
	*out = &h->base;
	return 0;

err_destroy_xfer:
	pthread_mutex_destroy(&h->xfer_lock);
err_destroy_ctl:
	pthread_mutex_destroy(&h->ctl_lock);
err_close_device:
	libusb_close(h->dh);
	if (h->sys_fd >= 0)
		close(h->sys_fd);
err_free:
	free(h);
	return r;
}

/* ---- Interfaces and configuration --------------------------------------- */

/* Caller holds ctl_lock. */
static void give_back_driver(struct lu_handle *h, unsigned ifnum)
{
	if (!h->detached[ifnum])
		return;
	h->detached[ifnum] = false;
	int r = libusb_attach_kernel_driver(h->dh, (int)ifnum);

	/* BUSY: a driver bound by itself (e.g. after a configuration change);
	 * NOT_FOUND: the interface no longer exists; NO_DEVICE: gone. */
	if (r != LIBUSB_SUCCESS && r != LIBUSB_ERROR_BUSY && r != LIBUSB_ERROR_NOT_FOUND &&
	    r != LIBUSB_ERROR_NO_DEVICE)
		log_warn("libusb: re-attaching the kernel driver of interface %u: %s", ifnum,
			 libusb_error_name(r));
}

/* Caller holds ctl_lock. Keeps detached[]: set_configuration must not hand
 * interfaces back to the kernel in between. */
static void release_all_claimed(struct lu_handle *h)
{
	for (unsigned i = 0; i < LU_MAX_IFACE_NUM; i++) {
		if (!h->claimed[i])
			continue;
		h->claimed[i] = false;
		int r = libusb_release_interface(h->dh, (int)i);

		if (r != LIBUSB_SUCCESS && r != LIBUSB_ERROR_NO_DEVICE &&
		    r != LIBUSB_ERROR_NOT_FOUND)
			log_warn("libusb: releasing interface %u: %s", i, libusb_error_name(r));
	}
}

/* Waits for transfers still pending at close (a caller bug, but a device
 * must not be closed under libusb's feet). Returns true when none is left.
 * Caller holds xfer_lock. */
static bool drain_transfers_locked(struct lu_handle *h)
{
	if (h->in_flight == 0)
		return true;
	log_error("libusb: close with %u transfers pending; cancelling", h->in_flight);
	lu_cancel_all_locked(h);

	for (unsigned waited = 0; h->in_flight > 0 && waited < LU_CLOSE_DRAIN_MS;
	     waited += LU_CLOSE_POLL_MS) {
		/* With a loop attached the caller may be that loop: handle
		 * events here rather than wait for it. */
		pthread_mutex_lock(&h->b->lock);
		bool thread_runs = h->b->event_thread_on;

		pthread_mutex_unlock(&h->b->lock);
		if (thread_runs) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += (long)LU_CLOSE_POLL_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&h->idle, &h->xfer_lock, &until);
		} else {
			/* Nobody handles events: do it here, unlocked, since
			 * the completions take xfer_lock. */
			struct timeval tv = { .tv_sec = 0, .tv_usec = LU_CLOSE_POLL_MS * 1000 };

			pthread_mutex_unlock(&h->xfer_lock);
			libusb_handle_events_timeout_completed(h->b->ctx, &tv, NULL);
			pthread_mutex_lock(&h->xfer_lock);
		}
	}
	return h->in_flight == 0;
}

static void lu_close(struct bk_handle *bh)
{
	struct lu_handle *h = to_lh(bh);

	if (h == NULL)
		return;
	pthread_mutex_lock(&h->xfer_lock);
	bool drained = drain_transfers_locked(h);

	pthread_mutex_unlock(&h->xfer_lock);
	if (!drained) {
		/* Freeing now would let a late completion touch freed memory. */
		log_error("libusb: transfers still pending; leaking the handle");
		return;
	}

	pthread_mutex_lock(&h->ctl_lock);
	release_all_claimed(h);
	for (unsigned i = 0; i < LU_MAX_IFACE_NUM; i++)
		give_back_driver(h, i);
	pthread_mutex_unlock(&h->ctl_lock);

	/* macOS has left devices wedged when they were only closed
	 * (PROTOCOL.md, "macOS notes"): its file resets first. */
	lu_os_before_close(h);
	libusb_close(h->dh);
	if (h->sys_fd >= 0)
		close(h->sys_fd); /* libusb_close leaves a wrapped fd to us */
	pthread_cond_destroy(&h->idle);
	pthread_mutex_destroy(&h->xfer_lock);
	pthread_mutex_destroy(&h->ctl_lock);
	free(h);
}

static int lu_get_active_config(struct bk_handle *bh, uint8_t *buf, size_t n)
{
	struct lu_handle *h = to_lh(bh);
	libusb_device *dev = libusb_get_device(h->dh);
	struct libusb_device_descriptor dd;
	int value = 0;
	int index = -1;

	int r = libusb_get_configuration(h->dh, &value);

	if (r != LIBUSB_SUCCESS)
		return lnx_errno_from_libusb_error(r);
	if (value == 0)
		return -LNX_ENOENT; /* unconfigured */
	r = libusb_get_device_descriptor(dev, &dd);
	if (r != LIBUSB_SUCCESS)
		return lnx_errno_from_libusb_error(r);

	/* GET_DESCRIPTOR takes an index, not a configuration value. */
	for (uint8_t i = 0; i < dd.bNumConfigurations && index < 0; i++) {
		struct libusb_config_descriptor *cfg;

		if (libusb_get_config_descriptor(dev, i, &cfg) != LIBUSB_SUCCESS)
			continue;
		if (cfg->bConfigurationValue == value)
			index = i;
		libusb_free_config_descriptor(cfg);
	}
	if (index < 0)
		return -LNX_ENOENT;

	if (n > BK_MAX_CONFIG_DESC)
		n = BK_MAX_CONFIG_DESC;
	r = libusb_get_descriptor(h->dh, LIBUSB_DT_CONFIG, (uint8_t)index, buf, (int)n);
	if (r < 0)
		return lnx_errno_from_libusb_error(r);
	if (r < LIBUSB_DT_CONFIG_SIZE || buf[1] != LIBUSB_DT_CONFIG)
		return -LNX_EIO;

	/* wTotalLength says how much there is: report a truncated copy as an
	 * error rather than hand out half a descriptor set. */
	int total = buf[2] | buf[3] << 8;

	if (total < LIBUSB_DT_CONFIG_SIZE)
		return -LNX_EIO;
	if (total > r)
		return (size_t)r == n ? -LNX_EOVERFLOW : -LNX_EIO;
	return total;
}

static int lu_set_configuration(struct bk_handle *bh, int value)
{
	struct lu_handle *h = to_lh(bh);

	/* -1 is libusb's "unconfigured"; 0 may be a real value on odd devices. */
	if (value < -1 || value > 255)
		return -LNX_EINVAL;
	pthread_mutex_lock(&h->ctl_lock);
	/* usbfs refuses to change the configuration while interfaces are
	 * claimed; the server claims again afterwards. */
	release_all_claimed(h);
	int r = libusb_set_configuration(h->dh, value);

	pthread_mutex_unlock(&h->ctl_lock);
	return lnx_errno_from_libusb_error(r);
}

static int lu_claim_interface(struct bk_handle *bh, uint8_t ifnum)
{
	struct lu_handle *h = to_lh(bh);
	bool detached_now = false;
	int ret = 0;

	pthread_mutex_lock(&h->ctl_lock);
	if (h->claimed[ifnum])
		goto out_unlock;

	int r = libusb_kernel_driver_active(h->dh, ifnum);

	/* NOT_SUPPORTED: no kernel drivers to speak of on this OS. */
	if (r < 0 && r != LIBUSB_ERROR_NOT_SUPPORTED) {
		ret = lnx_errno_from_libusb_error(r);
		goto out_unlock;
	}
	if (r == 1) {
		r = libusb_detach_kernel_driver(h->dh, ifnum);
		if (r == LIBUSB_SUCCESS) {
			detached_now = !h->detached[ifnum];
			h->detached[ifnum] = true;
		} else if (r != LIBUSB_ERROR_NOT_FOUND) { /* NOT_FOUND: it left by itself */
			ret = lnx_errno_from_libusb_error(r);
			goto out_unlock;
		}
	}

	r = libusb_claim_interface(h->dh, ifnum);
	if (r != LIBUSB_SUCCESS) {
		ret = lnx_errno_from_libusb_error(r);
		goto err_reattach;
	}
	h->claimed[ifnum] = true;
	goto out_unlock;

err_reattach:
	if (detached_now)
		give_back_driver(h, ifnum);
out_unlock:
	pthread_mutex_unlock(&h->ctl_lock);
	return ret;
}

static int lu_release_interface(struct bk_handle *bh, uint8_t ifnum)
{
	struct lu_handle *h = to_lh(bh);
	int ret = 0;

	pthread_mutex_lock(&h->ctl_lock);
	if (!h->claimed[ifnum] && !h->detached[ifnum]) {
		ret = -LNX_ENOENT;
		goto out_unlock;
	}
	if (h->claimed[ifnum]) {
		h->claimed[ifnum] = false;
		ret = lnx_errno_from_libusb_error(libusb_release_interface(h->dh, ifnum));
	}
	give_back_driver(h, ifnum);
out_unlock:
	pthread_mutex_unlock(&h->ctl_lock);
	return ret;
}

static int lu_set_interface(struct bk_handle *bh, uint8_t ifnum, uint8_t alt)
{
	struct lu_handle *h = to_lh(bh);

	pthread_mutex_lock(&h->ctl_lock);
	int r = libusb_set_interface_alt_setting(h->dh, ifnum, alt);

	pthread_mutex_unlock(&h->ctl_lock);
	return lnx_errno_from_libusb_error(r);
}

static int lu_clear_halt(struct bk_handle *bh, uint8_t endpoint)
{
	struct lu_handle *h = to_lh(bh);

	pthread_mutex_lock(&h->ctl_lock);
	int r = libusb_clear_halt(h->dh, endpoint);

	pthread_mutex_unlock(&h->ctl_lock);
	return lnx_errno_from_libusb_error(r);
}

static int lu_reset(struct bk_handle *bh)
{
	struct lu_handle *h = to_lh(bh);

	pthread_mutex_lock(&h->ctl_lock);
	int r = libusb_reset_device(h->dh);

	pthread_mutex_unlock(&h->ctl_lock);
	if (r == LIBUSB_SUCCESS)
		atomic_store(&h->used, false);
	/* NOT_FOUND: the device re-enumerated as a new one (its descriptors
	 * changed); this handle is dead. */
	if (r == LIBUSB_ERROR_NOT_FOUND)
		return -LNX_ENODEV;
	return lnx_errno_from_libusb_error(r);
}

static const struct backend_ops lu_ops = {
	.name = "libusb",
	.destroy = lu_destroy,
	.start = lu_start,
	.stop = lu_stop,
	.enumerate = lu_enumerate,
	.open = lu_open,
	.close = lu_close,
	.get_active_config = lu_get_active_config,
	.set_configuration = lu_set_configuration,
	.claim_interface = lu_claim_interface,
	.release_interface = lu_release_interface,
	.set_interface = lu_set_interface,
	.clear_halt = lu_clear_halt,
	.reset = lu_reset,
	.submit = lu_submit,
	.cancel = lu_cancel,
	.buf_alloc = lu_buf_alloc,
	.buf_free = lu_buf_free,
	.loop_attach = lu_loop_attach,
	.loop_fds = lu_loop_fds,
	.loop_dispatch = lu_loop_dispatch,
	.loop_detach = lu_loop_detach,
	.detach_drivers = lu_detach_drivers,
};

struct backend *libusb_backend_new(const struct libusb_backend_options *opt)
{
	struct libusb_backend_options defaults;
	struct lu_backend *b;

	if (opt == NULL) {
		libusb_backend_options_init(&defaults);
		opt = &defaults;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->base.ops = &lu_ops;
	b->hp_tail = &b->hp_head;
	b->uevent_fd = -1;
	b->rescan_ms = opt->rescan_interval_ms;
	b->include_vhci = opt->include_vhci;
	b->no_dev_mem = opt->no_dev_mem;
	b->use_hotplug = opt->use_hotplug;
	b->sysfs_root = strdup(opt->sysfs_root != NULL ? opt->sysfs_root
						       : LIBUSB_BACKEND_DEFAULT_SYSFS_ROOT);
	if (b->sysfs_root == NULL)
		goto err_free;
	atomic_init(&b->stopping, false);
	atomic_init(&b->event_stop, false);
	atomic_init(&b->loop_dirty, false);
	if (pthread_mutex_init(&b->life_lock, NULL) != 0)
		goto err_free_root;
	if (pthread_mutex_init(&b->lock, NULL) != 0)
		goto err_destroy_life;
	if (pthread_mutex_init(&b->wake_lock, NULL) != 0)
		goto err_destroy_main_lock;
	if (pthread_cond_init(&b->rescan_cond, NULL) != 0)
		goto err_destroy_wake;

	int r = libusb_init(&b->ctx);

	if (r != LIBUSB_SUCCESS) {
		log_error("libusb: init failed: %s", libusb_error_name(r));
		goto err_destroy_lock;
	}
	return &b->base;

err_destroy_lock:
	pthread_cond_destroy(&b->rescan_cond);
err_destroy_wake:
	pthread_mutex_destroy(&b->wake_lock);
err_destroy_main_lock:
	pthread_mutex_destroy(&b->lock);
err_destroy_life:
	pthread_mutex_destroy(&b->life_lock);
err_free_root:
	free(b->sysfs_root);
err_free:
	free(b);
	return NULL;
}
