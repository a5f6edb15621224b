/* The engine's loop: poll, read, submit, dispatch completions, write.
 *
 * One turn: poll the wake pipe, the backend's descriptors and every
 * session's socket; read and start the commands that arrived; let the
 * backend deliver what is ready (completions build their replies on this
 * thread); then each session takes its posted hand-overs, moves its control
 * queue on and writes its replies in one sendmsg. */
#include "server/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"
#include "server/session.h"
#include "server/spin_window.h"

#define ENGINE_BACKEND_FDS 64  /* descriptors the backend may ask us to poll */
#define ENGINE_DISPATCH_ROUNDS 8
/* While busy polling the clock is read once per this many spins: a spin is
 * a few syscalls, and in a VM whose clock is an emulated timer (no usable
 * TSC) each clock read is a trapped device access besides. */
#define ENGINE_SPINS_PER_CLOCK 16

struct engine {
	struct backend *backend;
	pthread_t thread;
	bool running;
	int wake[2];
	atomic_bool wake_pending;   /* a byte is (about to be) in the pipe */

	pthread_mutex_t lock;       /* incoming, stop */
	struct session **incoming;
	size_t n_incoming, cap_incoming;
	bool stop;

	/* Loop thread only. */
	bool attached;              /* the backend's loop hooks are ours */
	bool kicked;                /* the backend has work ready (wake from this thread) */
	bool in_dispatch;           /* inside the backend's loop_dispatch */
	struct session **active;
	size_t n_active, cap_active;
	struct pollfd *pfd;
	size_t cap_pfd;

	/* Busy polling (engine_set_busy_poll). */
	struct spin_window spin;
	bool spin_armed;            /* the last wait found work: a wait starts */
	int64_t idle_since_us;      /* 0: the wait starts at the next idle turn */
	enum spin_wait idle_kind;   /* what that wait is for */
	int64_t spin_until_us;
	unsigned spins_unclocked;   /* spins since the clock was last read */
	atomic_uint window_seen[SPIN_WAITS]; /* spin's windows, for tests */
	atomic_ulong spins;         /* polls not allowed to sleep, for tests */
};

static _Thread_local const struct engine *current_engine;

bool engine_on_thread(const struct engine *e)
{
	return current_engine == e;
}

void engine_wake(struct engine *e)
{
	if (engine_on_thread(e)) {
		e->kicked = true; /* the loop looks again before it sleeps */
		return;
	}
	if (!atomic_exchange(&e->wake_pending, true))
		(void)!write(e->wake[1], "w", 1);
}

bool engine_in_dispatch(const struct engine *e)
{
	return engine_on_thread(e) && e->in_dispatch;
}

static void backend_wake(void *ctx)
{
	engine_wake(ctx);
}

