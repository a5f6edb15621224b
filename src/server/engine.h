/* The engine: one thread and one poll loop that serve every session.
 *
 * The loop owns each session's socket (non-blocking; many commands parsed
 * per recv, replies gathered into one sendmsg per turn) and, through the
 * backend's loop hooks (backend.h), the delivery of the device's
 * completions, so the common path of an URB never changes thread: the
 * CMD_SUBMIT is read, submitted, completed and answered on this thread.
 * Backends without loop hooks complete on their own thread; those
 * completions are posted to the loop and the loop is woken through a pipe.
 *
 * Only poll(2) is used (POSIX: Linux and macOS alike). */
#ifndef USBIP_NOTIFY_SERVER_ENGINE_H
#define USBIP_NOTIFY_SERVER_ENGINE_H

#include <stdbool.h>

#include "backend/backend.h"

struct engine;
struct session;

/* Does not take ownership of the backend. NULL when out of resources. */
struct engine *engine_new(struct backend *b);

/* Starts the loop thread; it takes over the backend's completions. */
int engine_start(struct engine *e);

/* Every session must have ended. Gives the backend's completions back to
 * the backend's own thread and joins the loop. */
void engine_stop(struct engine *e);
void engine_free(struct engine *e);

/* Hands a session to the loop (any thread). The loop serves it until it
 * ends, then calls session_engine_done(). */
int engine_add(struct engine *e, struct session *s);

/* Wakes the loop (any thread; cheap on the loop's own thread). */
void engine_wake(struct engine *e);

/* Busy polling: before a wait the loop keeps polling without sleeping for
 * up to usec microseconds (0: never) before it blocks, always that long or,
 * when adaptive, as long as the last waits of the same kind (for the
 * device, for the client) suggest (spin_window.h). Lower latency per URB
 * for a CPU kept busy while a device is in use. Before engine_start. */
void engine_set_busy_poll(struct engine *e, unsigned usec, bool adaptive);

/* The window the loop would spin now before a wait for the device, or for
 * the client (tests; any thread). */
unsigned engine_busy_poll_window(const struct engine *e, bool device);

/* How many of the loop's polls were not allowed to sleep (tests). */
unsigned long engine_busy_polls(const struct engine *e);

/* True on the engine's own thread. */
bool engine_on_thread(const struct engine *e);

/* True on the engine's thread while the backend delivers completions
 * (loop_dispatch): nothing up the stack holds an URB then, so a completion
 * may write replies at once. */
bool engine_in_dispatch(const struct engine *e);

#endif
