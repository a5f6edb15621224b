/* The fake vhci_hcd of the integration tests (fake_vhci.h). */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <time.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_vhci.h"

void fk_init(struct fake_kernel *fk, const char *root)
{
	char p[PATH_MAX];
	const char *dirs[] = { "devices", "devices/platform", "devices/platform/vhci_hcd.0" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", root, dirs[i]);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	snprintf(fk->hc_dir, sizeof(fk->hc_dir), "%s/devices/platform/vhci_hcd.0", root);
	pthread_mutex_init(&fk->lock, NULL);
	for (int i = 0; i < NPORTS; i++)
		fk->ports[i].kfd = -1;
	const char *attrs[] = { "attach", "detach", "nports" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", fk->hc_dir, attrs[i]);
		FILE *fp = fopen(p, "w");
		assert_non_null(fp);
		if (i == 2)
			fprintf(fp, "%d\n", NPORTS);
		fclose(fp);
	}
	fk_write_status_locked(fk);
}

void fk_destroy(struct fake_kernel *fk)
{
	for (int i = 0; i < NPORTS; i++)
		fk_port_gone(fk, i);
	pthread_mutex_destroy(&fk->lock);
}

void fk_write_status_locked(struct fake_kernel *fk)
{
	char text[2048], path[PATH_MAX + 16];
	size_t len = (size_t)snprintf(text, sizeof(text), "hub port sta spd dev      sockfd local_busid\n");
	for (int i = 0; i < NPORTS; i++) {
		const struct fake_port *p = &fk->ports[i];
		bool shown = p->used && p->enumerated;
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"%s  %04d %03d %03u %08x %06d %s\n", i < HALF ? "hs" : "ss", i,
					shown ? 6 : (p->used ? 5 : 4), shown ? p->speed : 0,
					shown ? p->devid : 0, shown ? p->kfd : 0,
					shown ? "9-1" : "0-0");
	}
	snprintf(path, sizeof(path), "%s/status", fk->hc_dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && strcmp(s + n - t, tail) == 0;
}

static int peer_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

int fk_write(void *ctx, const char *path, const char *text)
{
	struct fake_kernel *fk = ctx;
	int rc = 0;
	pthread_mutex_lock(&fk->lock);
	if (ends_with(path, "/attach")) {
		int port, sockfd;
		unsigned devid, speed;
		char extra;
		if (sscanf(text, "%d %d %u %u%c", &port, &sockfd, &devid, &speed, &extra) != 4 ||
		    port < 0 || port >= NPORTS || speed < 1 || speed > 5 ||
		    (speed == 5) != (port >= HALF)) {
			rc = -EINVAL;
		} else if (fk->ports[port].used) {
			rc = -EBUSY;
		} else if (peer_port(sockfd) != fk->usbip_port) {
			fk->bad_sockets++;
			rc = -EINVAL;
		} else {
			struct fake_port *p = &fk->ports[port];
			p->used = true;
			p->enumerated = !fk->slow_enumeration;
			p->devid = devid;
			p->speed = speed;
			p->kfd = dup(sockfd);
			fk->attaches++;
			fk->last_attach_port = port;
			fk_write_status_locked(fk);
		}
	} else if (ends_with(path, "/detach")) {
		int port;
		if (sscanf(text, "%d", &port) != 1 || port < 0 || port >= NPORTS ||
		    !fk->ports[port].used) {
			rc = -EINVAL;
		} else {
			close(fk->ports[port].kfd);
			fk->ports[port].used = false;
			fk->detaches++;
			fk->last_detach_port = port;
			fk_write_status_locked(fk);
		}
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&fk->lock);
	return rc;
}

/* What vhci does by itself when the server closes a session. The port is
 * shown free before the socket closes: the server's "held=0" for the
 * device, which the close causes, must find it free (a daemon that reads
 * the status before the fake rewrote it kept the stale attachment and the
 * test failed about one run in five). */
void fk_port_gone(struct fake_kernel *fk, int port)
{
	pthread_mutex_lock(&fk->lock);
	if (fk->ports[port].used) {
		fk->ports[port].used = false;
		fk_write_status_locked(fk);
		close(fk->ports[port].kfd);
	}
	pthread_mutex_unlock(&fk->lock);
}

/* The hub enumerated the device on port: vhci shows it in use with its devid. */
void fk_enumerate(struct fake_kernel *fk, int port)
{
	pthread_mutex_lock(&fk->lock);
	fk->ports[port].enumerated = true;
	fk_write_status_locked(fk);
	pthread_mutex_unlock(&fk->lock);
}

int fk_count(struct fake_kernel *fk, const int *field)
{
	pthread_mutex_lock(&fk->lock);
	int v = *field;
	pthread_mutex_unlock(&fk->lock);
	return v;
}


static void *watch_ports(void *arg)
{
	struct fk_watcher *w = arg;
	while (!atomic_load(&w->stop)) {
		struct pollfd pfd[NPORTS];
		int port[NPORTS], n = 0;
		pthread_mutex_lock(&w->fk->lock);
		for (int i = 0; i < NPORTS; i++) {
			if (w->fk->ports[i].used) {
				pfd[n] = (struct pollfd){ .fd = w->fk->ports[i].kfd, .events = POLLIN };
				port[n++] = i;
			}
		}
		pthread_mutex_unlock(&w->fk->lock);
		if (poll(pfd, (nfds_t)n, 0) > 0) {
			for (int i = 0; i < n; i++) {
				char c;
				if ((pfd[i].revents & (POLLERR | POLLHUP)) ||
				    ((pfd[i].revents & POLLIN) &&
				     recv(pfd[i].fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0))
					fk_port_gone(w->fk, port[i]);
			}
		}
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

void fk_watch_start(struct fk_watcher *w, struct fake_kernel *fk)
{
	w->fk = fk;
	atomic_store(&w->stop, false);
	assert_int_equal(pthread_create(&w->th, NULL, watch_ports, w), 0);
}

void fk_watch_stop(struct fk_watcher *w)
{
	atomic_store(&w->stop, true);
	pthread_join(w->th, NULL);
}
