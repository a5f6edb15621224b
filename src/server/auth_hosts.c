/* The authenticated-hosts table: a small array searched linearly (a host
 * per client machine, so tens of entries, not thousands). */
#include "server/auth_hosts.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct auth_host {
	struct cidr_addr addr;
	unsigned live;      /* authenticated subscriptions right now */
	int64_t last_ms;    /* when live last dropped to 0 */
};

struct auth_hosts {
	pthread_mutex_t lock; /* everything below */
	unsigned grace_ms;
	struct auth_host *v;
	unsigned n, cap;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct auth_hosts *auth_hosts_new(unsigned grace_ms)
{
	struct auth_hosts *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->grace_ms = grace_ms;
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void auth_hosts_free(struct auth_hosts *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->v);
	free(t);
}

static bool expired(const struct auth_hosts *t, const struct auth_host *h, int64_t now)
{
	return h->live == 0 && now - h->last_ms >= (int64_t)t->grace_ms;
}

/* Drops hosts whose grace is over. Lock held. */
static void purge(struct auth_hosts *t, int64_t now)
{
	unsigned k = 0;
	for (unsigned i = 0; i < t->n; i++)
		if (!expired(t, &t->v[i], now))
			t->v[k++] = t->v[i];
	t->n = k;
}

static struct auth_host *find(struct auth_hosts *t, const struct cidr_addr *a)
{
	for (unsigned i = 0; i < t->n; i++)
		if (cidr_addr_equal(&t->v[i].addr, a))
			return &t->v[i];
	return NULL;
}

/* Makes room for one more host. Lock held. */
static int make_room(struct auth_hosts *t)
{
	if (t->n == AUTH_HOSTS_MAX) {
		/* Forget the longest-idle host in its grace period. */
		unsigned victim = t->n;
		for (unsigned i = 0; i < t->n; i++) {
			if (t->v[i].live > 0)
				continue;
			if (victim == t->n || t->v[i].last_ms < t->v[victim].last_ms)
				victim = i;
		}
		if (victim == t->n)
			return -ENOMEM;
		t->v[victim] = t->v[--t->n];
		return 0;
	}
	if (t->n < t->cap)
		return 0;
	unsigned cap = t->cap ? t->cap * 2 : 16;
	if (cap > AUTH_HOSTS_MAX)
		cap = AUTH_HOSTS_MAX;
	struct auth_host *v = realloc(t->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->v = v;
	t->cap = cap;
	return 0;
}

int auth_hosts_login(struct auth_hosts *t, const struct cidr_addr *a)
{
	int rc = 0;
	int64_t now = now_ms();

	pthread_mutex_lock(&t->lock);
	purge(t, now);
	struct auth_host *h = find(t, a);
	if (!h) {
		rc = make_room(t);
		if (rc == 0) {
			h = &t->v[t->n++];
			memset(h, 0, sizeof(*h));
			h->addr = *a;
		}
	}
	if (h)
		h->live++;
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void auth_hosts_logout(struct auth_hosts *t, const struct cidr_addr *a)
{
	pthread_mutex_lock(&t->lock);
	struct auth_host *h = find(t, a);
	if (h && h->live > 0) {
		h->live--;
		if (h->live == 0)
			h->last_ms = now_ms();
	}
	pthread_mutex_unlock(&t->lock);
}

bool auth_hosts_allowed(struct auth_hosts *t, const struct cidr_addr *a)
{
	int64_t now = now_ms();

	pthread_mutex_lock(&t->lock);
	struct auth_host *h = find(t, a);
	bool ok = h && !expired(t, h, now);
	pthread_mutex_unlock(&t->lock);
	return ok;
}

unsigned auth_hosts_count(struct auth_hosts *t)
{
	pthread_mutex_lock(&t->lock);
	purge(t, now_ms());
	unsigned n = t->n;
	pthread_mutex_unlock(&t->lock);
	return n;
}
