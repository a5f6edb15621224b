/*
 * guestbench: timing helpers for the guest benchmark (bench/guest.sh), run
 * inside the e2e guest. Figures only; it never judges them.
 *
 * Usage:
 *   guestbench seq-read  DEV BLOCK_BYTES TOTAL_BYTES
 *   guestbench seq-write DEV BLOCK_BYTES TOTAL_BYTES
 *       O_DIRECT sequential transfer from offset 0 (the write ends with
 *       fdatasync, like dd conv=fsync). Prints
 *       "seq-read bs=B bytes=N secs=S mbps=M" (MB = 10^6 bytes).
 *   guestbench rand-read DEV COUNT
 *       COUNT O_DIRECT 4 KiB preads at random 4 KiB-aligned offsets over the
 *       whole device, one at a time. Prints "rand-read count=N secs=S iops=I".
 *   guestbench attach-read TIMEOUT_S CMD [ARG...]
 *       Starts CMD (e.g. usbip attach ...) and, from just before it starts,
 *       polls /sys/block for a SCSI disk behind a vhci_hcd controller until an
 *       O_DIRECT read of its first 4 KiB succeeds. Prints
 *       "attach-read cmd=S disk=S read=S dev=/dev/sdX" (seconds from the
 *       start: CMD exited, disk appeared with a capacity, first read done).
 *   guestbench plug UDC_FILE VALUE TIMEOUT_S MARK
 *       Writes MARK to /dev/kmsg (so dmesg lines can be timed against it),
 *       then VALUE to UDC_FILE (a gadget's UDC: a UDC name plugs it, "" unplugs
 *       it), then polls the vhci_hcd status files until some port is in use
 *       (VALUE not empty) or every port is free (VALUE empty). Prints
 *       "plug secs=S" or "unplug secs=S".
 *   guestbench relay TAG FILE
 *       Copies stdin to FILE and each line, as soon as it is read, to
 *       /dev/kmsg as "gb-TAG: LINE", so a daemon's log lines get kernel
 *       timestamps next to the USB core's own (a shell loop reading a pipe
 *       byte by byte lags by tens of ms under TCG).
 * Exit status: 0 done, 1 failed or timed out, 2 usage.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>
#include <sys/ioctl.h>

#define ALIGN 4096

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int usage(void)
{
	fprintf(stderr, "usage: guestbench seq-read|seq-write DEV BLOCK TOTAL\n"
			"       guestbench rand-read DEV COUNT\n"
			"       guestbench attach-read TIMEOUT_S CMD [ARG...]\n"
			"       guestbench plug UDC_FILE VALUE TIMEOUT_S MARK\n"
			"       guestbench relay TAG FILE\n");
	return 2;
}

static int parse_size(const char *s, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return (errno || end == s || *end) ? -1 : 0;
}

static void *aligned_buf(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, ALIGN, len) != 0)
		return NULL;
	return p;
}

static int seq(const char *dev, int do_write, unsigned long long bs, unsigned long long total)
{
	unsigned char *buf;
	unsigned long long done = 0;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	double t0, t;
	int fd;

	if (bs == 0 || bs % ALIGN || total % bs) {
		fprintf(stderr, "block must be a multiple of %d dividing the total\n", ALIGN);
		return 2;
	}
	buf = aligned_buf(bs);
	if (!buf)
		return 1;
	/* Not zeros: nothing on the way should get an easy ride. */
	for (size_t i = 0; i + 8 <= bs; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	fd = open(dev, (do_write ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0) {
		perror(dev);
		return 1;
	}
	t0 = now_s();
	while (done < total) {
		ssize_t n = do_write ? pwrite(fd, buf, bs, (off_t)done) : pread(fd, buf, bs, (off_t)done);

		if (n != (ssize_t)bs) {
			fprintf(stderr, "%s at %llu: %s\n", do_write ? "write" : "read", done,
				n < 0 ? strerror(errno) : "short transfer");
			close(fd);
			return 1;
		}
		done += bs;
	}
	if (do_write && fdatasync(fd) != 0) {
		perror("fdatasync");
		close(fd);
		return 1;
	}
	t = now_s() - t0;
	close(fd);
	printf("%s bs=%llu bytes=%llu secs=%.6f mbps=%.2f\n", do_write ? "seq-write" : "seq-read",
	       bs, total, t, (double)total / t / 1e6);
	free(buf);
	return 0;
}

static int rand_read(const char *dev, unsigned long long count)
{
	unsigned long long size = 0, blocks;
	uint64_t x = 0x2545f4914f6cdd1dull;
	void *buf = aligned_buf(ALIGN);
	double t0, t;
	int fd;

	fd = open(dev, O_RDONLY | O_DIRECT);
	if (fd < 0 || !buf) {
		perror(dev);
		return 1;
	}
	if (ioctl(fd, BLKGETSIZE64, &size) != 0 || size < ALIGN) {
		fprintf(stderr, "%s: no size\n", dev);
		return 1;
	}
	blocks = size / ALIGN;
	t0 = now_s();
	for (unsigned long long i = 0; i < count; i++) {
		off_t off;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = (off_t)((x % blocks) * ALIGN);
		if (pread(fd, buf, ALIGN, off) != ALIGN) {
			fprintf(stderr, "read at %lld: %s\n", (long long)off, strerror(errno));
			return 1;
		}
	}
	t = now_s() - t0;
	close(fd);
	printf("rand-read count=%llu secs=%.6f iops=%.1f\n", count, t, (double)count / t);
	free(buf);
	return 0;
}

/* A SCSI disk whose sysfs path runs through a vhci_hcd controller, with a
 * capacity: its name (sdX) into name. */
static int vhci_disk(char *name, size_t len)
{
	glob_t g;
	int found = 0;

	if (glob("/sys/block/sd*", 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc && !found; i++) {
		char target[PATH_MAX], path[PATH_MAX + 16];
		unsigned long long sectors = 0;
		ssize_t n = readlink(g.gl_pathv[i], target, sizeof(target) - 1);
		FILE *f;

		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strstr(target, "vhci_hcd"))
			continue;
		snprintf(path, sizeof(path), "%s/size", g.gl_pathv[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &sectors) == 1 && sectors > 0) {
			snprintf(name, len, "%s", strrchr(g.gl_pathv[i], '/') + 1);
			found = 1;
		}
		fclose(f);
	}
	globfree(&g);
	return found;
}

static int attach_read(int timeout_s, char **cmd)
{
	double t0, t_cmd = -1, t_disk = -1;
	char name[64] = "", dev[80];
	void *buf = aligned_buf(ALIGN);
	pid_t pid;
	int status;

	t0 = now_s();
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		execvp(cmd[0], cmd);
		_exit(127);
	}
	while (now_s() - t0 < timeout_s) {
		if (t_cmd < 0 && waitpid(pid, &status, WNOHANG) == pid) {
			t_cmd = now_s() - t0;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "%s failed\n", cmd[0]);
				return 1;
			}
		}
		if (t_disk < 0 && vhci_disk(name, sizeof(name)))
			t_disk = now_s() - t0;
		if (t_disk >= 0) {
			int fd;

			snprintf(dev, sizeof(dev), "/dev/%s", name);
			fd = open(dev, O_RDONLY | O_DIRECT);
			if (fd >= 0) {
				ssize_t n = pread(fd, buf, ALIGN, 0);

				close(fd);
				if (n == ALIGN) {
					double t_read = now_s() - t0;

					if (t_cmd < 0 && waitpid(pid, &status, 0) == pid)
						t_cmd = now_s() - t0;
					printf("attach-read cmd=%.3f disk=%.3f read=%.3f dev=%s\n", t_cmd,
					       t_disk, t_read, dev);
					return 0;
				}
			}
		}
		sleep_ms(5);
	}
	fprintf(stderr, "attach-read: no readable vhci disk after %d s\n", timeout_s);
	if (t_cmd < 0)
		kill(pid, SIGKILL);
	return 1;
}

