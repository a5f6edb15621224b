/*
 * usbtest_run: drive the Linux usbtest driver's test cases on one device.
 *
 * Usage: usbtest_run [-c CASES] [-i ITER] [-l LEN] [-v VARY] [-g SGLEN]
 *                    [-t CASE_TIMEOUT_S] [-T TOTAL_BUDGET_S] [-k MAX_TIMEOUTS]
 *                    [-I IFNO] DEVNODE
 *
 * DEVNODE is /dev/bus/usb/BBB/DDD of a device that usbtest is bound to.
 * CASES is a list such as "0-29" or "0,1,9-14".
 * After MAX_TIMEOUTS timeouts in a row the device is taken as stuck (its lock
 * held by a hung request) and the remaining cases are skipped; with
 * TOTAL_BUDGET_S, cases that would start after the budget is spent are
 * skipped.
 *
 * Each case runs in its own child process: a case that hangs inside the
 * kernel keeps the device lock and cannot always be killed, so the parent
 * only waits for a result on a pipe with a deadline and never blocks on the
 * child.  The child's stdout/stderr point at /dev/null so that a stuck child
 * does not hold the caller's output pipe open.
 *
 * Output, one line per case:
 *   case N: pass [S.sss s] | fail (ERRNAME) | n/a | timeout | skip
 * then one summary line:
 *   SUMMARY pass=a fail=b na=c timeout=d skip=e passed=LIST failed=LIST
 * Exit status: 0 when no case failed or timed out, 1 otherwise, 2 on usage
 * errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/usbdevice_fs.h>

#define MAX_CASE 63

/* The usbtest driver's parameter block (32-bit duration variant). */
struct usbtest_param {
	uint32_t test_num;
	uint32_t iterations;
	uint32_t length;
	uint32_t vary;
	uint32_t sglen;
	int32_t duration_sec;
	int32_t duration_usec;
};

#define USBTEST_REQUEST _IOWR('U', 100, struct usbtest_param)

enum outcome { OUT_PASS, OUT_FAIL, OUT_NA, OUT_TIMEOUT, OUT_SKIP };

/* What a child reports back through its pipe. */
struct case_report {
	int rc;
	int err;
	int32_t sec;
	int32_t usec;
};

struct run_opts {
	const char *devnode;
	int ifno;
	uint32_t iterations;
	uint32_t length;
	uint32_t vary;
	uint32_t sglen;
	int case_timeout_s;
	int total_budget_s;
	int max_timeouts;
	unsigned char want[MAX_CASE + 1];
};

struct name_of_errno {
	int err;
	const char *name;
};

/* The errors usbtest and the USB core hand back to a test ioctl. */
static const struct name_of_errno errno_names[] = {
	{ EPERM, "EPERM" },         { ENOENT, "ENOENT" },
	{ EINTR, "EINTR" },         { EIO, "EIO" },
	{ ENXIO, "ENXIO" },         { EAGAIN, "EAGAIN" },
	{ ENOMEM, "ENOMEM" },       { EFAULT, "EFAULT" },
	{ EBUSY, "EBUSY" },         { EXDEV, "EXDEV" },
	{ ENODEV, "ENODEV" },       { EINVAL, "EINVAL" },
	{ ENOTTY, "ENOTTY" },       { EPIPE, "EPIPE" },
	{ EDOM, "EDOM" },           { ERANGE, "ERANGE" },
	{ ENOSR, "ENOSR" },         { EPROTO, "EPROTO" },
	{ EOVERFLOW, "EOVERFLOW" }, { EILSEQ, "EILSEQ" },
	{ EMSGSIZE, "EMSGSIZE" },   { EOPNOTSUPP, "EOPNOTSUPP" },
	{ ECONNRESET, "ECONNRESET" }, { ESHUTDOWN, "ESHUTDOWN" },
	{ ETIMEDOUT, "ETIMEDOUT" }, { EINPROGRESS, "EINPROGRESS" },
	{ EREMOTEIO, "EREMOTEIO" }, { ECOMM, "ECOMM" },
};

static const char *errno_name(int err, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++) {
		if (errno_names[i].err == err)
			return errno_names[i].name;
	}
	snprintf(buf, len, "errno %d", err);
	return buf;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_case_num(const char *s, const char **rest, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || v < 0 || v > MAX_CASE)
		return -1;
	*out = (int)v;
	*rest = end;
	return 0;
}

