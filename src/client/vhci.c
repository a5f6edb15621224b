#include "client/vhci.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/busid.h"

#define VHCI_PLATFORM_DIR "devices/platform"
#define VHCI_HC0 "vhci_hcd.0"
#define VHCI_ROW_TOKENS 7
#define VHCI_RECORD_MAX 512

static int copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(dst, src, n + 1);
	return 0;
}

static int join_path(char *out, size_t size, const char *a, const char *b)
{
	int n = snprintf(out, size, "%s/%s", a, b);
	return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

int vhci_write_file(void *ctx, const char *path, const char *text)
{
	(void)ctx;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text);
	ssize_t w;
	do {
		w = write(fd, text, len);
	} while (w < 0 && errno == EINTR);
	int err = w < 0 ? -errno : ((size_t)w == len ? 0 : -EIO);
	close(fd);
	return err;
}

int vhci_init(struct vhci *v, const char *sysfs_root, const char *run_dir,
	      const struct vhci_ops *ops)
{
	memset(v, 0, sizeof(*v));
	int err = copy_str(v->sysfs_root, sizeof(v->sysfs_root), sysfs_root);
	if (err == 0)
		err = copy_str(v->run_dir, sizeof(v->run_dir), run_dir);
	if (ops && ops->write_attr)
		v->ops = *ops;
	else
		v->ops.write_attr = vhci_write_file;
	return err;
}

int vhci_read_attr(const char *path, char *buf, size_t size)
{
	if (size == 0)
		return -EINVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	int err = 0;
	for (;;) {
		if (got == size - 1) {
			/* Full: it fits only if nothing is left. */
			char extra;
			ssize_t r = read(fd, &extra, 1);
			if (r > 0)
				err = -EFBIG;
			else if (r < 0)
				err = -errno;
			break;
		}
		ssize_t r = read(fd, buf + got, size - 1 - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (err)
		return err;
	buf[got] = '\0';
	return (int)got;
}

int vhci_locate(struct vhci *v)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct stat st;
	int err = join_path(dir, sizeof(dir), v->sysfs_root, VHCI_PLATFORM_DIR "/" VHCI_HC0);
	if (err)
		return err;
	err = join_path(path, sizeof(path), dir, "attach");
	if (err)
		return err;
	if (stat(path, &st) < 0)
		return -errno;
	return copy_str(v->hc_dir, sizeof(v->hc_dir), dir);
}

int vhci_load_module(struct vhci *v)
{
	if (vhci_locate(v) == 0)
		return 0;
	/* Only ever load the module for the real sysfs: a test root must not
	 * make us run anything. */
	if (strcmp(v->sysfs_root, "/sys") != 0)
		return -ENOENT;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char *const argv[] = { (char *)"/sbin/modprobe", (char *)"vhci-hcd", NULL };
		char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
		execve(argv[0], argv, envp);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -ENOENT;
	return vhci_locate(v);
}

/* Parses a whole token as an unsigned number in base with an upper bound. */
static int parse_u32(const char *s, int base, uint32_t max, uint32_t *out)
{
	if (*s == '\0' || *s == '-' || *s == '+')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long val = strtoull(s, &end, base);
	if (errno || *end != '\0' || val > max)
		return -EINVAL;
	*out = (uint32_t)val;
	return 0;
}

static bool printable_token(const char *s)
{
	for (; *s; s++) {
		if (*s <= ' ' || *s > '~')
			return false;
	}
	return true;
}

/* Splits line (modified) into whitespace-separated tokens; returns how many,
 * up to max + 1 (so too many tokens shows). */
static size_t split_tokens(char *line, char **tok, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
		if (n == max)
			return max + 1;
		tok[n++] = t;
	}
	return n;
}

static int parse_row(char *line, struct vhci_port *p)
{
	char *tok[VHCI_ROW_TOKENS];
	if (split_tokens(line, tok, VHCI_ROW_TOKENS) != VHCI_ROW_TOKENS)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	if (strcmp(tok[0], "hs") == 0)
		p->hub = VHCI_HUB_HS;
	else if (strcmp(tok[0], "ss") == 0)
		p->hub = VHCI_HUB_SS;
	else
		return -EINVAL;
	uint32_t port, state;
	if (parse_u32(tok[1], 10, VHCI_MAX_PORTS - 1, &port) ||
	    parse_u32(tok[2], 10, 255, &state) ||
	    parse_u32(tok[3], 10, 255, &p->speed) ||
	    parse_u32(tok[4], 16, UINT32_MAX, &p->devid) ||
	    parse_u32(tok[5], 10, UINT32_MAX, &p->sockfd))
		return -EINVAL;
	if (!printable_token(tok[6]) || copy_str(p->local_busid, sizeof(p->local_busid), tok[6]))
		return -EINVAL;
	p->port = (int)port;
	p->state = (int)state;
	return 0;
}