/* 1 when some vhci port is not free (status column != 004), 0 when all are
 * free (or there is no vhci_hcd), -1 on a read error. */
static int vhci_busy(void)
{
	glob_t g;
	int busy = 0;

	if (glob("/sys/devices/platform/vhci_hcd.*/status*", 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc && !busy; i++) {
		char line[256], sta[16];
		FILE *f = fopen(g.gl_pathv[i], "r");
		int first = 1;

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (first) {
				first = 0;
				continue;
			}
			if (sscanf(line, "%*s %*s %15s", sta) == 1 && strcmp(sta, "004") != 0)
				busy = 1;
		}
		fclose(f);
	}
	globfree(&g);
	return busy;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int plug(const char *udc_file, const char *value, int timeout_s, const char *mark)
{
	char line[512];
	int want_busy = value[0] != '\0';
	double t0;

	snprintf(line, sizeof(line), "%s\n", mark);
	if (write_file("/dev/kmsg", line) != 0)
		perror("/dev/kmsg");
	snprintf(line, sizeof(line), "%s\n", value);
	t0 = now_s();
	if (write_file(udc_file, line) != 0) {
		perror(udc_file);
		return 1;
	}
	while (now_s() - t0 < timeout_s) {
		if (vhci_busy() == want_busy) {
			printf("%s secs=%.3f\n", want_busy ? "plug" : "unplug", now_s() - t0);
			return 0;
		}
		sleep_ms(5);
	}
	fprintf(stderr, "%s: vhci not %s after %d s\n", want_busy ? "plug" : "unplug",
		want_busy ? "in use" : "free", timeout_s);
	return 1;
}

static int relay(const char *tag, const char *file)
{
	char buf[8192], rec[1024];
	size_t have = 0;
	int kfd = open("/dev/kmsg", O_WRONLY);
	int ofd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);

	if (ofd < 0) {
		perror(file);
		return 1;
	}
	for (;;) {
		ssize_t n = read(0, buf + have, sizeof(buf) - have);
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write(ofd, buf + have, (size_t)n) < 0) {
			/* the copy in FILE is best effort */
		}
		have += (size_t)n;
		for (size_t i = 0; i < have; i++) {
			if (buf[i] != '\n' && i - start < sizeof(rec) - 64)
				continue;
			if (kfd >= 0) {
				int len = snprintf(rec, sizeof(rec), "gb-%s: %.*s\n", tag,
						   (int)(i - start), buf + start);

				if (len > 0 && write(kfd, rec, (size_t)len) < 0) {
					/* dropped */
				}
			}
			start = buf[i] == '\n' ? i + 1 : i;
		}
		memmove(buf, buf + start, have - start);
		have -= start;
	}
	close(ofd);
	if (kfd >= 0)
		close(kfd);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long long a, b;

	if (argc < 2)
		return usage();
	if ((!strcmp(argv[1], "seq-read") || !strcmp(argv[1], "seq-write")) && argc == 5) {
		if (parse_size(argv[3], &a) || parse_size(argv[4], &b))
			return usage();
		return seq(argv[2], argv[1][4] == 'w', a, b);
	}
	if (!strcmp(argv[1], "rand-read") && argc == 4) {
		if (parse_size(argv[3], &a))
			return usage();
		return rand_read(argv[2], a);
	}
	if (!strcmp(argv[1], "attach-read") && argc >= 4) {
		if (parse_size(argv[2], &a))
			return usage();
		return attach_read((int)a, argv + 3);
	}
	if (!strcmp(argv[1], "plug") && argc == 6) {
		if (parse_size(argv[4], &a))
			return usage();
		return plug(argv[2], argv[3], (int)a, argv[5]);
	}
	if (!strcmp(argv[1], "relay") && argc == 4)
		return relay(argv[2], argv[3]);
	return usage();
}
