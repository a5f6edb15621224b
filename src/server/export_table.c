#include "server/export_table.h"

#include <stdlib.h>
#include <string.h>

#include "proto/linux_errno.h"

void export_table_init(struct export_table *t, export_filter_fn filter, void *ctx)
{
	pthread_mutex_init(&t->lock, NULL);
	t->head = NULL;
	t->filter = filter;
	t->filter_ctx = ctx;
	t->observer = NULL;
	t->observer_ctx = NULL;
}

void export_table_set_observer(struct export_table *t, export_observer_fn fn, void *ctx)
{
	pthread_mutex_lock(&t->lock);
	t->observer = fn;
	t->observer_ctx = ctx;
	pthread_mutex_unlock(&t->lock);
}

/* Caller holds t->lock. */
static void view_of(const struct export_entry *e, struct export_view *v)
{
	memset(v, 0, sizeof(*v));
	v->info = e->info;
	v->held = e->holder != NULL;
	if (e->holder)
		memcpy(v->held_by, e->holder->peer, sizeof(v->held_by));
	v->held_by[sizeof(v->held_by) - 1] = '\0';
}

/* Caller holds t->lock. */
static void notify(struct export_table *t, enum export_change change,
		   const struct export_entry *e)
{
	if (!t->observer)
		return;
	struct export_view v;
	view_of(e, &v);
	t->observer(t->observer_ctx, change, &v);
}

void export_table_destroy(struct export_table *t)
{
	struct export_entry *e = t->head;
	while (e) {
		struct export_entry *next = e->next;
		free(e);
		e = next;
	}
	t->head = NULL;
	pthread_mutex_destroy(&t->lock);
}

/* Caller holds t->lock. */
static struct export_entry *find(struct export_table *t, const char *busid)
{
	for (struct export_entry *e = t->head; e; e = e->next)
		if (strcmp(e->info.busid, busid) == 0)
			return e;
	return NULL;
}

static bool offered(struct export_table *t, const struct bk_device_info *info)
{
	if (t->filter)
		return t->filter(t->filter_ctx, info);
	return !info->on_vhci;
}

bool export_table_add(struct export_table *t, const struct bk_device_info *info)
{
	if (!offered(t, info))
		return false;

	bool added = false;
	pthread_mutex_lock(&t->lock);
	struct export_entry *e = find(t, info->busid);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (e) {
			e->next = t->head;
			t->head = e;
		}
	}
	if (e) {
		added = !e->present;
		e->info = *info;
		e->present = true;
		if (added)
			notify(t, EXPORT_CHANGE_PLUGGED, e);
	}
	pthread_mutex_unlock(&t->lock);
	return added;
}

bool export_table_remove(struct export_table *t, const char *busid)
{
	bool was_present = false;
	pthread_mutex_lock(&t->lock);
	struct export_entry *e = find(t, busid);
	if (e && e->present) {
		was_present = true;
		e->present = false;
		notify(t, EXPORT_CHANGE_UNPLUGGED, e);
		if (e->holder)
			e->holder->gone(e->holder);
	}
	pthread_mutex_unlock(&t->lock);
	return was_present;
}

/* Caller holds t->lock. Returns the count or -ENOMEM. */
static int collect_present(struct export_table *t, struct export_view **out)
{
	size_t n = 0;
	for (struct export_entry *e = t->head; e; e = e->next)
		n += e->present;
	struct export_view *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -LNX_ENOMEM;
	/* The list is newest first; report oldest first, a stable order. */
	size_t i = n;
	for (struct export_entry *e = t->head; e; e = e->next) {
		if (!e->present)
			continue;
		i--;
		view_of(e, &v[i]);
	}
	*out = v;
	return (int)n;
}

int export_table_snapshot(struct export_table *t, struct export_view **out)
{
	pthread_mutex_lock(&t->lock);
	int n = collect_present(t, out);
	pthread_mutex_unlock(&t->lock);
	return n;
}

int export_table_snapshot_locked(struct export_table *t, export_snapshot_fn fn, void *ctx)
{
	struct export_view *v;
	pthread_mutex_lock(&t->lock);
	int n = collect_present(t, &v);
	if (n >= 0)
		fn(ctx, v, (size_t)n);
	pthread_mutex_unlock(&t->lock);
	if (n < 0)
		return n;
	free(v);
	return 0;
}

enum export_claim_result export_table_claim(struct export_table *t, const char *busid,
					    struct export_holder *holder,
					    struct bk_device_info *info_out)
{
	enum export_claim_result r;
	pthread_mutex_lock(&t->lock);
	struct export_entry *e = find(t, busid);
	if (!e || !e->present) {
		r = EXPORT_UNKNOWN;
	} else if (e->holder) {
		r = EXPORT_BUSY;
	} else {
		e->holder = holder;
		*info_out = e->info;
		r = EXPORT_CLAIMED;
		notify(t, EXPORT_CHANGE_HELD, e);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void export_table_release(struct export_table *t, const char *busid,
			  struct export_holder *holder)
{
	pthread_mutex_lock(&t->lock);
	struct export_entry *e = find(t, busid);
	if (e && e->holder == holder) {
		e->holder = NULL;
		if (e->present)
			notify(t, EXPORT_CHANGE_HELD, e);
	}
	pthread_mutex_unlock(&t->lock);
}

void export_table_replace_holder(struct export_table *t, const char *busid,
				 struct export_holder *old, struct export_holder *new_holder)
{
	pthread_mutex_lock(&t->lock);
	struct export_entry *e = find(t, busid);
	if (e && e->holder == old)
		e->holder = new_holder;
	pthread_mutex_unlock(&t->lock);
}
