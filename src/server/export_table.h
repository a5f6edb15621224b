/* The export table: which devices the server offers and who holds each.
 *
 * Filled from the backend's enumeration and kept current by its hotplug
 * events. An entry stays (marked absent) while a session still holds a
 * device that left, so that session can release it by name. All functions
 * take the table's own lock; none calls out while holding it except the
 * holder's gone() hook and the observer, which must only flag, enqueue and
 * wake (see session.h, notify_hub.h). Lock order: the table's lock before
 * any lock the observer takes. */
#ifndef USBIP_NOTIFY_SERVER_EXPORT_TABLE_H
#define USBIP_NOTIFY_SERVER_EXPORT_TABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"

#define EXPORT_PEER_SIZE 64

struct export_holder {
	/* Called with the table locked when the held device leaves. */
	void (*gone)(struct export_holder *holder);
	/* Who holds it, "ADDR:PORT", for list/status; "" when not told. Set
	 * before export_table_claim() and left alone while held. */
	char peer[EXPORT_PEER_SIZE];
};

struct export_entry {
	struct export_entry *next;
	struct bk_device_info info;
	bool present;
	struct export_holder *holder; /* NULL when free */
};

/* Decides whether a device is offered at all (filters); NULL = everything
 * not on a vhci bus. */
typedef bool (*export_filter_fn)(void *ctx, const struct bk_device_info *info);

/* What a device is (and whether it is held), as offered. */
struct export_view {
	struct bk_device_info info;
	bool held;
	char held_by[EXPORT_PEER_SIZE]; /* the holder's peer, "" if free or untold */
};

enum export_change {
	EXPORT_CHANGE_PLUGGED,    /* newly present and offered */
	EXPORT_CHANGE_UNPLUGGED,  /* was present, left */
	EXPORT_CHANGE_HELD,       /* a present device was claimed or released */
};

/* Told of every change, with the table locked, in the order the changes
 * happen (so a device that leaves and comes back gives UNPLUGGED then
 * PLUGGED). view is valid only during the call. It must only copy and
 * enqueue: no I/O, nothing that blocks, no call into the table. */
typedef void (*export_observer_fn)(void *ctx, enum export_change change,
				   const struct export_view *view);

/* Gets the present devices with the table locked: whatever it registers
 * then sees every later change and none from before. Same rules as the
 * observer; views is valid only during the call. */
typedef void (*export_snapshot_fn)(void *ctx, const struct export_view *views, size_t n);

struct export_table {
	pthread_mutex_t lock;
	struct export_entry *head;
	export_filter_fn filter;
	void *filter_ctx;
	export_observer_fn observer; /* NULL: nobody listens */
	void *observer_ctx;
};

void export_table_init(struct export_table *t, export_filter_fn filter, void *ctx);
void export_table_destroy(struct export_table *t);

/* Sets (or with NULL clears) the one observer. Takes the lock, so once it
 * returns a previous observer is no longer being called. */
void export_table_set_observer(struct export_table *t, export_observer_fn fn, void *ctx);

/* Calls fn once with the present devices (oldest first) under the lock.
 * Returns 0 or -ENOMEM (then fn was not called). */
int export_table_snapshot_locked(struct export_table *t, export_snapshot_fn fn, void *ctx);

/* A device appeared (or was seen again by a rescan). Returns true if it is
 * newly present and offered. */
bool export_table_add(struct export_table *t, const struct bk_device_info *info);

/* A device left. Tells its holder. Returns true if it was present. */
bool export_table_remove(struct export_table *t, const char *busid);

/* Snapshot of present devices (and whether each is held); malloc'ed array
 * in *out, caller frees. Returns the count or -ENOMEM. */
int export_table_snapshot(struct export_table *t, struct export_view **out);

enum export_claim_result {
	EXPORT_CLAIMED,
	EXPORT_UNKNOWN,   /* no such present device */
	EXPORT_BUSY,      /* held by someone else */
};

/* Takes a present, free device for holder; copies its info out. */
enum export_claim_result export_table_claim(struct export_table *t, const char *busid,
					    struct export_holder *holder,
					    struct bk_device_info *info_out);

/* Gives it back; from then on it can be imported again. */
void export_table_release(struct export_table *t, const char *busid,
			  struct export_holder *holder);

/* Hands a held device to another holder without freeing it (no event): a
 * session about to be freed passes it to a placeholder, so a device that
 * leaves meanwhile never calls into freed memory. */
void export_table_replace_holder(struct export_table *t, const char *busid,
				 struct export_holder *old, struct export_holder *new_holder);

#endif
