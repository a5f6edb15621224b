/* Listener, connections and the operation phase of the USB/IP server. */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"
#include "proto/busid.h"
#include "server/engine.h"
#include "server/op_reply.h"

struct connection {
	struct connection *next;
	struct server *srv;
	int fd;
	struct cidr_addr addr; /* the peer's */
	bool have_addr;
	pthread_t thread;
	bool done; /* thread finished; join and free */
};

struct server {
	struct backend *backend;
	struct server_config cfg;
	struct export_table exports;
	struct notify_hub *notify; /* NULL when disabled */
	struct auth_hosts *auth;
	bool import_auth; /* the tie is on: notify on, token set, not disabled */
	int listen_fds[SERVER_MAX_LISTEN_FDS];
	int n_listen;
	int wake[2]; /* self-pipe: tells the listener to stop */
	pthread_t listener;
	bool started;

	struct engine *engine; /* serves every session */

	pthread_mutex_t lock; /* connections list, clean list */
	struct connection *conns;
	unsigned n_conns;
	bool stopping;
	/* Devices known to be in a clean state: just plugged, or reset at the
	 * end of their last session. Their next session needs no reset. */
	char (*clean)[USBIP_BUSID_SIZE];
	size_t n_clean, cap_clean;
};

/* Marks busid clean (or not). Caller holds srv->lock. */
static void set_clean_locked(struct server *srv, const char *busid, bool clean)
{
	for (size_t i = 0; i < srv->n_clean; i++) {
		if (strcmp(srv->clean[i], busid) == 0) {
			if (!clean)
				memcpy(srv->clean[i], srv->clean[--srv->n_clean], USBIP_BUSID_SIZE);
			return;
		}
	}
	if (!clean)
		return;
	if (srv->n_clean == srv->cap_clean) {
		size_t n = srv->cap_clean ? srv->cap_clean * 2 : 16;
		void *p = realloc(srv->clean, n * sizeof(*srv->clean));
		if (!p)
			return; /* forgetting costs a reset, nothing else */
		srv->clean = p;
		srv->cap_clean = n;
	}
	snprintf(srv->clean[srv->n_clean++], USBIP_BUSID_SIZE, "%s", busid);
}

static void set_clean(struct server *srv, const char *busid, bool clean)
{
	pthread_mutex_lock(&srv->lock);
	set_clean_locked(srv, busid, clean);
	pthread_mutex_unlock(&srv->lock);
}

/* True if busid was clean; it is not any more (a session takes it). */
static bool take_clean(struct server *srv, const char *busid)
{
	pthread_mutex_lock(&srv->lock);
	bool was = false;
	for (size_t i = 0; i < srv->n_clean && !was; i++)
		was = strcmp(srv->clean[i], busid) == 0;
	set_clean_locked(srv, busid, false);
	pthread_mutex_unlock(&srv->lock);
	return was;
}

void server_config_defaults(struct server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->port = SERVER_DEFAULT_PORT;
	cfg->limits.max_urbs = SESSION_DEFAULT_MAX_URBS;
	cfg->limits.max_bytes = SESSION_DEFAULT_MAX_BYTES;
	cfg->limits.stall_close_ms = SESSION_DEFAULT_STALL_CLOSE_MS;
	cfg->max_connections = 64;
	cfg->import_auth = true;
	cfg->auth_grace_ms = AUTH_HOSTS_DEFAULT_GRACE_MS;
	cfg->op_timeout_ms = SERVER_DEFAULT_OP_TIMEOUT_MS;
	cfg->busy_poll_us = SERVER_DEFAULT_BUSY_POLL_US;
	notify_config_defaults(&cfg->notify);
}

/* --detach-on-export: the device was just exported or released. A device
 * that was here before the server started may have been left mid-command
 * (by an earlier server, say): with nothing bound to it any more, it is
 * reset now rather than before its first session, which the importing
 * client would wait for. */
