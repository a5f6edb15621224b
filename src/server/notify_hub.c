/* The notify hub: listener, subscribers, and the one poll loop. */
#include "server/notify_hub.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"
#include "common/net_os.h"
#include "proto/line_framer.h"
#include "proto/notify_v1.h"

/* How long a refused peer gets to read its "error" line before we close. */
#define CLOSING_GRACE_MS 2000
#define READ_CHUNK 4096
/* Event lines per subscriber whose sending is logged (attach-path timing);
 * beyond that many unsent, later ones go unlogged. */
#define SENT_MARKS 16

/* Where in a subscriber's byte stream a plugged/unplugged line ends. */
struct sent_mark {
	uint64_t end;
	bool plugged;
	char busid[USBIP_BUSID_SIZE];
};

enum sub_state {
	SUB_HELLO,    /* waiting for the first line or "Client hello" */
	SUB_V1,       /* subscribed, v1 lines */
	SUB_V2,       /* subscribed, v2 lines */
	SUB_CLOSING,  /* flushing a last line, then closing */
};

enum sub_detect {
	DETECT_NONE,  /* no byte yet */
	DETECT_V1,    /* first byte 'C': collecting "Client hello" */
	DETECT_V2,    /* first byte 'h': framing lines */
};

struct subscriber {
	struct subscriber *next;
	struct notify_hub *hub;
	int fd;
	char peer[64];
	struct cidr_addr addr;
	bool have_addr;
	char identity[TLS_IDENTITY_SIZE]; /* TLS peer, "" without TLS; set once */
	bool authed;           /* counted in hub->cfg.auth; thread only */

	/* Guarded by hub->lock (the observer appends, the thread sends). */
	enum sub_state state; /* written under the lock, by the thread only */
	char *q;
	size_t q_off, q_len, q_cap;
	uint64_t q_total;      /* bytes ever queued */
	uint64_t sent_total;   /* bytes ever sent */
	struct sent_mark marks[SENT_MARKS]; /* oldest first */
	unsigned nmarks;
	bool dead;             /* close at the next turn of the loop */
	bool dead_counts;      /* a drop (full queue, silence), not a goodbye */
	char why[96];          /* logged when it is closed */

	/* Thread only. */
	enum sub_detect detect;
	uint8_t hello[NOTIFY_V1_HELLO_LEN];
	size_t hello_len;
	struct line_framer framer;
	bool shut_wr;          /* closing: flushed and FIN sent */
	int64_t deadline_ms;   /* hello / closing deadline */
	int64_t last_rx_ms;
	int64_t next_ping_ms;
};

struct notify_hub {
	struct export_table *table;
	struct notify_config cfg;
	char token[NOTIFY_V2_TOKEN_SIZE];
	char name[NOTIFY_V2_NAME_SIZE];
	int listen_fds[NOTIFY_MAX_LISTEN_FDS];
	int n_listen;
	int wake[2];
	pthread_t thread;
	bool started;

	pthread_mutex_t lock; /* subscribers' queues and states, the list links */
	struct subscriber *subs;
	unsigned n_subs;
	unsigned long dropped;
	bool stopping;

	struct pollfd *pfd;          /* thread only */
	struct subscriber **pfd_sub;

	/* TLS: connections in their handshake (one gate thread each) and
	 * those through it, for the hub thread to adopt. Under lock. */
	struct tls_gate *gates;
	unsigned n_gates;
	pthread_cond_t gates_cond;   /* n_gates went down */
	struct tls_gate *incoming;
};

/* A connection on its way in through TLS. */
struct tls_gate {
	struct tls_gate *next;
	struct notify_hub *hub;
	int fd;                      /* the TCP connection, then the relay's plain end */
	struct cidr_addr addr;
	bool have_addr;
	char peer[64];
	char identity[TLS_IDENTITY_SIZE]; /* the TLS peer's, once known */
	pthread_t thread;
};