/* Parses "0-29" or "1,3,5-9" into the want[] table. */
static int parse_cases(const char *spec, unsigned char *want)
{
	const char *p = spec;

	memset(want, 0, MAX_CASE + 1);
	while (*p != '\0') {
		int lo, hi;

		if (parse_case_num(p, &p, &lo) != 0)
			return -1;
		hi = lo;
		if (*p == '-' && parse_case_num(p + 1, &p, &hi) != 0)
			return -1;
		if (hi < lo)
			return -1;
		for (int n = lo; n <= hi; n++)
			want[n] = 1;
		if (*p == ',')
			p++;
		else if (*p != '\0')
			return -1;
	}
	return 0;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Runs in the child: one ioctl, the result goes to report_fd. Never returns. */
static void run_case_child(const struct run_opts *o, int test_num, int report_fd)
{
	struct usbtest_param param;
	struct usbdevfs_ioctl wrap;
	struct case_report rep;
	int devnull, fd;

	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}

	memset(&rep, 0, sizeof(rep));
	fd = open(o->devnode, O_RDWR);
	if (fd < 0) {
		rep.rc = -1;
		rep.err = errno;
		write_all(report_fd, &rep, sizeof(rep));
		_exit(0);
	}

	memset(&param, 0, sizeof(param));
	param.test_num = (uint32_t)test_num;
	param.iterations = o->iterations;
	param.length = o->length;
	param.vary = o->vary;
	param.sglen = o->sglen;

	memset(&wrap, 0, sizeof(wrap));
	wrap.ifno = o->ifno;
	wrap.ioctl_code = (int)USBTEST_REQUEST;
	wrap.data = &param;

	rep.rc = ioctl(fd, USBDEVFS_IOCTL, &wrap);
	rep.err = rep.rc < 0 ? errno : 0;
	rep.sec = param.duration_sec;
	rep.usec = param.duration_usec;
	write_all(report_fd, &rep, sizeof(rep));
	_exit(0);
}

/*
 * Waits up to timeout_s for the child's report. Returns 1 with *rep filled,
 * 0 when the child closed the pipe without a report, -1 on timeout.
 */
static int wait_report(int fd, int timeout_s, struct case_report *rep)
{
	double deadline = now_s() + timeout_s;
	size_t got = 0;
	char *p = (char *)rep;

	while (got < sizeof(*rep)) {
		double left = deadline - now_s();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int rc;

		if (left <= 0)
			return -1;
		rc = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return 0;
		if (rc == 0)
			return -1;
		n = read(fd, p + got, sizeof(*rep) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		got += (size_t)n;
	}
	return 1;
}

/* Reaps the child if it dies within about a second; a child stuck in the
 * kernel may never die, and we must not hang on it. */
static void reap_child(pid_t pid, int killed)
{
	for (int i = 0; i < 20; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		if (!killed && i == 10)
			kill(pid, SIGKILL);
		usleep(50 * 1000);
	}
}

static enum outcome run_case(const struct run_opts *o, int test_num)
{
	struct case_report rep;
	char ebuf[32];
	int pipefd[2];
	pid_t pid;
	int got;

	if (pipe(pipefd) != 0) {
		printf("case %d: fail (%s)\n", test_num,
		       errno_name(errno, ebuf, sizeof(ebuf)));
		return OUT_FAIL;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		int err = errno;

		close(pipefd[0]);
		close(pipefd[1]);
		printf("case %d: fail (%s)\n", test_num,
		       errno_name(err, ebuf, sizeof(ebuf)));
		return OUT_FAIL;
	}
	if (pid == 0) {
		close(pipefd[0]);
		run_case_child(o, test_num, pipefd[1]);
	}
	close(pipefd[1]);

	got = wait_report(pipefd[0], o->case_timeout_s, &rep);
	close(pipefd[0]);
	if (got < 0) {
		kill(pid, SIGKILL);
		reap_child(pid, 1);
		printf("case %d: timeout\n", test_num);
		return OUT_TIMEOUT;
	}
	reap_child(pid, 0);
	if (got == 0) {
		printf("case %d: fail (no report)\n", test_num);
		return OUT_FAIL;
	}
	if (rep.rc >= 0) {
		printf("case %d: pass [%d.%03d s]\n", test_num, (int)rep.sec,
		       (int)(rep.usec / 1000));
		return OUT_PASS;
	}
	if (rep.err == EOPNOTSUPP) {
		printf("case %d: n/a\n", test_num);
		return OUT_NA;
	}
	printf("case %d: fail (%s)\n", test_num,
	       errno_name(rep.err, ebuf, sizeof(ebuf)));
	return OUT_FAIL;
}

static void append_num(char *list, size_t cap, int n)
{
	size_t len = strlen(list);

	snprintf(list + len, cap - len, "%s%d", len > 0 ? "," : "", n);
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-c CASES] [-i ITER] [-l LEN] [-v VARY] [-g SGLEN]\n"
		"       [-t CASE_TIMEOUT_S] [-T TOTAL_BUDGET_S] [-k MAX_TIMEOUTS]\n"
		"       [-I IFNO] DEVNODE\n",
		prog);
}