static void take_drivers(struct server *srv, const char *busid, bool found_at_start)
{
	const struct backend_ops *ops = srv->backend->ops;
	if (!srv->cfg.detach_on_export || !ops->detach_drivers)
		return;
	int rc = ops->detach_drivers(srv->backend, busid);
	if (rc < 0 && rc != -LNX_ENODEV)
		log_warn("device %s: cannot take its drivers at export: %s", busid,
			 linux_errno_name(rc));
	if (rc < 0 || !found_at_start)
		return;
	struct bk_handle *h = NULL;
	rc = ops->open(srv->backend, busid, &h);
	if (rc == 0)
		rc = ops->reset(h);
	if (h)
		ops->close(h);
	if (rc == 0)
		set_clean(srv, busid, true);
	else
		log_warn("device %s: reset at export failed: %s (its first session resets it)",
			 busid, linux_errno_name(rc));
}

static void on_hotplug(void *ctx, enum bk_hotplug_event ev, const struct bk_device_info *info)
{
	struct server *srv = ctx;
	/* A device that just enumerated is in a clean state; one that left
	 * and comes back is a new device. */
	set_clean(srv, info->busid, ev == BK_DEVICE_ARRIVED);
	if (ev == BK_DEVICE_ARRIVED) {
		/* The first sign of a plug on the server (attach-path timing). */
		log_info("device %s arrived", info->busid);
		if (export_table_add(&srv->exports, info)) {
			log_info("device %s (%04x:%04x) plugged", info->busid, info->idVendor,
				 info->idProduct);
			take_drivers(srv, info->busid, false);
		}
	} else if (export_table_remove(&srv->exports, info->busid)) {
		log_info("device %s unplugged", info->busid);
	}
}

struct server *server_new(struct backend *b, const struct server_config *cfg)
{
	struct server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return NULL;
	srv->auth = auth_hosts_new(cfg->auth_grace_ms);
	if (!srv->auth) {
		free(srv);
		return NULL;
	}
	srv->backend = b;
	srv->cfg = *cfg;
	srv->import_auth = cfg->import_auth && cfg->notify.enabled && cfg->notify.token &&
			   cfg->notify.token[0];
	srv->cfg.notify.allow_clients = cfg->allow_clients;
	srv->cfg.notify.n_allow_clients = cfg->n_allow_clients;
	srv->cfg.notify.auth = srv->import_auth ? srv->auth : NULL;
	srv->cfg.notify.tls = cfg->tls; /* both ports */
	srv->cfg.notify.tls_optional = cfg->tls_optional;
	srv->cfg.notify.client_rules = cfg->client_rules;
	srv->wake[0] = srv->wake[1] = -1;
	export_table_init(&srv->exports, cfg->filter, cfg->filter_ctx);
	pthread_mutex_init(&srv->lock, NULL);
	return srv;
}

struct export_table *server_exports(struct server *srv)
{
	return &srv->exports;
}

struct notify_hub *server_notify(struct server *srv)
{
	return srv->notify;
}

struct auth_hosts *server_auth_hosts(struct server *srv)
{
	return srv->auth;
}

int server_notify_port(const struct server *srv)
{
	return srv->notify ? notify_hub_port(srv->notify) : -1;
}

unsigned long server_busy_polls(const struct server *srv)
{
	return srv->engine ? engine_busy_polls(srv->engine) : 0;
}

unsigned server_busy_poll_window(const struct server *srv, bool device)
{
	return srv->engine ? engine_busy_poll_window(srv->engine, device) : 0;
}

int server_port(const struct server *srv)
{
	return srv->n_listen > 0 ? net_local_port(srv->listen_fds[0]) : -1;
}