void notify_config_defaults(struct notify_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->port = NOTIFY_DEFAULT_PORT;
	cfg->heartbeat_s = NOTIFY_DEFAULT_HEARTBEAT_S;
	cfg->max_subscribers = NOTIFY_DEFAULT_MAX_SUBSCRIBERS;
	cfg->queue_bytes = NOTIFY_DEFAULT_QUEUE_BYTES;
	cfg->sndbuf = 64 * 1024;
	cfg->hello_timeout_ms = NOTIFY_DEFAULT_HELLO_TIMEOUT_MS;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Lines ----------------------------------------------------------------- */

static void copy_clean(char *dst, size_t size, const char *src, size_t src_size)
{
	size_t i;
	for (i = 0; i + 1 < size && i < src_size && src[i]; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[i] = '\0';
}

/* The v2 device fields for a table view: strings cut to their field and
 * control characters replaced by '?'. */
static void notify_device_from_view(const struct export_view *v, struct notify_v2_device *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->busid, v->info.busid, sizeof(out->busid));
	out->busid[sizeof(out->busid) - 1] = '\0';
	out->vid = v->info.idVendor;
	out->pid = v->info.idProduct;
	out->speed = notify_v2_speed_name(v->info.speed) ? v->info.speed : USBIP_SPEED_UNKNOWN;
	out->held = v->held;
	copy_clean(out->serial, sizeof(out->serial), v->info.serial, sizeof(v->info.serial));
	copy_clean(out->manufacturer, sizeof(out->manufacturer), v->info.manufacturer,
		   sizeof(v->info.manufacturer));
	copy_clean(out->product, sizeof(out->product), v->info.product,
		   sizeof(v->info.product));
}

/* Encodes a device, plugged or held message for v; when the line would be
 * too long, manufacturer and then product are left out (the busid and
 * serial carry the identity). Returns the length or a notify_v2_err. */
static int notify_encode_view(enum notify_v2_type type, const struct export_view *v, char *out,
		       size_t n)
{
	struct notify_v2_msg m;
	memset(&m, 0, sizeof(m));
	m.type = type;
	notify_device_from_view(v, &m.dev);
	int rc = notify_v2_encode(&m, out, n);
	if (rc == NOTIFY_V2_E_LONG) {
		memset(m.dev.manufacturer, 0, sizeof(m.dev.manufacturer));
		rc = notify_v2_encode(&m, out, n);
	}
	if (rc == NOTIFY_V2_E_LONG) {
		memset(m.dev.product, 0, sizeof(m.dev.product));
		rc = notify_v2_encode(&m, out, n);
	}
	return rc;
}

/* ---- Queues (hub->lock held) ---------------------------------------------- */

static void mark_dead(struct subscriber *s, bool counts, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void mark_dead(struct subscriber *s, bool counts, const char *fmt, ...)
{
	if (s->dead)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->dead = true;
	s->dead_counts = counts;
	s->nmarks = 0;
	free(s->q);
	s->q = NULL;
	s->q_off = s->q_len = s->q_cap = 0;
}

/* Appends a line, or drops the subscriber when its queue is full. */
static void enqueue(struct subscriber *s, const char *line, size_t n)
{
	size_t limit = s->hub->cfg.queue_bytes;

	if (s->dead)
		return;
	if (s->q_len - s->q_off + n > limit) {
		mark_dead(s, true, "output queue full (%zu bytes unsent): dropped",
			  s->q_len - s->q_off);
		return;
	}
	if (s->q_off > 0 && s->q_len + n > s->q_cap) {
		memmove(s->q, s->q + s->q_off, s->q_len - s->q_off);
		s->q_len -= s->q_off;
		s->q_off = 0;
	}
	if (s->q_len + n > s->q_cap) {
		size_t cap = s->q_cap ? s->q_cap : 1024;
		while (cap < s->q_len + n)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		char *q = realloc(s->q, cap);
		if (!q) {
			mark_dead(s, true, "out of memory for its queue: dropped");
			return;
		}
		s->q = q;
		s->q_cap = cap;
	}
	memcpy(s->q + s->q_len, line, n);
	s->q_len += n;
	s->q_total += n;
}

/* Queues an event line and remembers where it ends, so that do_write can
 * log when it has gone out. Caller holds hub->lock. */
static void enqueue_event(struct subscriber *s, const char *line, size_t n, bool plugged,
			  const char *busid)
{
	enqueue(s, line, n);
	if (s->dead || s->nmarks == SENT_MARKS)
		return;
	struct sent_mark *m = &s->marks[s->nmarks++];
	m->end = s->q_total;
	m->plugged = plugged;
	snprintf(m->busid, sizeof(m->busid), "%s", busid);
}

static bool queue_empty(const struct subscriber *s)
{
	return s->q_len == s->q_off;
}

static void wake_thread(struct notify_hub *hub)
{
	/* Non-blocking pipe: when it is full a wake-up is pending anyway. */
	(void)!write(hub->wake[1], "w", 1);
}

/* ---- The observer (table locked) ------------------------------------------ */

static void on_change(void *ctx, enum export_change change, const struct export_view *v)
{
	struct notify_hub *hub = ctx;
	char v2[NOTIFY_V2_MAX_LINE], v1[NOTIFY_V1_MAX_LINE];
	int n2, n1 = -1;

	if (change == EXPORT_CHANGE_UNPLUGGED) {
		struct notify_v2_msg m;
		memset(&m, 0, sizeof(m));
		m.type = NOTIFY_V2_UNPLUGGED;
		memcpy(m.dev.busid, v->info.busid, sizeof(m.dev.busid));
		n2 = notify_v2_encode(&m, v2, sizeof(v2));
	} else {
		n2 = notify_encode_view(change == EXPORT_CHANGE_PLUGGED ? NOTIFY_V2_PLUGGED
									 : NOTIFY_V2_HELD,
					v, v2, sizeof(v2));
	}
	if (change != EXPORT_CHANGE_HELD) {
		struct notify_v1_event ev = { .kind = change == EXPORT_CHANGE_PLUGGED
							      ? NOTIFY_V1_PLUGGED
							      : NOTIFY_V1_UNPLUGGED };
		memcpy(ev.busid, v->info.busid, sizeof(ev.busid));
		n1 = notify_v1_encode(&ev, v1, sizeof(v1));
	}

	bool any = false;
	bool logged = change != EXPORT_CHANGE_HELD;
	bool plugged = change == EXPORT_CHANGE_PLUGGED;
	pthread_mutex_lock(&hub->lock);
	for (struct subscriber *s = hub->subs; s; s = s->next) {
		if (!client_rules_allow(hub->cfg.client_rules, s->identity, &v->info))
			continue;
		if (s->state == SUB_V2 && n2 > 0) {
			if (logged)
				enqueue_event(s, v2, (size_t)n2, plugged, v->info.busid);
			else
				enqueue(s, v2, (size_t)n2);
			any = true;
		} else if (s->state == SUB_V1 && n1 > 0) {
			enqueue_event(s, v1, (size_t)n1, plugged, v->info.busid);
			any = true;
		}
	}
	pthread_mutex_unlock(&hub->lock);
	if (any)
		wake_thread(hub);
}

/* ---- Subscribing (snapshot under the table lock) --------------------------- */

struct subscribe_ctx {
	struct subscriber *s;
	enum sub_state mode;
};

static void enqueue_msg(struct subscriber *s, const struct notify_v2_msg *m)
{
	char line[NOTIFY_V2_MAX_LINE];
	int n = notify_v2_encode(m, line, sizeof(line));
	if (n > 0)
		enqueue(s, line, (size_t)n);
}

static void on_snapshot(void *ctx, const struct export_view *views, size_t count)
{
	struct subscribe_ctx *c = ctx;
	struct subscriber *s = c->s;
	struct notify_hub *hub = s->hub;
	char line[NOTIFY_V2_MAX_LINE];
	struct notify_v2_msg m;
	uint32_t sent = 0;

	pthread_mutex_lock(&hub->lock);
	if (c->mode == SUB_V2) {
		memset(&m, 0, sizeof(m));
		m.type = NOTIFY_V2_WELCOME;
		m.version = NOTIFY_V2_VERSION;
		m.heartbeat_s = hub->cfg.heartbeat_s;
		memcpy(m.name, hub->name, sizeof(m.name));
		enqueue_msg(s, &m);
	}
	for (size_t i = 0; i < count; i++) {
		int n;
		if (!client_rules_allow(hub->cfg.client_rules, s->identity, &views[i].info))
			continue;
		if (c->mode == SUB_V2) {
			n = notify_encode_view(NOTIFY_V2_DEVICE, &views[i], line, sizeof(line));
		} else {
			struct notify_v1_event ev = { .kind = NOTIFY_V1_PLUGGED };
			memcpy(ev.busid, views[i].info.busid, sizeof(ev.busid));
			n = notify_v1_encode(&ev, line, sizeof(line));
		}
		if (n > 0) {
			enqueue(s, line, (size_t)n);
			sent++;
		}
	}
	if (c->mode == SUB_V2) {
		memset(&m, 0, sizeof(m));
		m.type = NOTIFY_V2_SNAPSHOT_END;
		m.count = sent;
		enqueue_msg(s, &m);
	}
	s->state = c->mode;
	pthread_mutex_unlock(&hub->lock);
}

static void subscribe(struct subscriber *s, enum sub_state mode)
{
	struct subscribe_ctx c = { s, mode };
	int64_t now = now_ms();

	s->last_rx_ms = now;
	s->next_ping_ms = now + (int64_t)s->hub->cfg.heartbeat_s * 1000;
	if (export_table_snapshot_locked(s->hub->table, on_snapshot, &c) < 0) {
		pthread_mutex_lock(&s->hub->lock);
		mark_dead(s, false, "no memory for a snapshot");
		pthread_mutex_unlock(&s->hub->lock);
		return;
	}
	log_info("notify: %s subscribed (v%d)", s->peer, mode == SUB_V2 ? 2 : 1);
}

/* Sends "error reason=WHY" and closes once it is out (or after a grace). */
static void refuse(struct subscriber *s, const char *reason)
{
	struct notify_v2_msg m;
	memset(&m, 0, sizeof(m));
	m.type = NOTIFY_V2_ERROR;
	snprintf(m.name, sizeof(m.name), "%s", reason);
	pthread_mutex_lock(&s->hub->lock);
	enqueue_msg(s, &m);
	s->state = SUB_CLOSING;
	pthread_mutex_unlock(&s->hub->lock);
	s->deadline_ms = now_ms() + CLOSING_GRACE_MS;
}

/* Constant time in the token's content: every byte of both fields is
 * compared, whatever the lengths. */
static bool token_ok(const struct notify_hub *hub, const char *given)
{
	unsigned diff = 0;
	for (size_t i = 0; i < NOTIFY_V2_TOKEN_SIZE; i++)
		diff |= (unsigned)(hub->token[i] ^ given[i]);
	return diff == 0;
}

/* The host proved the token: its imports are allowed from now on (before
 * the welcome goes out, so a client may import as soon as it reads it). */
static void note_authenticated(struct subscriber *s)
{
	struct notify_hub *hub = s->hub;
	if (!hub->token[0] || !hub->cfg.auth || !s->have_addr)
		return;
	if (auth_hosts_login(hub->cfg.auth, &s->addr) == 0)
		s->authed = true;
	else
		log_warn("notify: %s: too many authenticated hosts; its imports will be refused",
			 s->peer);
}

static void on_hello_v2(struct subscriber *s, const char *line, size_t len)
{
	struct notify_v2_msg m;
	int rc = notify_v2_decode(line, len, &m);

	if (rc == NOTIFY_V2_E_VERSION) {
		log_warn("notify: %s: hello with a version we do not speak", s->peer);
		refuse(s, "version");
	} else if (rc != NOTIFY_V2_OK || m.type != NOTIFY_V2_HELLO) {
		log_warn("notify: %s: bad hello (%s)", s->peer,
			 rc != NOTIFY_V2_OK ? notify_v2_strerror(rc) : "not a hello");
		refuse(s, "hello");
	} else if (!token_ok(s->hub, m.token)) {
		log_warn("notify: %s: refused, wrong or missing token", s->peer);
		refuse(s, "auth");
	} else {
		note_authenticated(s);
		subscribe(s, SUB_V2);
	}
}

/* A complete line from a v2 peer: any line is a sign of life; after the
 * hello only "ping" means anything, the rest is skipped. */
static int on_line(void *ctx, const char *line, size_t len, bool overlong)
{
	struct subscriber *s = ctx;

	s->last_rx_ms = now_ms();
	if (s->state == SUB_HELLO) {
		if (overlong) {
			log_warn("notify: %s: hello line too long", s->peer);
			refuse(s, "hello");
		} else {
			on_hello_v2(s, line, len);
		}
		return 0;
	}
	return 0;
}

static void on_bytes_v1(struct subscriber *s, const uint8_t *p, size_t n)
{
	size_t k = NOTIFY_V1_HELLO_LEN - s->hello_len;
	if (k > n)
		k = n;
	memcpy(s->hello + s->hello_len, p, k);
	s->hello_len += k;
	enum notify_v1_hello_result r = notify_v1_match_hello(s->hello, s->hello_len);
	if (r == NOTIFY_V1_HELLO_PARTIAL)
		return;
	pthread_mutex_lock(&s->hub->lock);
	if (r == NOTIFY_V1_HELLO_NO) {
		mark_dead(s, false, "not a notify hello");
	} else if (s->hub->token[0]) {
		/* Logged as a warning here: refusing a v1 client is an admin's
		 * concern, not a routine goodbye. */
		log_warn("notify: %s: v1 client refused: a token is required and v1 "
			 "cannot carry one", s->peer);
		mark_dead(s, false, "closed");
	}
	bool dead = s->dead;
	pthread_mutex_unlock(&s->hub->lock);
	if (!dead)
		subscribe(s, SUB_V1);
}

static void on_bytes(struct subscriber *s, const uint8_t *p, size_t n)
{
	if (s->state == SUB_CLOSING || s->state == SUB_V1)
		return; /* nothing more to hear from these */
	if (s->detect == DETECT_NONE) {
		if (p[0] == 'C') {
			s->detect = DETECT_V1;
		} else if (p[0] == 'h') {
			s->detect = DETECT_V2;
		} else {
			pthread_mutex_lock(&s->hub->lock);
			mark_dead(s, false, "not a notify hello (first byte 0x%02x)", p[0]);
			pthread_mutex_unlock(&s->hub->lock);
			return;
		}
	}
	if (s->detect == DETECT_V1) {
		if (s->state == SUB_HELLO)
			on_bytes_v1(s, p, n);
		return;
	}
	line_framer_feed(&s->framer, p, n, on_line, s);
}

/* ---- Socket I/O (thread) --------------------------------------------------- */

static void do_read(struct subscriber *s)
{
	uint8_t buf[READ_CHUNK];
	ssize_t r = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (r > 0) {
		on_bytes(s, buf, (size_t)r);
		return;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	int err = r < 0 ? errno : 0;
	pthread_mutex_lock(&s->hub->lock);
	if (s->state == SUB_CLOSING)
		mark_dead(s, false, "closed after its error line");
	else if (err)
		mark_dead(s, false, "read failed: %s", strerror(err));
	else
		mark_dead(s, false, "disconnected");
	pthread_mutex_unlock(&s->hub->lock);
}

static void do_write(struct subscriber *s)
{
	struct sent_mark sent[SENT_MARKS];
	unsigned nsent = 0;

	pthread_mutex_lock(&s->hub->lock);
	while (!s->dead && !queue_empty(s)) {
		ssize_t w = send(s->fd, s->q + s->q_off, s->q_len - s->q_off,
				 MSG_DONTWAIT | net_os_send_flags());
		if (w > 0) {
			s->q_off += (size_t)w;
			s->sent_total += (uint64_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		mark_dead(s, false, "write failed: %s", w < 0 ? strerror(errno) : "closed");
	}
	/* Event lines now wholly in the kernel's hands: logged below, unlocked. */
	while (!s->dead && nsent < s->nmarks && s->marks[nsent].end <= s->sent_total) {
		sent[nsent] = s->marks[nsent];
		nsent++;
	}
	if (nsent > 0) {
		memmove(s->marks, s->marks + nsent, (s->nmarks - nsent) * sizeof(s->marks[0]));
		s->nmarks -= nsent;
	}
	if (!s->dead && queue_empty(s)) {
		s->q_off = s->q_len = 0;
		if (s->state == SUB_CLOSING && !s->shut_wr) {
			shutdown(s->fd, SHUT_WR);
			s->shut_wr = true;
		}
	}
	pthread_mutex_unlock(&s->hub->lock);
	for (unsigned i = 0; i < nsent; i++)
		log_info("notify: %s: %s %s sent", s->peer, sent[i].plugged ? "plugged" : "unplugged",
			 sent[i].busid);
}

/* Heartbeats, silence and deadlines. Returns the next time it wants to run. */
static int64_t do_timers(struct notify_hub *hub, int64_t now)
{
	int64_t next = now + 1000;
	int64_t silent_ms = (int64_t)hub->cfg.heartbeat_s * 1000 * NOTIFY_SILENT_HEARTBEATS;

	pthread_mutex_lock(&hub->lock);
	for (struct subscriber *s = hub->subs; s; s = s->next) {
		if (s->dead)
			continue;
		switch (s->state) {
		case SUB_HELLO:
		case SUB_CLOSING:
			if (now >= s->deadline_ms)
				mark_dead(s, false, s->state == SUB_HELLO ? "no hello in time"
									  : "closed after its error line");
			else if (s->deadline_ms < next)
				next = s->deadline_ms;
			break;
		case SUB_V2:
			if (now - s->last_rx_ms >= silent_ms) {
				mark_dead(s, true, "silent for %u heartbeats: dropped",
					  NOTIFY_SILENT_HEARTBEATS);
				break;
			}
			if (now >= s->next_ping_ms) {
				enqueue(s, "ping\n", 5);
				s->next_ping_ms = now + (int64_t)hub->cfg.heartbeat_s * 1000;
			}
			if (s->next_ping_ms < next)
				next = s->next_ping_ms;
			if (s->last_rx_ms + silent_ms < next)
				next = s->last_rx_ms + silent_ms;
			break;
		case SUB_V1:
			break;
		}
		/* Marked dead just now (or earlier, by a full queue): it is no
		 * longer polled, so only a prompt turn closes it. */
		if (s->dead)
			next = now;
	}
	pthread_mutex_unlock(&hub->lock);
	return next;
}

/* Unlinks dead subscribers under the lock; logs and frees them outside it. */
static void reap(struct notify_hub *hub, bool all)
{
	struct subscriber *gone = NULL;

	pthread_mutex_lock(&hub->lock);
	struct subscriber **pp = &hub->subs;
	while (*pp) {
		struct subscriber *s = *pp;
		if (s->dead || all) {
			*pp = s->next;
			s->next = gone;
			gone = s;
			hub->n_subs--;
			hub->dropped += s->dead && s->dead_counts;
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&hub->lock);

	while (gone) {
		struct subscriber *s = gone;
		gone = s->next;
		if (s->dead) {
			if (s->dead_counts)
				log_warn("notify: %s: %s", s->peer, s->why);
			else
				log_info("notify: %s: %s", s->peer, s->why);
		}
		/* Its host's grace period starts when its last one goes. */
		if (s->authed)
			auth_hosts_logout(hub->cfg.auth, &s->addr);
		close(s->fd);
		free(s->q);
		free(s);
	}
}

/* A connection ready to speak notify (plaintext, or a TLS relay's plain
 * end): a subscriber waiting for its hello. Takes fd. */
static void add_subscriber(struct notify_hub *hub, int fd, const struct cidr_addr *addr,
			   bool have_addr, const char *peer, const char *identity)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	struct subscriber *s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return;
	}
	s->hub = hub;
	s->fd = fd;
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	snprintf(s->identity, sizeof(s->identity), "%s", identity);
	s->addr = *addr;
	s->have_addr = have_addr;
	if (hub->cfg.sndbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &hub->cfg.sndbuf, sizeof(hub->cfg.sndbuf));
	s->state = SUB_HELLO;
	line_framer_init(&s->framer);
	s->deadline_ms = now_ms() + hub->cfg.hello_timeout_ms;

	pthread_mutex_lock(&hub->lock);
	s->next = hub->subs;
	hub->subs = s;
	hub->n_subs++;
	pthread_mutex_unlock(&hub->lock);
}

/* The gate thread: plaintext or TLS (see notify_config.tls), then hands
 * the connection to the hub thread through hub->incoming. */
static void *gate_main(void *arg)
{
	struct tls_gate *g = arg;
	struct notify_hub *hub = g->hub;
	struct timeval tv = { .tv_sec = (time_t)(hub->cfg.hello_timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(hub->cfg.hello_timeout_ms % 1000) * 1000 };
	struct timeval none = { 0 };
	setsockopt(g->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(g->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct tls_conn *c = NULL;
	bool plaintext = false;
	uint8_t first = 0;
	ssize_t r;
	do
		r = recv(g->fd, &first, 1, MSG_PEEK);
	while (r < 0 && errno == EINTR);
	if (r == 1 && !tls_looks_like_handshake(first)) {
		plaintext = hub->cfg.tls_optional;
		if (!plaintext)
			log_warn("notify: %s: plaintext connection refused: this server requires "
				 "TLS (--tls-optional accepts both)", g->peer);
	} else if (r == 1) {
		char err[TLS_ERR_SIZE] = "";
		c = tls_conn_new(hub->cfg.tls, g->fd, NULL, err);
		if (!c || tls_conn_handshake(c, err) < 0) {
			log_warn("notify: %s: TLS refused: %s", g->peer,
				 err[0] ? err : "handshake timed out");
			tls_conn_free(c);
			c = NULL;
		} else {
			snprintf(g->identity, sizeof(g->identity), "%s", tls_conn_peer(c));
			log_debug("notify: %s: TLS up (identity \"%s\")", g->peer, g->identity);
		}
	}
	setsockopt(g->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
	setsockopt(g->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));

	pthread_mutex_lock(&hub->lock);
	for (struct tls_gate **pp = &hub->gates; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	/* Under the lock, so notify_hub_stop never shuts down a descriptor a
	 * relay already owns (and may have closed). OpenSSL reads g->fd
	 * itself: the relay takes that one. */
	int sp[2] = { -1, -1 };
	if (c && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0) {
		if (tls_relay_start(c, g->fd, sp[1], true, NULL) == 0) {
			c = NULL;
			g->fd = sp[0];
			plaintext = true;
		} else {
			close(sp[0]);
			close(sp[1]);
		}
	}
	tls_conn_free(c);
	if (plaintext) {
		g->next = hub->incoming;
		hub->incoming = g;
	} else {
		close(g->fd);
	}
	/* The last touch of hub: once n_gates is 0, notify_hub_stop goes on. */
	wake_thread(hub);
	hub->n_gates--;
	pthread_cond_broadcast(&hub->gates_cond);
	pthread_mutex_unlock(&hub->lock);
	if (!plaintext)
		free(g);
	return NULL;
}

static void start_gate(struct notify_hub *hub, int fd, const struct cidr_addr *addr,
		       bool have_addr, const char *peer)
{
	struct tls_gate *g = calloc(1, sizeof(*g));
	if (!g) {
		close(fd);
		return;
	}
	*g = (struct tls_gate){ .hub = hub, .fd = fd, .addr = *addr, .have_addr = have_addr };
	snprintf(g->peer, sizeof(g->peer), "%s", peer);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&hub->lock);
	int rc = pthread_create(&g->thread, &attr, gate_main, g);
	if (rc == 0) {
		g->next = hub->gates;
		hub->gates = g;
		hub->n_gates++;
	}
	pthread_mutex_unlock(&hub->lock);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		close(fd);
		free(g);
	}
}

/* Takes the connections the gates finished (closing them when stopping). */
static void adopt_incoming(struct notify_hub *hub, bool stopping)
{
	pthread_mutex_lock(&hub->lock);
	struct tls_gate *g = hub->incoming;
	hub->incoming = NULL;
	pthread_mutex_unlock(&hub->lock);
	while (g) {
		struct tls_gate *next = g->next;
		if (stopping)
			close(g->fd);
		else
			add_subscriber(hub, g->fd, &g->addr, g->have_addr, g->peer, g->identity);
		free(g);
		g = next;
	}
}

static void accept_one(struct notify_hub *hub, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = accept(lfd, (struct sockaddr *)&ss, &sslen);
	if (fd < 0)
		return;
	fcntl(fd, F_SETFD, FD_CLOEXEC);

	char peer[64];
	struct cidr_addr addr;
	net_peer_name(fd, peer, sizeof(peer));
	bool have_addr = cidr_addr_from_sockaddr((struct sockaddr *)&ss, sslen, &addr);
	if (hub->cfg.n_allow_clients > 0 &&
	    !(have_addr && cidr_match_any(hub->cfg.allow_clients, hub->cfg.n_allow_clients, &addr))) {
		log_warn("notify: connection from %s refused: address not allowed "
			 "(--allow-client)", peer);
		close(fd);
		return;
	}
	pthread_mutex_lock(&hub->lock);
	unsigned n = hub->n_subs + hub->n_gates;
	pthread_mutex_unlock(&hub->lock);
	if (n >= hub->cfg.max_subscribers) {
		log_warn("notify: %s refused: %u subscribers already", peer,
			 hub->cfg.max_subscribers);
		close(fd);
		return;
	}
	net_tune_stream(fd);
	if (hub->cfg.tls)
		start_gate(hub, fd, &addr, have_addr, peer);
	else
		add_subscriber(hub, fd, &addr, have_addr, peer, "");
}

static void *hub_main(void *arg)
{
	struct notify_hub *hub = arg;

	for (;;) {
		reap(hub, false);
		adopt_incoming(hub, false);
		int64_t next = do_timers(hub, now_ms());

		/* Build the poll set. Only this thread links or frees
		 * subscribers, so the pointers stay valid across poll(). */
		nfds_t n = 0;
		hub->pfd[n] = (struct pollfd){ .fd = hub->wake[0], .events = POLLIN };
		hub->pfd_sub[n++] = NULL;
		pthread_mutex_lock(&hub->lock);
		bool stopping = hub->stopping;
		for (int i = 0; i < hub->n_listen; i++) {
			hub->pfd[n] = (struct pollfd){ .fd = hub->listen_fds[i], .events = POLLIN };
			hub->pfd_sub[n++] = NULL;
		}
		for (struct subscriber *s = hub->subs; s; s = s->next) {
			short ev = POLLIN;
			if (s->dead)
				continue;
			if (!queue_empty(s))
				ev |= POLLOUT;
			hub->pfd[n] = (struct pollfd){ .fd = s->fd, .events = ev };
			hub->pfd_sub[n++] = s;
		}
		pthread_mutex_unlock(&hub->lock);
		if (stopping)
			break;

		int64_t wait = next - now_ms();
		if (wait < 0)
			wait = 0;
		if (poll(hub->pfd, n, (int)wait) < 0) {
			if (errno == EINTR)
				continue;
			log_error("notify: poll failed: %s", strerror(errno));
			break;
		}
		if (hub->pfd[0].revents) {
			char drain[64];
			while (read(hub->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		for (nfds_t i = 1; i < n; i++) {
			struct subscriber *s = hub->pfd_sub[i];
			short rev = hub->pfd[i].revents;
			if (!rev)
				continue;
			if (!s) {
				if (rev & POLLIN)
					accept_one(hub, hub->pfd[i].fd);
				continue;
			}
			if (rev & POLLOUT)
				do_write(s);
			if (rev & (POLLIN | POLLHUP | POLLERR))
				do_read(s);
			/* Flush what reading queued (welcome, snapshot) now. */
			do_write(s);
		}
	}
	reap(hub, true);
	return NULL;
}

/* ---- Lifecycle ------------------------------------------------------------- */

static bool clean_string(const char *s, size_t size)
{
	size_t n = strnlen(s, size);
	if (n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return false;
	return true;
}

struct notify_hub *notify_hub_new(struct export_table *table, const struct notify_config *cfg)
{
	if (cfg->heartbeat_s < 1 || cfg->heartbeat_s > NOTIFY_MAX_HEARTBEAT_S ||
	    cfg->max_subscribers < 1 || cfg->queue_bytes < NOTIFY_V2_MAX_LINE)
		return NULL;
	if (cfg->token && !clean_string(cfg->token, NOTIFY_V2_TOKEN_SIZE)) {
		log_error("notify: the token must be at most %d printable bytes",
			  NOTIFY_V2_TOKEN_SIZE - 1);
		return NULL;
	}
	struct notify_hub *hub = calloc(1, sizeof(*hub));
	if (!hub)
		return NULL;
	size_t slots = 1 + NOTIFY_MAX_LISTEN_FDS + cfg->max_subscribers;
	hub->pfd = calloc(slots, sizeof(*hub->pfd));
	hub->pfd_sub = calloc(slots, sizeof(*hub->pfd_sub));
	if (!hub->pfd || !hub->pfd_sub) {
		free(hub->pfd);
		free(hub->pfd_sub);
		free(hub);
		return NULL;
	}
	hub->table = table;
	hub->cfg = *cfg;
	hub->cfg.token = NULL;
	hub->cfg.server_name = NULL;
	if (cfg->token)
		strcpy(hub->token, cfg->token);
	char host[256] = "usbip-notify";
	if (cfg->server_name)
		snprintf(host, sizeof(host), "%s", cfg->server_name);
	else if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "usbip-notify");
	host[sizeof(host) - 1] = '\0';
	copy_clean(hub->name, sizeof(hub->name), host, sizeof(host));
	hub->wake[0] = hub->wake[1] = -1;
	pthread_mutex_init(&hub->lock, NULL);
	pthread_cond_init(&hub->gates_cond, NULL);
	return hub;
}

int notify_hub_start(struct notify_hub *hub)
{
	int rc = net_listen(hub->cfg.host, hub->cfg.port, hub->listen_fds, NOTIFY_MAX_LISTEN_FDS);
	if (rc < 0) {
		log_error("notify: cannot listen on %s port %s: %s",
			  hub->cfg.host && *hub->cfg.host ? hub->cfg.host : "*", hub->cfg.port,
			  strerror(-rc));
		return rc;
	}
	hub->n_listen = rc;
	if (pipe(hub->wake) < 0) {
		rc = -errno;
		goto err_close_listeners;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(hub->wake[i], F_SETFD, FD_CLOEXEC);
		fcntl(hub->wake[i], F_SETFL, O_NONBLOCK);
	}
	export_table_set_observer(hub->table, on_change, hub);
	if (pthread_create(&hub->thread, NULL, hub_main, hub) != 0) {
		rc = -ENOMEM;
		goto err_unobserve;
	}
	hub->started = true;
	log_info("notify: listening on port %d (heartbeat %us%s)", notify_hub_port(hub),
		 hub->cfg.heartbeat_s, hub->token[0] ? ", token required" : "");
	return 0;

err_unobserve:
	export_table_set_observer(hub->table, NULL, NULL);
	close(hub->wake[0]);
	close(hub->wake[1]);
	hub->wake[0] = hub->wake[1] = -1;
err_close_listeners:
	for (int i = 0; i < hub->n_listen; i++)
		close(hub->listen_fds[i]);
	hub->n_listen = 0;
	return rc;
}

int notify_hub_port(const struct notify_hub *hub)
{
	return hub->n_listen > 0 ? net_local_port(hub->listen_fds[0]) : -1;
}

unsigned notify_hub_subscribers(struct notify_hub *hub)
{
	pthread_mutex_lock(&hub->lock);
	unsigned n = hub->n_subs;
	pthread_mutex_unlock(&hub->lock);
	return n;
}

unsigned long notify_hub_dropped(struct notify_hub *hub)
{
	pthread_mutex_lock(&hub->lock);
	unsigned long n = hub->dropped;
	pthread_mutex_unlock(&hub->lock);
	return n;
}

void notify_hub_stop(struct notify_hub *hub)
{
	if (!hub || !hub->started)
		return;
	hub->started = false;
	/* After this returns no observer call is running or will run. */
	export_table_set_observer(hub->table, NULL, NULL);
	pthread_mutex_lock(&hub->lock);
	hub->stopping = true;
	pthread_mutex_unlock(&hub->lock);
	wake_thread(hub);
	pthread_join(hub->thread, NULL);
	/* Gates still in a handshake end at once, and hand nothing over. */
	pthread_mutex_lock(&hub->lock);
	for (struct tls_gate *g = hub->gates; g; g = g->next)
		shutdown(g->fd, SHUT_RDWR);
	while (hub->n_gates > 0)
		pthread_cond_wait(&hub->gates_cond, &hub->lock);
	pthread_mutex_unlock(&hub->lock);
	adopt_incoming(hub, true);
	for (int i = 0; i < hub->n_listen; i++)
		close(hub->listen_fds[i]);
	hub->n_listen = 0;
	close(hub->wake[0]);
	close(hub->wake[1]);
	hub->wake[0] = hub->wake[1] = -1;
}

void notify_hub_free(struct notify_hub *hub)
{
	if (!hub)
		return;
	notify_hub_stop(hub);
	pthread_cond_destroy(&hub->gates_cond);
	pthread_mutex_destroy(&hub->lock);
	free(hub->pfd);
	free(hub->pfd_sub);
	free(hub);
}