int main(int argc, char **argv)
{
	struct run_opts o = {
		.ifno = 0,
		.iterations = 1000,
		.length = 1024,
		.vary = 512,
		.sglen = 32,
		.case_timeout_s = 60,
		.total_budget_s = 0,
		.max_timeouts = 0,
	};
	char passed[4 * (MAX_CASE + 1)] = "";
	char failed[4 * (MAX_CASE + 1)] = "";
	unsigned counts[OUT_SKIP + 1] = { 0 };
	uint32_t v;
	int timeouts_in_row = 0;
	double start;
	int opt;

	parse_cases("0-29", o.want);
	while ((opt = getopt(argc, argv, "c:i:l:v:g:t:T:k:I:h")) != -1) {
		switch (opt) {
		case 'c':
			if (parse_cases(optarg, o.want) != 0)
				goto err_usage;
			break;
		case 'i':
			if (parse_u32(optarg, &o.iterations) != 0)
				goto err_usage;
			break;
		case 'l':
			if (parse_u32(optarg, &o.length) != 0)
				goto err_usage;
			break;
		case 'v':
			if (parse_u32(optarg, &o.vary) != 0)
				goto err_usage;
			break;
		case 'g':
			if (parse_u32(optarg, &o.sglen) != 0)
				goto err_usage;
			break;
		case 't':
			if (parse_u32(optarg, &v) != 0 || v == 0 || v > 3600)
				goto err_usage;
			o.case_timeout_s = (int)v;
			break;
		case 'T':
			if (parse_u32(optarg, &v) != 0 || v > 86400)
				goto err_usage;
			o.total_budget_s = (int)v;
			break;
		case 'k':
			if (parse_u32(optarg, &v) != 0 || v > MAX_CASE)
				goto err_usage;
			o.max_timeouts = (int)v;
			break;
		case 'I':
			if (parse_u32(optarg, &v) != 0 || v > 255)
				goto err_usage;
			o.ifno = (int)v;
			break;
		default:
			goto err_usage;
		}
	}
	if (optind != argc - 1)
		goto err_usage;
	o.devnode = argv[optind];

	/* A dead child must not kill us through a broken pipe. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	start = now_s();
	for (int n = 0; n <= MAX_CASE; n++) {
		enum outcome out;

		if (!o.want[n])
			continue;
		if (o.total_budget_s > 0 && now_s() - start > o.total_budget_s) {
			printf("case %d: skip (time budget spent)\n", n);
			out = OUT_SKIP;
		} else if (o.max_timeouts > 0 && timeouts_in_row >= o.max_timeouts) {
			printf("case %d: skip (device stuck)\n", n);
			out = OUT_SKIP;
		} else {
			out = run_case(&o, n);
			timeouts_in_row = out == OUT_TIMEOUT ? timeouts_in_row + 1 : 0;
		}
		counts[out]++;
		if (out == OUT_PASS)
			append_num(passed, sizeof(passed), n);
		else if (out == OUT_FAIL || out == OUT_TIMEOUT)
			append_num(failed, sizeof(failed), n);
	}
	printf("SUMMARY pass=%u fail=%u na=%u timeout=%u skip=%u passed=%s failed=%s\n",
	       counts[OUT_PASS], counts[OUT_FAIL], counts[OUT_NA],
	       counts[OUT_TIMEOUT], counts[OUT_SKIP],
	       passed[0] ? passed : "-", failed[0] ? failed : "-");
	return (counts[OUT_FAIL] + counts[OUT_TIMEOUT] + counts[OUT_SKIP]) ? 1 : 0;

err_usage:
	usage(argv[0]);
	return 2;
}