static void set_timeout(int fd, int opt, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* The operation phase's socket: plain, or TLS in userspace. */
struct op_io {
	int fd;
	int64_t deadline; /* for the whole operation request (plaintext) */
	struct tls_conn *tls; /* NULL: plaintext, or after the hand-off */
	char identity[TLS_IDENTITY_SIZE]; /* the TLS peer's (a copy), "" without TLS */
};

static ssize_t read_op(int fd, void *buf, size_t n, int64_t deadline);

/* Through TLS each read has the socket's timeout (op_timeout_ms); in
 * plaintext the whole request has one deadline (read_op). */
static ssize_t io_read_full(struct op_io *io, void *buf, size_t n)
{
	return io->tls ? tls_conn_read_full(io->tls, buf, n) : read_op(io->fd, buf, n, io->deadline);
}

/* One write (one TLS record for an operation reply). */
static int io_write(struct op_io *io, const void *buf, size_t n)
{
	if (io->tls)
		return tls_conn_write(io->tls, buf, n);
	struct iovec iov = { (void *)buf, n };
	return net_writev_full(io->fd, &iov, 1);
}

static int send_op_status(struct op_io *io, uint16_t code, uint32_t status)
{
	uint8_t buf[USBIP_OP_COMMON_SIZE];
	struct usbip_op_common op = { USBIP_VERSION, code, status };
	usbip_op_common_encode(&op, buf, sizeof(buf));
	return io_write(io, buf, sizeof(buf));
}

static void serve_devlist(struct server *srv, struct op_io *io)
{
	struct export_view *devs;
	int n = export_table_snapshot(&srv->exports, &devs);
	if (n < 0) {
		send_op_status(io, USBIP_OP_REP_DEVLIST, USBIP_ST_ERROR);
		return;
	}
	/* A client sees only what its rules let it import. */
	int kept = 0;
	for (int i = 0; i < n; i++)
		if (client_rules_allow(srv->cfg.client_rules, io->identity, &devs[i].info))
			devs[kept++] = devs[i];
	n = kept;
	uint8_t *reply;
	int len = op_devlist_reply(devs, (size_t)n, &reply);
	free(devs);
	if (len < 0) {
		send_op_status(io, USBIP_OP_REP_DEVLIST, USBIP_ST_ERROR);
		return;
	}
	io_write(io, reply, (size_t)len);
	free(reply);
}

static void holder_gone_while_closing(struct export_holder *holder)
{
	(void)holder; /* the session is over already */
}

/* The session's socket after a TLS import: the connection itself with
 * kernel TLS on it, or one end of a socketpair whose other end a relay
 * thread carries through userspace TLS (*relay). Takes io->tls either way.
 * Returns the fd or a negative errno; *mode names the path for the log. */
static int session_socket(struct op_io *io, struct tls_relay **relay, const char **mode)
{
	*relay = NULL;
	if (!io->tls) {
		*mode = "plaintext";
		return io->fd;
	}
	struct tls_conn *tls = io->tls;
	io->tls = NULL;
	int rc = tls_conn_ktls(tls);
	if (rc == 0) {
		tls_conn_free(tls);
		*mode = "kernel TLS";
		return io->fd;
	}
	if (rc != -ENOENT && rc != -ENOTSUP) {
		tls_conn_free(tls);
		return rc;
	}
	int sp[2] = { -1, -1 };
	int tcp = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    (tcp = fcntl(io->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		rc = -errno;
		goto err_close;
	}
	/* The relay's reads and writes must not time out as the operation
	 * phase's did (the same socket: this is for both descriptors). */
	set_timeout(tcp, SO_RCVTIMEO, 0);
	set_timeout(tcp, SO_SNDTIMEO, 0);
	rc = tls_relay_start(tls, tcp, sp[1], false, relay);
	if (rc < 0)
		goto err_close;
	*mode = "userspace TLS relay";
	return sp[0];

err_close:
	if (sp[0] >= 0) {
		close(sp[0]);
		close(sp[1]);
	}
	if (tcp >= 0)
		close(tcp);
	tls_conn_free(tls);
	return rc;
}

static void serve_import(struct server *srv, struct op_io *io, const char *busid,
			 const char *peer)
{
	struct tls_relay *relay = NULL;
	int sfd = -1;
	struct session *s = session_new(srv->backend, srv->engine, io->fd, &srv->cfg.limits);
	if (!s) {
		send_op_status(io, USBIP_OP_REP_IMPORT, USBIP_ST_ERROR);
		return;
	}

	struct bk_device_info info;
	/* Who holds it, for `list` and the control socket. */
	snprintf(session_holder(s)->peer, EXPORT_PEER_SIZE, "%s", peer);
	enum export_claim_result cr = export_table_claim(&srv->exports, busid, session_holder(s),
							  &info);
	if (cr != EXPORT_CLAIMED) {
		log_info("%s: import of %s refused: %s", peer, busid,
			 cr == EXPORT_BUSY ? "held by another client" : "no such device");
		send_op_status(io, USBIP_OP_REP_IMPORT,
			       cr == EXPORT_BUSY ? USBIP_ST_DEV_BUSY : USBIP_ST_NODEV);
		goto err_free;
	}
	if (!client_rules_allow(srv->cfg.client_rules, io->identity, &info)) {
		log_warn("%s: import of %s refused: no --allow-client-device rule for %s%s%s", peer,
			 busid, io->identity[0] ? "identity \"" : "a client without a TLS identity",
			 io->identity, io->identity[0] ? "\"" : "");
		send_op_status(io, USBIP_OP_REP_IMPORT, USBIP_ST_NA);
		goto err_release;
	}

	session_set_need_reset(s, !take_clean(srv, busid));
	int rc = session_open_device(s, &info);
	if (rc < 0) {
		log_warn("%s: import of %s failed: cannot open the device (%s)", peer, busid,
			 linux_errno_name(rc));
		send_op_status(io, USBIP_OP_REP_IMPORT, USBIP_ST_DEV_ERR);
		goto err_release;
	}
	struct metrics_device *md = srv->cfg.metrics ? metrics_device(srv->cfg.metrics, busid) : NULL;
	session_set_observers(s, md, srv->cfg.trace);

	uint8_t reply[USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE];
	struct usbip_device_record rec;
	op_device_record(&info, &rec);
	int len = usbip_import_reply_encode(USBIP_ST_OK, &rec, reply, sizeof(reply));
	if (len < 0 || io_write(io, reply, (size_t)len) < 0)
		goto err_release;

	const char *mode = "";
	sfd = session_socket(io, &relay, &mode);
	if (sfd < 0) {
		log_warn("%s: import of %s failed: cannot set up TLS for the session (%s)", peer,
			 busid, strerror(-sfd));
		goto err_release;
	}
	session_set_fd(s, sfd);
	if (io->identity[0])
		log_info("%s: imported %s (TLS identity \"%s\", %s)", peer, busid, io->identity,
			 mode);
	else
		log_info("%s: imported %s", peer, busid);
	set_timeout(io->fd, SO_RCVTIMEO, 0); /* the session's socket is non-blocking from here */
	session_run(s);
	if (session_ended_clean(s))
		set_clean(srv, busid, true);

err_release:
	/* Close the device before offering it again, and let a placeholder
	 * hold it meanwhile: the table may call its holder's gone() (the
	 * device leaving) at any moment, also while the session is freed. */
	{
		struct export_holder closing = { .gone = holder_gone_while_closing };
		export_table_replace_holder(&srv->exports, busid, session_holder(s), &closing);
		session_free(s);
		s = NULL;
		export_table_release(&srv->exports, busid, &closing);
		/* A reset at the session's end lets drivers bind again. */
		take_drivers(srv, busid, false);
	}
err_free:
	session_free(s);
	if (relay) {
		tls_relay_stop(relay); /* closes its end of the pair */
		close(sfd);
	}
}

/* Reads exactly n bytes of the operation request before the deadline. The
 * deadline covers the whole request, not each recv: a peer that trickles a
 * byte now and then must not hold a connection slot for minutes. Returns n,
 * 0 for an end of stream before the first byte, -EPIPE for one in the
 * middle, -ETIMEDOUT or another -errno. */
static ssize_t read_op(int fd, void *buf, size_t n, int64_t deadline)
{
	size_t got = 0;
	while (got < n) {
		int w = net_wait_fd(fd, POLLIN, -1, deadline);
		if (w < 0)
			return w;
		ssize_t r = recv(fd, (char *)buf + got, n - got, MSG_DONTWAIT);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			return got == 0 ? 0 : -EPIPE;
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
	}
	return (ssize_t)n;
}

static const char *op_read_error(ssize_t r)
{
	if (r == -ETIMEDOUT)
		return "not complete in time";
	return r == 0 || r == -EPIPE ? "cut short" : strerror((int)-r);
}

/* With imports tied to the notify token: has this peer's host proved it? */
static bool host_authenticated(struct server *srv, const struct connection *c)
{
	return !srv->import_auth || (c->have_addr && auth_hosts_allowed(srv->auth, &c->addr));
}

/* With TLS configured: a TLS handshake, or plaintext where --tls-optional
 * allows it. Returns false (logged) to drop the connection. */
static bool start_tls(struct server *srv, struct op_io *io, const char *peer)
{
	uint8_t first = 0;
	ssize_t r;
	do
		r = recv(io->fd, &first, 1, MSG_PEEK);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return false; /* gone before saying anything */
	if (!tls_looks_like_handshake(first)) {
		if (srv->cfg.tls_optional)
			return true;
		log_warn("%s: plaintext connection refused: this server requires TLS "
			 "(--tls-optional accepts both)", peer);
		return false;
	}
	char err[TLS_ERR_SIZE] = "";
	io->tls = tls_conn_new(srv->cfg.tls, io->fd, NULL, err);
	if (!io->tls || tls_conn_handshake(io->tls, err) < 0) {
		log_warn("%s: TLS refused: %s", peer, err[0] ? err : "handshake timed out");
		tls_conn_free(io->tls);
		io->tls = NULL;
		return false;
	}
	snprintf(io->identity, sizeof(io->identity), "%s", tls_conn_peer(io->tls));
	log_debug("%s: TLS up (%s, identity \"%s\")", peer, tls_conn_cipher(io->tls),
		  io->identity);
	return true;
}

/* One connection: one operation request, and a session after an import. */
static void *connection_main(void *arg)
{
	struct connection *c = arg;
	struct server *srv = c->srv;
	int fd = c->fd;
	char peer[64], host[CIDR_TEXT_SIZE];
	net_peer_name(fd, peer, sizeof(peer));
	cidr_addr_format(&c->addr, host, sizeof(host));
	net_tune_stream(fd);
	int64_t deadline = net_now_ms() + srv->cfg.op_timeout_ms;
	/* Through TLS each read and write has this timeout; in plaintext the
	 * reads share one deadline, and a reply (a long device list) to a
	 * peer that never reads must not hold this thread either. */
	set_timeout(fd, SO_RCVTIMEO, srv->cfg.op_timeout_ms);
	set_timeout(fd, SO_SNDTIMEO, srv->cfg.op_timeout_ms);

	struct op_io io = { .fd = fd, .deadline = deadline };
	uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
	struct usbip_op_common op;
	if (srv->cfg.tls && !start_tls(srv, &io, peer))
		goto out;
	ssize_t r = io_read_full(&io, req, USBIP_OP_COMMON_SIZE);
	int rc = r == USBIP_OP_COMMON_SIZE ? usbip_op_common_decode(req, USBIP_OP_COMMON_SIZE, &op)
					   : USBIP_E_SHORT;
	if (rc != USBIP_OK) {
		log_warn("%s: bad operation request (%s)", peer,
			 r == USBIP_OP_COMMON_SIZE ? usbip_codec_strerror(rc) : op_read_error(r));
	} else if (op.code == USBIP_OP_REQ_DEVLIST) {
		/* No reply at all: the list is what the token protects. */
		if (host_authenticated(srv, c))
			serve_devlist(srv, &io);
		else
			log_warn("device list for %s refused: host has not authenticated on the "
				 "notify channel", host);
	} else if (op.code == USBIP_OP_REQ_IMPORT) {
		char busid[USBIP_BUSID_SIZE];
		r = io_read_full(&io, req + USBIP_OP_COMMON_SIZE, USBIP_BUSID_SIZE);
		rc = r == USBIP_BUSID_SIZE ? usbip_import_request_decode(req, sizeof(req), busid)
					   : USBIP_E_SHORT;
		/* Only a busid of the kernel's form goes further (into the
		 * export table and the log): a newline or escape sequence in
		 * it would forge log lines. */
		bool form_ok = rc == USBIP_OK && busid_valid(busid);
		if (rc == USBIP_OK && !form_ok) {
			log_warn("%s: bad import request (busid not of the form BUS-PORT[.PORT...])",
				 peer);
			send_op_status(&io, USBIP_OP_REP_IMPORT, USBIP_ST_NA);
		} else if (rc == USBIP_OK && !host_authenticated(srv, c)) {
			log_warn("import of %s from %s refused: host has not authenticated on the "
				 "notify channel", busid, host);
			send_op_status(&io, USBIP_OP_REP_IMPORT, USBIP_ST_NA);
		} else if (rc == USBIP_OK) {
			serve_import(srv, &io, busid, peer);
		} else {
			log_warn("%s: bad import request (%s)", peer,
				 r == USBIP_BUSID_SIZE ? usbip_codec_strerror(rc) : op_read_error(r));
			send_op_status(&io, USBIP_OP_REP_IMPORT, USBIP_ST_NA);
		}
	} else {
		log_warn("%s: unexpected operation 0x%04x", peer, op.code);
	}

out:
	tls_conn_free(io.tls);
	pthread_mutex_lock(&srv->lock);
	close(fd);
	c->fd = -1;
	c->done = true;
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* Joins and frees finished connections. Caller holds srv->lock. */
static void reap_connections(struct server *srv)
{
	struct connection **pp = &srv->conns;
	while (*pp) {
		struct connection *c = *pp;
		if (c->done) {
			*pp = c->next;
			pthread_join(c->thread, NULL);
			srv->n_conns--;
			free(c);
		} else {
			pp = &c->next;
		}
	}
}

static void accept_one(struct server *srv, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = accept(lfd, (struct sockaddr *)&ss, &sslen);
	if (fd < 0)
		return;
	fcntl(fd, F_SETFD, FD_CLOEXEC);

	struct cidr_addr addr;
	bool have_addr = cidr_addr_from_sockaddr((struct sockaddr *)&ss, sslen, &addr);
	const struct server_config *cfg = &srv->cfg;
	if (cfg->n_allow_clients > 0 &&
	    !(have_addr && cidr_match_any(cfg->allow_clients, cfg->n_allow_clients, &addr))) {
		char peer[64];
		net_peer_name(fd, peer, sizeof(peer));
		log_warn("connection from %s refused: address not allowed (--allow-client)", peer);
		close(fd);
		return;
	}

	pthread_mutex_lock(&srv->lock);
	reap_connections(srv);
	if (srv->n_conns >= srv->cfg.max_connections) {
		pthread_mutex_unlock(&srv->lock);
		log_warn("connection refused: %u connections already", srv->cfg.max_connections);
		close(fd);
		return;
	}
	struct connection *c = calloc(1, sizeof(*c));
	if (c) {
		c->srv = srv;
		c->fd = fd;
		c->addr = addr;
		c->have_addr = have_addr;
		if (pthread_create(&c->thread, NULL, connection_main, c) == 0) {
			c->next = srv->conns;
			srv->conns = c;
			srv->n_conns++;
			c = NULL;
			fd = -1;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	free(c);
	if (fd >= 0)
		close(fd);
}

static void *listener_main(void *arg)
{
	struct server *srv = arg;
	struct pollfd pfd[SERVER_MAX_LISTEN_FDS + 1];

	for (;;) {
		int n = 0;
		pfd[n++] = (struct pollfd){ .fd = srv->wake[0], .events = POLLIN };
		for (int i = 0; i < srv->n_listen; i++)
			pfd[n++] = (struct pollfd){ .fd = srv->listen_fds[i], .events = POLLIN };
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("listener: poll failed: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		for (int i = 1; i < n; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(srv, pfd[i].fd);
	}
	return NULL;
}

int server_start(struct server *srv)
{
	struct bk_device_info *devs = NULL;
	size_t count = 0;
	int rc = srv->backend->ops->enumerate(srv->backend, &devs, &count);
	if (rc < 0) {
		log_error("cannot list USB devices: %s", linux_errno_name(rc));
		return rc;
	}
	for (size_t i = 0; i < count; i++)
		if (export_table_add(&srv->exports, &devs[i])) {
			log_info("exporting %s (%04x:%04x %s)", devs[i].busid, devs[i].idVendor,
				 devs[i].idProduct, devs[i].product);
			take_drivers(srv, devs[i].busid, true);
		}
	free(devs);

	rc = net_listen(srv->cfg.host, srv->cfg.port, srv->listen_fds, SERVER_MAX_LISTEN_FDS);
	if (rc < 0) {
		log_error("cannot listen on %s port %s: %s",
			  srv->cfg.host && *srv->cfg.host ? srv->cfg.host : "*", srv->cfg.port,
			  strerror(-rc));
		return rc;
	}
	srv->n_listen = rc;
	if (pipe(srv->wake) < 0) {
		rc = -errno;
		goto err_close;
	}

	/* The hub observes the table before hotplug events flow, and takes
	 * each subscriber's snapshot under the table's lock. */
	if (srv->cfg.notify.enabled) {
		srv->notify = notify_hub_new(&srv->exports, &srv->cfg.notify);
		if (!srv->notify) {
			log_error("notify: bad configuration");
			rc = -EINVAL;
			goto err_close;
		}
		rc = notify_hub_start(srv->notify);
		if (rc < 0)
			goto err_free_notify;
	}

	backend_set_hotplug(srv->backend, on_hotplug, srv);
	rc = srv->backend->ops->start(srv->backend);
	if (rc < 0)
		goto err_free_notify;
	srv->engine = engine_new(srv->backend);
	if (srv->engine)
		engine_set_busy_poll(srv->engine, srv->cfg.busy_poll_us, !srv->cfg.busy_poll_fixed);
	if (!srv->engine || engine_start(srv->engine) < 0) {
		rc = -ENOMEM;
		goto err_stop_backend;
	}
	if (pthread_create(&srv->listener, NULL, listener_main, srv) != 0) {
		rc = -ENOMEM;
		goto err_stop_backend;
	}
	srv->started = true;
	log_info("listening on port %d", server_port(srv));
	for (size_t i = 0; i < srv->cfg.n_allow_clients; i++) {
		char rule[CIDR_TEXT_SIZE];
		cidr_format(&srv->cfg.allow_clients[i], rule, sizeof(rule));
		log_info("clients allowed from %s", rule);
	}
	if (srv->import_auth)
		log_info("device lists and imports only for hosts authenticated on the notify "
			 "channel (grace %u ms)", srv->cfg.auth_grace_ms);
	return 0;

err_stop_backend:
	engine_free(srv->engine);
	srv->engine = NULL;
	srv->backend->ops->stop(srv->backend);
err_free_notify:
	notify_hub_free(srv->notify);
	srv->notify = NULL;
err_close:
	for (int i = 0; i < srv->n_listen; i++)
		close(srv->listen_fds[i]);
	srv->n_listen = 0;
	return rc;
}

void server_stop(struct server *srv)
{
	if (!srv->started)
		return;
	srv->started = false;
	notify_hub_stop(srv->notify);
	(void)!write(srv->wake[1], "x", 1);
	pthread_join(srv->listener, NULL);
	for (int i = 0; i < srv->n_listen; i++)
		close(srv->listen_fds[i]);
	srv->n_listen = 0;

	/* End every connection: a reader blocked in recv wakes up with EOF. */
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	for (struct connection *c = srv->conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&srv->lock);
	for (;;) {
		pthread_mutex_lock(&srv->lock);
		struct connection *c = srv->conns;
		if (c)
			srv->conns = c->next;
		pthread_mutex_unlock(&srv->lock);
		if (!c)
			break;
		pthread_join(c->thread, NULL);
		free(c);
	}
	srv->n_conns = 0;
	engine_free(srv->engine); /* every session has ended */
	srv->engine = NULL;
	srv->backend->ops->stop(srv->backend);
}

void server_free(struct server *srv)
{
	if (!srv)
		return;
	server_stop(srv);
	if (srv->wake[0] >= 0) {
		close(srv->wake[0]);
		close(srv->wake[1]);
	}
	notify_hub_free(srv->notify);
	auth_hosts_free(srv->auth);
	export_table_destroy(&srv->exports);
	free(srv->clean);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
