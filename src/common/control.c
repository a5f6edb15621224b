/* The local control socket: see control.h. */
#include "common/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"

struct control_server {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;
	int wake[2]; /* written to stop the thread */
	pthread_t thread;
	control_handler_fn fn;
	void *ctx;
};

static int make_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

static int unix_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

/* Connects with the deadline; the socket comes back blocking. */
static int connect_path(const char *path, int64_t deadline, int *out)
{
	struct sockaddr_un sa;
	int rc = make_addr(path, &sa);
	if (rc < 0)
		return rc;
	int fd = unix_socket();
	if (fd < 0)
		return fd;
	/* A Unix connect does not block on a listening socket with room in
	 * its backlog; when the backlog is full it would, so go non-blocking. */
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		if (rc == -EAGAIN || rc == -EINPROGRESS) {
			rc = net_wait_fd(fd, POLLOUT, -1, deadline);
			if (rc == 0) {
				int err = 0;
				socklen_t len = sizeof(err);
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
				rc = -err;
			}
		}
		if (rc < 0) {
			close(fd);
			return rc;
		}
	}
	fcntl(fd, F_SETFL, fl);
	*out = fd;
	return 0;
}

/* Reads until end of stream into sb (at most max bytes). */
static int read_all(int fd, struct strbuf *sb, size_t max, int64_t deadline)
{
	char buf[4096];
	for (;;) {
		int rc = net_wait_fd(fd, POLLIN, -1, deadline);
		if (rc < 0)
			return rc;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return sb->failed ? -ENOMEM : 0;
		if (sb->len + (size_t)n > max)
			return -EFBIG;
		sb_append(sb, buf, (size_t)n);
	}
}

/* Reads one line, without its "\n", into line (size n). */
static int read_line(int fd, char *line, size_t n, int64_t deadline)
{
	size_t len = 0;
	for (;;) {
		int rc = net_wait_fd(fd, POLLIN, -1, deadline);
		if (rc < 0)
			return rc;
		ssize_t r = read(fd, line + len, n - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPIPE;
		len += (size_t)r;
		line[len] = '\0';
		char *nl = memchr(line, '\n', len);
		if (nl) {
			*nl = '\0';
			return 0;
		}
		if (len == n - 1)
			return -E2BIG;
	}
}

static int write_str(int fd, const char *s, size_t n)
{
	struct iovec iov = { (void *)s, n };
	return net_writev_full(fd, &iov, 1);
}

/* After refusing an over-long request: read the rest (a little while, a
 * little data), so closing with unread bytes does not turn the answer
 * into a connection reset on the client's side. */
static void drain_input(int fd)
{
	char buf[1024];
	int64_t deadline = net_now_ms() + 500;
	size_t total = 0;
	shutdown(fd, SHUT_WR);
	while (total < 64u * 1024u && net_wait_fd(fd, POLLIN, -1, deadline) == 0) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		total += (size_t)n;
		if (memchr(buf, '\n', (size_t)n))
			break;
	}
}

