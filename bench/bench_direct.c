/* The sim backend alone: the same URBs submitted straight to the backend.
 *
 * The calling thread submits and waits on a condition variable; the sim's
 * event thread completes. So each figure includes one thread hand-off per
 * wake-up (as the previous bench did, and as any server built on the sim's
 * own event thread must pay), but no socket and no protocol. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

struct bench_direct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool waiting;               /* the submitter sleeps on cond */
	int done[BENCH_MAX_DEPTH];  /* indices completed, not yet seen */
	int ndone;
	struct bk_transfer xfer[BENCH_MAX_DEPTH];
	uint64_t submitted_ns[BENCH_MAX_DEPTH];
	uint8_t *buf;               /* BENCH_MAX_DEPTH slices of 8 + BENCH_MAX_LEN */
};

#define SLICE (USBIP_SETUP_SIZE + BENCH_MAX_LEN)

struct bench_direct *bench_direct_new(void)
{
	struct bench_direct *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->buf = malloc((size_t)BENCH_MAX_DEPTH * SLICE);
	if (d->buf == NULL) {
		free(d);
		return NULL;
	}
	memset(d->buf, 0xa5, (size_t)BENCH_MAX_DEPTH * SLICE); /* touched, see bench_client_new */
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	return d;
}

void bench_direct_free(struct bench_direct *d)
{
	if (d == NULL)
		return;
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d->buf);
	free(d);
}

/* On the sim's event thread. */
static void on_complete(struct bk_transfer *t)
{
	struct bench_direct *d = t->user;

	pthread_mutex_lock(&d->lock);
	d->done[d->ndone++] = (int)(t - d->xfer);
	if (d->waiting)
		pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void fill(struct bench_direct *d, int i, const struct bench_pattern *p)
{
	struct bk_transfer *x = &d->xfer[i];
	uint8_t *buf = d->buf + (size_t)i * SLICE;

	memset(x, 0, sizeof(*x));
	x->complete = on_complete;
	x->user = d;
	switch (p->kind) {
	case BENCH_CTRL_IN:
		x->type = BK_XFER_CONTROL;
		x->endpoint = 0;
		bench_ctrl_read_setup(buf, (uint16_t)p->len);
		x->buffer = buf;
		x->length = USBIP_SETUP_SIZE + p->len;
		break;
	case BENCH_BULK_IN:
		x->type = BK_XFER_BULK;
		x->endpoint = 0x81;
		x->buffer = buf;
		x->length = p->len;
		break;
	case BENCH_BULK_OUT:
		x->type = BK_XFER_BULK;
		x->endpoint = 0x01;
		x->buffer = buf;
		x->length = p->len;
		break;
	case BENCH_INT_IN:
		x->type = BK_XFER_INTERRUPT;
		x->endpoint = 0x83;
		x->buffer = buf;
		x->length = p->len;
		break;
	}
}

/* Waits until at least one completion is queued; caller holds d->lock. */
static void wait_done(struct bench_direct *d)
{
	while (d->ndone == 0) {
		d->waiting = true;
		pthread_cond_wait(&d->cond, &d->lock);
		d->waiting = false;
	}
}

/* The control case reads back what gadget zero's vendor OUT stored. */
static int ctrl_prepare(struct bench_direct *d, struct bk_handle *h, uint32_t len)
{
	struct bk_transfer *x = &d->xfer[0];
	uint8_t *buf = d->buf;

	memset(x, 0, sizeof(*x));
	x->type = BK_XFER_CONTROL;
	x->complete = on_complete;
	x->user = d;
	bench_ctrl_write_setup(buf, (uint16_t)len);
	x->buffer = buf;
	x->length = USBIP_SETUP_SIZE + len;
	int rc = bk_submit(h, x);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&d->lock);
	wait_done(d);
	d->ndone = 0;
	pthread_mutex_unlock(&d->lock);
	return x->status;
}