struct engine *engine_new(struct backend *b)
{
	struct engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->backend = b;
	if (pipe(e->wake) < 0) {
		free(e);
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(e->wake[i], F_SETFD, FD_CLOEXEC);
		fcntl(e->wake[i], F_SETFL, fcntl(e->wake[i], F_GETFL) | O_NONBLOCK);
	}
	pthread_mutex_init(&e->lock, NULL);
	return e;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap * 2 : 16;
	while (n < need)
		n *= 2;
	void *p = realloc(*arr, n * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = n;
	return true;
}

int engine_add(struct engine *e, struct session *s)
{
	pthread_mutex_lock(&e->lock);
	bool ok = !e->stop && grow((void **)&e->incoming, &e->cap_incoming, e->n_incoming + 1,
				   sizeof(*e->incoming));
	if (ok)
		e->incoming[e->n_incoming++] = s;
	pthread_mutex_unlock(&e->lock);
	if (!ok)
		return -LNX_ENOMEM;
	engine_wake(e);
	return 0;
}

/* Moves new sessions into the active set. Returns false when the loop
 * should end (stopping and nothing left to serve). */
static bool take_incoming(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	bool stop = e->stop;
	size_t n = e->n_incoming;
	if (n > 0 && grow((void **)&e->active, &e->cap_active, e->n_active + n, sizeof(*e->active))) {
		memcpy(e->active + e->n_active, e->incoming, n * sizeof(*e->active));
		e->n_active += n;
		e->n_incoming = 0;
	}
	bool waiting = e->n_incoming > 0;
	pthread_mutex_unlock(&e->lock);
	return !(stop && e->n_active == 0 && !waiting);
}

static void dispatch(struct engine *e)
{
	for (int i = 0; i < ENGINE_DISPATCH_ROUNDS && e->attached; i++) {
		e->kicked = false;
		e->in_dispatch = true;
		e->backend->ops->loop_dispatch(e->backend);
		e->in_dispatch = false;
		if (!e->kicked)
			break;
	}
}

void engine_set_busy_poll(struct engine *e, unsigned usec, bool adaptive)
{
	spin_window_init(&e->spin, usec, adaptive);
	for (int k = 0; k < SPIN_WAITS; k++)
		atomic_store(&e->window_seen[k], spin_window_us(&e->spin, k));
}

unsigned engine_busy_poll_window(const struct engine *e, bool device)
{
	struct engine *m = (struct engine *)e;
	return atomic_load_explicit(&m->window_seen[device ? SPIN_WAIT_DEVICE : SPIN_WAIT_CLIENT],
				    memory_order_relaxed);
}

unsigned long engine_busy_polls(const struct engine *e)
{
	return atomic_load(&((struct engine *)e)->spins);
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* What the loop's next wait is for: a completion if a bulk or control URB
 * is at the device, else the next command of a client just answered, else
 * nothing that comes soon (spin_window.h). Asks every session, since the
 * asking starts each one's next wait. */
static enum spin_wait wait_kind(struct engine *e)
{
	enum spin_wait kind = SPIN_WAIT_IDLE;
	for (size_t i = 0; i < e->n_active; i++) {
		enum spin_wait k = session_wait_kind(e->active[i]);
		if (k == SPIN_WAIT_DEVICE || (k == SPIN_WAIT_CLIENT && kind == SPIN_WAIT_IDLE))
			kind = k;
	}
	return kind;
}

/* Whether this turn's wait should poll without sleeping: within the
 * window (spin_window.h) of the wait that starts at the first idle turn
 * after work. The next command after a reply, or the completion after a
 * submit, usually comes within it, and meeting it awake saves the sleep
 * and the wake-up (the scheduler, a switch back into this process) of both
 * waits of an URB: CPU time spent for latency, as sockets' busy_poll does.
 * Reads the clock at a wait's start and, while spinning, once per
 * ENGINE_SPINS_PER_CLOCK spins. */
static bool busy_polling(struct engine *e)
{
	if (e->spin.max_us == 0 || !e->spin_armed || e->n_active == 0)
		return false;
	if (e->spin_until_us != 0 && ++e->spins_unclocked < ENGINE_SPINS_PER_CLOCK)
		return true;
	e->spins_unclocked = 0;
	int64_t now = mono_us();
	if (e->idle_since_us == 0) {
		e->idle_since_us = now;
		e->idle_kind = wait_kind(e);
		e->spin_until_us = now + spin_window_us(&e->spin, e->idle_kind);
	}
	if (now < e->spin_until_us)
		return true;
	e->spin_armed = false;
	return false;
}

/* A turn found work: the wait that started at the first idle turn (if
 * one did) is over, and its length teaches the window. */
static void wait_ended(struct engine *e)
{
	if (e->idle_since_us != 0 && e->spin.adaptive) {
		enum spin_wait k = e->idle_kind;
		spin_window_learn(&e->spin, k, mono_us() - e->idle_since_us);
		atomic_store_explicit(&e->window_seen[k], spin_window_us(&e->spin, k),
				      memory_order_relaxed);
	}
	e->idle_since_us = 0;
	e->spin_until_us = 0;
	e->spin_armed = true;
}

static int min_timeout(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static void *engine_main(void *arg)
{
	struct engine *e = arg;
	const struct backend_ops *ops = e->backend->ops;
	current_engine = e;
	e->attached = ops->loop_attach && ops->loop_attach(e->backend, backend_wake, e) == 0;

	while (take_incoming(e)) {
		size_t need = 1 + ENGINE_BACKEND_FDS + e->n_active;
		if (!grow((void **)&e->pfd, &e->cap_pfd, need, sizeof(*e->pfd))) {
			log_error("engine: out of memory for the poll set");
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
			continue;
		}
		struct pollfd *pfd = e->pfd;
		int n = 0, timeout = -1;
		pfd[n++] = (struct pollfd){ .fd = e->wake[0], .events = POLLIN };

		int bk_first = n, bk_n = 0, bk_timeout = -1;
		if (e->attached) {
			bk_n = ops->loop_fds(e->backend, pfd + n, ENGINE_BACKEND_FDS, &bk_timeout);
			if (bk_n < 0)
				bk_n = 0;
			n += bk_n;
		}
		if (e->kicked)
			bk_timeout = 0;
		timeout = bk_timeout;
		/* Read when a timer needs it (lazily: the hot path has none; a
		 * backend with work ready, timeout 0, is due without a clock). */
		int64_t turn_us = bk_timeout > 0 ? mono_us() : -1;
		int64_t now = turn_us >= 0 ? turn_us / 1000 : -1;
		for (size_t i = 0; i < e->n_active; i++) {
			int t = -1;
			short ev = session_poll_events(e->active[i], &now, &t);
			pfd[n++] = (struct pollfd){ .fd = ev ? session_fd(e->active[i]) : -1,
						    .events = ev };
			timeout = min_timeout(timeout, t);
		}

		bool spin = timeout != 0 && busy_polling(e);
		if (spin) {
			atomic_fetch_add(&e->spins, 1);
			/* Spinning must not keep the threads it waits for (the
			 * device's driver, the client on this machine) off this CPU. */
			sched_yield();
		}
		int r = poll(pfd, (nfds_t)n, spin ? 0 : timeout);
		/* Due once the whole timeout has passed, in microseconds: a
		 * millisecond boundary crossed during a zero-timeout spin is not
		 * the timer, and counted so it cut waits short (a timer that is
		 * due earlier shows as timeout 0 on the next turn). */
		bool bk_due = bk_timeout == 0 ||
			      (bk_timeout > 0 && mono_us() - turn_us >= (int64_t)bk_timeout * 1000);
		if (r > 0 || bk_due)
			wait_ended(e);
		if (r < 0 && errno != EINTR) {
			log_error("engine: poll failed: %s", strerror(errno));
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
			continue;
		}
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			char buf[64];
			while (read(e->wake[0], buf, sizeof(buf)) > 0)
				;
			atomic_store(&e->wake_pending, false);
		}

		/* Commands first, so this turn's submits meet this turn's dispatch. */
		int s_first = bk_first + bk_n;
		for (size_t i = 0; r > 0 && i < e->n_active; i++)
			if (pfd[s_first + (int)i].revents)
				session_on_io(e->active[i], pfd[s_first + (int)i].revents);

		bool bk_ready = e->kicked;
		for (int i = bk_first; r > 0 && i < bk_first + bk_n; i++)
			bk_ready |= pfd[i].revents != 0;
		if (bk_ready || bk_due || e->kicked)
			dispatch(e);

		for (size_t i = 0; i < e->n_active;) {
			struct session *s = e->active[i];
			if (e->kicked)
				dispatch(e);
			if (session_turn(s)) {
				e->active[i] = e->active[--e->n_active];
				session_engine_done(s);
			} else {
				i++;
			}
		}
	}

	if (e->attached)
		ops->loop_detach(e->backend);
	e->attached = false;
	current_engine = NULL;
	return NULL;
}

int engine_start(struct engine *e)
{
	if (e->running)
		return 0;
	e->stop = false;
	if (pthread_create(&e->thread, NULL, engine_main, e) != 0)
		return -LNX_ENOMEM;
	e->running = true;
	return 0;
}

void engine_stop(struct engine *e)
{
	if (!e || !e->running)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop = true;
	pthread_mutex_unlock(&e->lock);
	engine_wake(e);
	pthread_join(e->thread, NULL);
	e->running = false;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	engine_stop(e);
	close(e->wake[0]);
	close(e->wake[1]);
	pthread_mutex_destroy(&e->lock);
	free(e->incoming);
	free(e->active);
	free(e->pfd);
	free(e);
}