int vhci_parse_status(const char *text, struct vhci_port *ports, size_t max, size_t *count)
{
	char line[256];
	int added = 0;
	bool first = true;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len >= sizeof(line))
			return -EINVAL;
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (nl ? 1 : 0);
		if (first) {
			first = false;
			/* The header names the columns; a file without it is not ours. */
			if (strncmp(line, "hub ", 4) != 0)
				return -EINVAL;
			continue;
		}
		if (strspn(line, " \t\r") == len)
			continue;
		if (*count >= max)
			return -E2BIG;
		if (parse_row(line, &ports[*count]) < 0)
			return -EINVAL;
		(*count)++;
		added++;
	}
	return first ? -EINVAL : added;
}

int vhci_read_ports(struct vhci *v, struct vhci_port *ports, size_t max)
{
	if (v->hc_dir[0] == '\0') {
		int err = vhci_locate(v);
		if (err)
			return err;
	}
	char *buf = malloc(VHCI_ATTR_MAX);
	if (!buf)
		return -ENOMEM;
	size_t count = 0;
	int err = 0;
	for (int i = 0; i < VHCI_MAX_CONTROLLERS; i++) {
		char name[32], path[PATH_MAX];
		if (i == 0)
			snprintf(name, sizeof(name), "status");
		else
			snprintf(name, sizeof(name), "status.%d", i);
		err = join_path(path, sizeof(path), v->hc_dir, name);
		if (err)
			break;
		int n = vhci_read_attr(path, buf, VHCI_ATTR_MAX);
		if (n == -ENOENT && i > 0) {
			err = 0; /* no more controllers */
			break;
		}
		if (n < 0) {
			err = n;
			break;
		}
		err = vhci_parse_status(buf, ports, max, &count);
		if (err < 0)
			break;
		err = 0;
	}
	free(buf);
	return err ? err : (int)count;
}