static int open_device(struct backend *b, const char *busid, struct bk_handle **out)
{
	/* The previous server session may still be releasing the device. */
	for (int tries = 0; tries < 500; tries++) {
		struct bk_handle *h = NULL;
		if (b->ops->open(b, busid, &h) == 0) {
			if (b->ops->claim_interface(h, 0) == 0) {
				*out = h;
				return 0;
			}
			b->ops->close(h);
		}
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	return -EBUSY;
}

int bench_direct_run(struct bench_direct *d, struct backend *b, const char *busid,
		     const struct bench_pattern *p, const struct bench_timing *t,
		     struct bench_result *out)
{
	struct bk_handle *h;
	int free_idx[BENCH_MAX_DEPTH], nfree = 0, inflight = 0, rc;

	if (p->depth < 1 || p->depth > BENCH_MAX_DEPTH || p->len > BENCH_MAX_LEN)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if ((rc = open_device(b, busid, &h)) < 0)
		return rc;
	d->ndone = 0;
	if (p->kind == BENCH_CTRL_IN && (rc = ctrl_prepare(d, h, p->len)) < 0)
		goto err_close;
	for (int i = p->depth - 1; i >= 0; i--)
		free_idx[nfree++] = i;

	const uint64_t begin = bench_now_ns();
	const uint64_t open_at = begin + t->warmup_ns, close_at = open_at + t->window_ns;
	uint64_t opened = 0, last = 0, cpu0 = 0, pcpu0 = 0;
	struct bench_ctxsw cs0 = { 0, 0 }, cs1;
	bool is_open = false;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		uint64_t now = bench_now_ns();
		if (!is_open && now >= open_at) {
			is_open = true;
			opened = last = now;
			cpu0 = bench_thread_cpu_ns();
			pcpu0 = bench_process_cpu_ns();
			bench_ctxsw_read(&cs0);
		}
		/* Submit outside our lock: the completion takes it. */
		int batch[BENCH_MAX_DEPTH], n = 0;
		while (now < close_at && nfree > 0) {
			int i = free_idx[--nfree];
			fill(d, i, p);
			d->submitted_ns[i] = now;
			batch[n++] = i;
		}
		if (n > 0) {
			pthread_mutex_unlock(&d->lock);
			for (int k = 0; k < n; k++) {
				if ((rc = bk_submit(h, &d->xfer[batch[k]])) < 0) {
					pthread_mutex_lock(&d->lock);
					goto err_drain;
				}
				inflight++;
			}
			pthread_mutex_lock(&d->lock);
		}
		if (inflight == 0)
			break;
		wait_done(d);
		now = bench_now_ns();
		for (int k = 0; k < d->ndone; k++) {
			int i = d->done[k];
			struct bk_transfer *x = &d->xfer[i];
			if (x->status != 0 || x->actual_length != p->len)
				rc = -EPROTO;
			if (is_open) {
				out->urbs++;
				out->bytes += p->len;
				bench_hist_add(&out->lat, now - d->submitted_ns[i]);
				last = now;
			}
			free_idx[nfree++] = i;
			inflight--;
		}
		d->ndone = 0;
		if (rc < 0)
			goto err_drain;
	}
	pthread_mutex_unlock(&d->lock);
	out->wall_ns = last - opened;
	out->client_cpu_ns = bench_thread_cpu_ns() - cpu0;
	out->process_cpu_ns = bench_process_cpu_ns() - pcpu0;
	bench_ctxsw_read(&cs1);
	out->client_ctxsw = cs1.thread - cs0.thread;
	out->process_ctxsw = cs1.process - cs0.process;
	b->ops->release_interface(h, 0);
	b->ops->close(h);
	return is_open ? 0 : -ETIME;

err_drain:
	/* Every submitted transfer completes exactly once: wait for them. */
	while (inflight > 0) {
		wait_done(d);
		inflight -= d->ndone;
		d->ndone = 0;
	}
	pthread_mutex_unlock(&d->lock);
err_close:
	b->ops->release_interface(h, 0);
	b->ops->close(h);
	return rc;
}
