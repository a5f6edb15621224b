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
		if (e->holder)
			e->holder->gone(e->holder);
	}
	pthread_mutex_unlock(&t->lock);
	return was_present;
}

int export_table_snapshot(struct export_table *t, struct export_view **out)
{
	pthread_mutex_lock(&t->lock);
	size_t n = 0;
	for (struct export_entry *e = t->head; e; e = e->next)
		n += e->present;
	struct export_view *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&t->lock);
		return -LNX_ENOMEM;
	}
	/* The list is newest first; report oldest first, a stable order. */
	size_t i = n;
	for (struct export_entry *e = t->head; e; e = e->next) {
		if (!e->present)
			continue;
		i--;
		v[i].info = e->info;
		v[i].held = e->holder != NULL;
	}
	pthread_mutex_unlock(&t->lock);
	*out = v;
	return (int)n;
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
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void export_table_release(struct export_table *t, const char *busid,
			  struct export_holder *holder)
{
	pthread_mutex_lock(&t->lock);
	struct export_entry *e = find(t, busid);
	if (e && e->holder == holder)
		e->holder = NULL;
	pthread_mutex_unlock(&t->lock);
}