static void serve_one(struct control_server *cs, int fd)
{
	char line[CONTROL_MAX_REQUEST + 2];
	int64_t deadline = net_now_ms() + CONTROL_TIMEOUT_MS;
	struct strbuf reply;
	sb_init(&reply);
	int rc = read_line(fd, line, sizeof(line), deadline);
	if (rc < 0) {
		if (rc == -E2BIG) {
			write_str(fd, "error request too long\n", 23);
			drain_input(fd);
		}
		goto out;
	}
	char *argv[CONTROL_MAX_ARGS + 1];
	int argc = 0;
	char *save = NULL;
	for (char *w = strtok_r(line, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
		if (argc == CONTROL_MAX_ARGS) {
			write_str(fd, "error too many words\n", 21);
			goto out;
		}
		argv[argc++] = w;
	}
	argv[argc] = NULL;
	if (argc == 0) {
		write_str(fd, "error empty request\n", 20);
		goto out;
	}
	rc = cs->fn(cs->ctx, argc, argv, &reply);
	if (reply.failed) {
		write_str(fd, "error out of memory\n", 20);
	} else if (rc < 0) {
		struct strbuf msg;
		sb_init(&msg);
		sb_printf(&msg, "error %s\n", reply.len ? sb_str(&reply) : strerror(-rc));
		write_str(fd, sb_str(&msg), msg.len);
		sb_free(&msg);
	} else {
		struct iovec iov[2] = { { "ok\n", 3 }, { reply.data, reply.len } };
		net_writev_full(fd, iov, reply.len ? 2 : 1);
	}
out:
	sb_free(&reply);
}

static void *control_main(void *arg)
{
	struct control_server *cs = arg;
	for (;;) {
		struct pollfd p[2] = { { cs->fd, POLLIN, 0 }, { cs->wake[0], POLLIN, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("control: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept(cs->fd, NULL, NULL);
		if (fd < 0)
			continue;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		serve_one(cs, fd);
		close(fd);
	}
	return NULL;
}

/* A socket file nobody answers on is left from a daemon that died. */
static int take_over_stale(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd;
	int rc = connect_path(path, net_now_ms() + 1000, &fd);
	if (rc == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int control_server_start(const char *path, control_handler_fn fn, void *ctx,
			 struct control_server **out)
{
	struct sockaddr_un sa;
	int rc = make_addr(path, &sa);
	if (rc < 0)
		return rc;
	struct control_server *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	snprintf(cs->path, sizeof(cs->path), "%s", path);
	cs->fn = fn;
	cs->ctx = ctx;
	cs->wake[0] = cs->wake[1] = -1;

	rc = make_parent(path);
	if (rc == 0)
		rc = take_over_stale(path);
	if (rc < 0)
		goto err_free;
	cs->fd = unix_socket();
	if (cs->fd < 0) {
		rc = cs->fd;
		goto err_free;
	}
	/* No window in which the socket is wider open than 0660. */
	mode_t old = umask(0117);
	rc = bind(cs->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (rc < 0)
		goto err_close;
	if (chmod(path, 0660) < 0 || listen(cs->fd, 16) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	if (pipe(cs->wake) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	rc = -pthread_create(&cs->thread, NULL, control_main, cs);
	if (rc < 0)
		goto err_pipe;
	*out = cs;
	return 0;

err_pipe:
	close(cs->wake[0]);
	close(cs->wake[1]);
err_unlink:
	unlink(path);
err_close:
	close(cs->fd);
err_free:
	free(cs);
	return rc;
}

void control_server_stop(struct control_server *cs)
{
	if (!cs)
		return;
	ssize_t w = write(cs->wake[1], "x", 1);
	(void)w;
	pthread_join(cs->thread, NULL);
	close(cs->wake[0]);
	close(cs->wake[1]);
	close(cs->fd);
	unlink(cs->path);
	free(cs);
}

int control_request(const char *path, const char *line, struct strbuf *reply)
{
	int64_t deadline = net_now_ms() + CONTROL_REPLY_TIMEOUT_MS;
	int fd;
	int rc = connect_path(path, deadline, &fd);
	if (rc < 0)
		return rc;
	struct iovec iov[2] = { { (void *)line, strlen(line) }, { "\n", 1 } };
	rc = net_writev_full(fd, iov, 2);
	struct strbuf all;
	sb_init(&all);
	if (rc == 0)
		rc = read_all(fd, &all, CONTROL_MAX_REPLY, deadline);
	close(fd);
	if (rc == 0) {
		const char *s = sb_str(&all);
		if (strncmp(s, "ok\n", 3) == 0) {
			sb_append(reply, s + 3, all.len - 3);
		} else if (strncmp(s, "error ", 6) == 0) {
			size_t n = strcspn(s + 6, "\n");
			sb_append(reply, s + 6, n);
			rc = -EREMOTEIO;
		} else {
			rc = -EPROTO;
		}
	}
	sb_free(&all);
	return rc;
}