int vhci_read_nports(struct vhci *v, int *nports)
{
	char path[PATH_MAX], buf[32];
	if (v->hc_dir[0] == '\0') {
		int err = vhci_locate(v);
		if (err)
			return err;
	}
	int err = join_path(path, sizeof(path), v->hc_dir, "nports");
	if (err)
		return err;
	int n = vhci_read_attr(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	buf[strcspn(buf, "\n")] = '\0';
	uint32_t val;
	if (parse_u32(buf, 10, VHCI_MAX_PORTS, &val))
		return -EINVAL;
	*nports = (int)val;
	return 0;
}

enum vhci_hub vhci_hub_for_speed(uint32_t speed)
{
	return (speed == USBIP_SPEED_SUPER || speed == USBIP_SPEED_SUPER_PLUS) ? VHCI_HUB_SS
									: VHCI_HUB_HS;
}

int vhci_pick_port(const struct vhci_port *ports, size_t n, uint32_t speed, const int *skip,
		   size_t nskip)
{
	if (speed == USBIP_SPEED_UNKNOWN || speed > USBIP_SPEED_SUPER_PLUS)
		return -EINVAL;
	enum vhci_hub hub = vhci_hub_for_speed(speed);
	for (size_t i = 0; i < n; i++) {
		if (ports[i].hub != hub || ports[i].state != VHCI_ST_NULL)
			continue;
		bool skipped = false;
		for (size_t k = 0; k < nskip; k++)
			skipped |= skip[k] == ports[i].port;
		if (!skipped)
			return ports[i].port;
	}
	return -EBUSY;
}

const struct vhci_port *vhci_find_port(const struct vhci_port *ports, size_t n, int port)
{
	for (size_t i = 0; i < n; i++) {
		if (ports[i].port == port)
			return &ports[i];
	}
	return NULL;
}

/* EBUSY retries: each one is a port someone else took between our read of
 * the table and our write, so a handful is plenty. */
#define VHCI_ATTACH_TRIES 8

int vhci_attach(struct vhci *v, int sockfd, uint32_t devid, uint32_t speed, int *port_out)
{
	if (sockfd < 0)
		return -EBADF;
	if (speed == USBIP_SPEED_SUPER_PLUS)
		speed = USBIP_SPEED_SUPER;
	char path[PATH_MAX];
	struct vhci_port *ports = calloc(VHCI_MAX_PORTS, sizeof(*ports));
	if (!ports)
		return -ENOMEM;
	int tried[VHCI_ATTACH_TRIES];
	size_t ntried = 0;
	int err = -EBUSY;
	while (ntried < VHCI_ATTACH_TRIES) {
		int n = vhci_read_ports(v, ports, VHCI_MAX_PORTS);
		if (n < 0) {
			err = n;
			break;
		}
		int port = vhci_pick_port(ports, (size_t)n, speed, tried, ntried);
		if (port < 0) {
			err = port;
			break;
		}
		err = join_path(path, sizeof(path), v->hc_dir, "attach");
		if (err)
			break;
		char text[64];
		snprintf(text, sizeof(text), "%d %d %u %u", port, sockfd, devid, speed);
		err = v->ops.write_attr(v->ops.ctx, path, text);
		if (err == 0) {
			*port_out = port;
			break;
		}
		if (err != -EBUSY)
			break;
		tried[ntried++] = port;
	}
	free(ports);
	return err;
}

int vhci_detach(struct vhci *v, int port)
{
	if (port < 0 || port >= VHCI_MAX_PORTS)
		return -EINVAL;
	if (v->hc_dir[0] == '\0') {
		int err = vhci_locate(v);
		if (err)
			return err;
	}
	char path[PATH_MAX], text[16];
	int err = join_path(path, sizeof(path), v->hc_dir, "detach");
	if (err)
		return err;
	snprintf(text, sizeof(text), "%d", port);
	return v->ops.write_attr(v->ops.ctx, path, text);
}

static int record_path(struct vhci *v, int port, char *out, size_t size)
{
	char name[32];
	if (port < 0 || port >= VHCI_MAX_PORTS)
		return -EINVAL;
	snprintf(name, sizeof(name), "port%d", port);
	return join_path(out, size, v->run_dir, name);
}

int vhci_record_write(struct vhci *v, int port, const char *host, const char *service,
		      const char *busid)
{
	char path[PATH_MAX], tmp[PATH_MAX], text[VHCI_RECORD_MAX];
	if (!printable_token(host) || !printable_token(service) || !busid_valid(busid) ||
	    strlen(host) >= VHCI_HOST_SIZE || strlen(service) >= VHCI_SERVICE_SIZE)
		return -EINVAL;
	int err = record_path(v, port, path, sizeof(path));
	if (err)
		return err;
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	if (mkdir(v->run_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	n = snprintf(text, sizeof(text), "%s %s %s\n", host, service, busid);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, text, (size_t)n);
	err = w < 0 ? -errno : (w == n ? 0 : -EIO);
	if (close(fd) < 0 && err == 0)
		err = -errno;
	if (err == 0 && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

int vhci_record_remove(struct vhci *v, int port)
{
	char path[PATH_MAX];
	int err = record_path(v, port, path, sizeof(path));
	if (err)
		return err;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int vhci_record_read(struct vhci *v, int port, char *host, char *service, char *busid)
{
	char path[PATH_MAX], text[VHCI_RECORD_MAX];
	int err = record_path(v, port, path, sizeof(path));
	if (err)
		return err;
	int n = vhci_read_attr(path, text, sizeof(text));
	if (n < 0)
		return n == -EFBIG ? -EINVAL : n;
	char *nl = strchr(text, '\n');
	if (!nl || nl[1] != '\0')
		return -EINVAL;
	*nl = '\0';
	char *tok[3];
	if (split_tokens(text, tok, 3) != 3)
		return -EINVAL;
	if (!busid_valid(tok[2]) || !printable_token(tok[0]) || !printable_token(tok[1]) ||
	    copy_str(host, VHCI_HOST_SIZE, tok[0]) ||
	    copy_str(service, VHCI_SERVICE_SIZE, tok[1]) ||
	    copy_str(busid, USBIP_BUSID_SIZE, tok[2]))
		return -EINVAL;
	return 0;
}
