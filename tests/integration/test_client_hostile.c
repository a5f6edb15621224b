/* The client daemon against a scripted hostile server.
 *
 * The server here is a lie machine: a notify port that answers the hello
 * with whatever a case scripts (bad welcomes, bad busids, oversized or
 * binary lines, lying counts, duplicate and flooding events, silence), and
 * a USB/IP port whose import replies lie per busid (another device's busid,
 * wrong speed, devid fields out of range, wrong version or code, unknown
 * status, truncated at several points, no reply at all). The daemon runs
 * against a fixture vhci sysfs whose attach writes a fake kernel checks and
 * records (as in test_client.c).
 *
 * Every case also announces one honest device, 1-2. The case ends when it
 * is attached and every lying import the daemon made has been closed by
 * it; then the case checks that exactly the honest device was attached,
 * with its devid and speed, on one port, and that nothing else was
 * imported but what the case allows. Each case starts and stops its own
 * daemon: a stop that hangs fails the suite's timeout, a crash the
 * sanitizers. The count of cases is printed. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/daemon.h"
#include "client/vhci.h"
#include "common/log.h"
#include "common/net.h"
#include "proto/busid.h"
#include "proto/bytes.h"
#include "proto/usbip_codec.h"
#include "fake_vhci.h"

#define HONEST "1-2"
#define HONEST_DEVID (1u << 16 | 2u)
#define ZERO_FIELDS "vid=0525 pid=a4a0 speed=high held=0 serial=S"
#define WELCOME "welcome version=2 heartbeat=5 server=liar\n"
#define HONEST_SNAPSHOT WELCOME "device busid=" HONEST " " ZERO_FIELDS "\nsnapshot-end count=1\n"

/* ---- fake kernel (fake_vhci.c) --------------------------------------------- */

static void fk_reset(struct fake_kernel *fk)
{
	pthread_mutex_lock(&fk->lock);
	for (int i = 0; i < NPORTS; i++) {
		if (fk->ports[i].used)
			close(fk->ports[i].kfd);
		fk->ports[i].kfd = -1;
		fk->ports[i].used = false;
	}
	fk->attaches = 0;
	fk_write_status_locked(fk);
	pthread_mutex_unlock(&fk->lock);
}

/* ---- the hostile server ------------------------------------------------------ */

enum reply {
	R_GOOD,
	R_OTHER_BUSID,    /* the record of a device it did not ask for */
	R_SPEED_UNKNOWN,
	R_SPEED_7,
	R_SPEED_HUGE,
	R_BUSNUM_BIG,     /* busnum past 16 bits: no devid vhci could take */
	R_DEVNUM_BIG,
	R_VERSION,
	R_CODE_DEVLIST,   /* a devlist reply to an import */
	R_STATUS_NODEV,
	R_STATUS_BUSY,
	R_STATUS_99,
	R_OK_NO_RECORD,   /* status OK, then the connection ends */
	R_CUT_HEADER,     /* 4 bytes, then the end */
	R_CUT_RECORD,     /* header and half a record */
	R_BUSID_NO_NUL,
	R_VIDPID_OTHER,   /* not the device the notify line announced */
	R_SILENT,         /* no reply at all */
	R_COUNT
};

static const char *const reply_names[R_COUNT] = {
	"good", "another device's busid", "speed unknown", "speed 7", "speed 0xffffffff",
	"busnum 0x10000", "devnum 0x10000", "version 0x0110", "devlist reply code",
	"status NODEV", "status DEV_BUSY", "status 99", "OK without a record",
	"cut in the header", "cut in the record", "busid without NUL", "other vid:pid",
	"no reply",
};

#define MAX_FDS 512

struct hostile {
	pthread_mutex_t lock;
	int notify_lfd, usbip_lfd, notify_port, usbip_port;
	int wake[2];
	pthread_t thread;
	bool stop;
	/* the script */
	char *first;           /* sent after the first hello */
	const char *later;     /* after later hellos */
	enum reply lie;        /* for every busid but HONEST */
	/* what happened */
	int notify_conns;
	int imports, honest_imports, lying_open, lying_closed;
	int bad_busid_imports; /* imports of a busid not of the kernel's form */
	char last_lie[USBIP_BUSID_SIZE];
	/* open connections */
	int fds[MAX_FDS];
	bool lying[MAX_FDS]; /* an import we lied to: its close is counted */
	int nfds;
};

static void keep_fd(struct hostile *h, int fd, bool lying)
{
	if (h->nfds == MAX_FDS) {
		close(fd);
		return;
	}
	h->lying[h->nfds] = lying;
	h->fds[h->nfds++] = fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the daemon went: fine */
		c += w;
		n -= (size_t)w;
	}
}

static void set_rcvtimeo(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void on_notify(struct hostile *h, int fd)
{
	/* The hello line, then the script. */
	char c;
	size_t n = 0;
	set_rcvtimeo(fd, 2000);
	while (n < 4096 && recv(fd, &c, 1, 0) == 1 && c != '\n')
		n++;
	pthread_mutex_lock(&h->lock);
	bool first = h->notify_conns++ == 0;
	const char *text = first ? h->first : h->later;
	pthread_mutex_unlock(&h->lock);
	send_all(fd, text, strlen(text));
	keep_fd(h, fd, false);
}

static void put_record(uint8_t *p, const char *busid, uint32_t busnum, uint32_t devnum,
		       uint32_t speed, uint16_t vid)
{
	memset(p, 0, USBIP_DEVICE_RECORD_SIZE);
	snprintf((char *)p, 256, "/sys/devices/liar/%s", busid);
	memcpy(p + 256, busid, strlen(busid));
	put_be32(p + 288, busnum);
	put_be32(p + 292, devnum);
	put_be32(p + 296, speed);
	put_be16(p + 300, vid);
	put_be16(p + 302, 0xa4a0);
	put_be16(p + 304, 0x0100);
	p[309] = 1; /* bConfigurationValue */
	p[310] = 1;
	p[311] = 4;
}

static void on_import(struct hostile *h, int fd)
{
	uint8_t req[USBIP_IMPORT_REQUEST_SIZE];
	set_rcvtimeo(fd, 2000);
	if (net_read_full(fd, req, sizeof(req)) != (ssize_t)sizeof(req)) {
		close(fd);
		return;
	}
	char busid[USBIP_BUSID_SIZE];
	memcpy(busid, req + 8, sizeof(busid));
	busid[sizeof(busid) - 1] = 0;
	bool honest = strcmp(busid, HONEST) == 0;
	pthread_mutex_lock(&h->lock);
	h->imports++;
	h->honest_imports += honest;
	h->bad_busid_imports += !busid_valid(busid);
	enum reply r = honest ? R_GOOD : h->lie;
	if (!honest) {
		snprintf(h->last_lie, sizeof(h->last_lie), "%s", busid);
		h->lying_open++;
	}
	pthread_mutex_unlock(&h->lock);

	uint8_t rep[USBIP_OP_COMMON_SIZE + USBIP_DEVICE_RECORD_SIZE];
	size_t n = sizeof(rep);
	uint16_t version = USBIP_VERSION, code = USBIP_OP_REP_IMPORT;
	uint32_t status = USBIP_ST_OK, busnum = 1, devnum = honest ? 2 : 1, speed = 3;
	uint16_t vid = 0x0525;
	const char *rec_busid = busid;
	switch (r) {
	case R_OTHER_BUSID: rec_busid = "1-9"; break;
	case R_SPEED_UNKNOWN: speed = 0; break;
	case R_SPEED_7: speed = 7; break;
	case R_SPEED_HUGE: speed = 0xffffffffu; break;
	case R_BUSNUM_BIG: busnum = 0x10000; break;
	case R_DEVNUM_BIG: devnum = 0x10000; break;
	case R_VERSION: version = 0x0110; break;
	case R_CODE_DEVLIST: code = USBIP_OP_REP_DEVLIST; break;
	case R_STATUS_NODEV: status = USBIP_ST_NODEV; n = USBIP_OP_COMMON_SIZE; break;
	case R_STATUS_BUSY: status = USBIP_ST_DEV_BUSY; n = USBIP_OP_COMMON_SIZE; break;
	case R_STATUS_99: status = 99; n = USBIP_OP_COMMON_SIZE; break;
	case R_OK_NO_RECORD: n = USBIP_OP_COMMON_SIZE; break;
	case R_CUT_HEADER: n = 4; break;
	case R_CUT_RECORD: n = USBIP_OP_COMMON_SIZE + 150; break;
	case R_VIDPID_OTHER: vid = 0xdead; break;
	case R_SILENT: n = 0; break;
	default: break;
	}
	put_be16(rep, version);
	put_be16(rep + 2, code);
	put_be32(rep + 4, status);
	put_record(rep + 8, rec_busid, busnum, devnum, speed, vid);
	if (r == R_BUSID_NO_NUL)
		memset(rep + 8 + 256, '1', USBIP_BUSID_SIZE);
	send_all(fd, rep, n);
	bool cut = r == R_OK_NO_RECORD || r == R_CUT_HEADER || r == R_CUT_RECORD;
	if (cut)
		shutdown(fd, SHUT_WR);
	keep_fd(h, fd, !honest);
}

static int accept_on(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	return fd;
}

static void *hostile_main(void *arg)
{
	struct hostile *h = arg;
	struct pollfd pfd[MAX_FDS + 3];
	for (;;) {
		pthread_mutex_lock(&h->lock);
		bool stop = h->stop;
		pthread_mutex_unlock(&h->lock);
		if (stop)
			break;
		int n = 0;
		pfd[n++] = (struct pollfd){ .fd = h->wake[0], .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = h->notify_lfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = h->usbip_lfd, .events = POLLIN };
		for (int i = 0; i < h->nfds; i++)
			pfd[n++] = (struct pollfd){ .fd = h->fds[i], .events = POLLIN };
		if (poll(pfd, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents) {
			char b[16];
			(void)!read(h->wake[0], b, sizeof(b));
		}
		/* Connections: drain what the daemon sends; count lying imports
		 * it closed. */
		for (int i = h->nfds - 1; i >= 0; i--) {
			if (!pfd[3 + i].revents)
				continue;
			char b[4096];
			ssize_t r = recv(h->fds[i], b, sizeof(b), MSG_DONTWAIT);
			if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
				continue;
			pthread_mutex_lock(&h->lock);
			if (h->lying[i]) {
				h->lying_open--;
				h->lying_closed++;
			}
			pthread_mutex_unlock(&h->lock);
			close(h->fds[i]);
			h->fds[i] = h->fds[h->nfds - 1];
			h->lying[i] = h->lying[h->nfds - 1];
			h->nfds--;
		}
		if (pfd[1].revents) {
			int fd = accept_on(h->notify_lfd);
			if (fd >= 0)
				on_notify(h, fd);
		}
		if (pfd[2].revents) {
			int fd = accept_on(h->usbip_lfd);
			if (fd >= 0)
				on_import(h, fd);
		}
	}
	return NULL;
}

static void hostile_reset(struct hostile *h, const char *first, const char *later, enum reply lie)
{
	pthread_mutex_lock(&h->lock);
	free(h->first);
	h->first = strdup(first);
	h->later = later;
	h->lie = lie;
	h->notify_conns = h->imports = h->honest_imports = 0;
	h->lying_open = h->lying_closed = h->bad_busid_imports = 0;
	h->last_lie[0] = 0;
	pthread_mutex_unlock(&h->lock);
}

/* Closes every connection it holds (between cases). */
static void hostile_drop_all(struct hostile *h)
{
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_mutex_unlock(&h->lock);
	(void)!write(h->wake[1], "x", 1);
	pthread_join(h->thread, NULL);
	for (int i = 0; i < h->nfds; i++)
		close(h->fds[i]);
	h->nfds = 0;
	h->stop = false;
	assert_int_equal(pthread_create(&h->thread, NULL, hostile_main, h), 0);
}

/* ---- fixture ------------------------------------------------------------------- */

struct fixture {
	char root[64];
	char run[128];
	struct fake_kernel fk;
	struct hostile h;
	int cases;
};

/* A loopback listener with room for a burst of connects (the daemon
 * imports up to 32 devices at once). */
static int listen_any(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 256), 0);
	*port = net_local_port(fd);
	return fd;
}

static int setup(void **state)
{
	/* The daemon's complaints are the point here; HOSTILE_LOG=info shows them. */
	log_set_level(getenv("HOSTILE_LOG") ? (enum log_level)log_level_parse(getenv("HOSTILE_LOG"))
					    : LOG_LEVEL_ERROR);
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_client_hostile.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->run, sizeof(f->run), "%s/run", f->root);
	fk_init(&f->fk, f->root);

	struct hostile *h = &f->h;
	pthread_mutex_init(&h->lock, NULL);
	h->notify_lfd = listen_any(&h->notify_port);
	h->usbip_lfd = listen_any(&h->usbip_port);
	f->fk.usbip_port = h->usbip_port; /* the sockets vhci is handed go there */
	assert_int_equal(pipe(h->wake), 0);
	hostile_reset(h, HONEST_SNAPSHOT, HONEST_SNAPSHOT, R_GOOD);
	assert_int_equal(pthread_create(&h->thread, NULL, hostile_main, h), 0);
	*state = f;
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct hostile *h = &f->h;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_mutex_unlock(&h->lock);
	(void)!write(h->wake[1], "x", 1);
	pthread_join(h->thread, NULL);
	for (int i = 0; i < h->nfds; i++)
		close(h->fds[i]);
	close(h->notify_lfd);
	close(h->usbip_lfd);
	close(h->wake[0]);
	close(h->wake[1]);
	free(h->first);
	pthread_mutex_destroy(&h->lock);
	fk_reset(&f->fk);
	fk_destroy(&f->fk);
	assert_true(strncmp(f->root, "/tmp/test_client_hostile.", 25) == 0);
	nftw(f->root, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

#define WAIT_FOR(what, cond)                                                            \
	do {                                                                            \
		int64_t until_ = net_now_ms() + 10000;                                 \
		while (!(cond) && net_now_ms() < until_)                               \
			sleep_ms(10);                                                   \
		if (!(cond))                                                            \
			fail_msg("%s: timed out waiting for %s", what, #cond);          \
	} while (0)

static int h_get(struct hostile *h, const int *field)
{
	pthread_mutex_lock(&h->lock);
	int v = *field;
	pthread_mutex_unlock(&h->lock);
	return v;
}

/* One case: the script, the lie told to every import but HONEST's, and
 * how many lying imports must have been made (and closed) at least. */
static void run_case(struct fixture *f, const char *name, const char *first, const char *later,
		     enum reply lie, int min_lies)
{
	struct hostile *h = &f->h;
	hostile_reset(h, first, later, lie);
	struct vhci_ops ops = { fk_write, &f->fk };
	struct daemon_config cfg;
	daemon_config_defaults(&cfg);
	char spec[64];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", h->notify_port);
	assert_int_equal(daemon_config_add_server(&cfg, spec), 0);
	snprintf(cfg.usbip_port, sizeof(cfg.usbip_port), "%d", h->usbip_port);
	cfg.sysfs_root = f->root;
	cfg.run_dir = f->run;
	cfg.state_file = NULL;
	cfg.vhci_ops = &ops;
	cfg.backoff_min_ms = 20;
	cfg.backoff_max_ms = 100;
	cfg.import_timeout_ms = 300;
	cfg.hello_timeout_ms = 300;
	struct daemon *d = daemon_new(&cfg);
	assert_non_null(d);
	assert_int_equal(daemon_start(d), 0);

	/* The honest device comes through; every lie was heard and closed. */
	WAIT_FOR(name, fk_count(&f->fk, &f->fk.attaches) >= 1);
	WAIT_FOR(name, h_get(h, &h->lying_closed) >= min_lies && h_get(h, &h->lying_open) == 0);
	struct attachment att[8];
	WAIT_FOR(name, daemon_attachments(d, 0, att, 8) == 1);
	daemon_stop(d);
	daemon_free(d);

	pthread_mutex_lock(&f->fk.lock);
	int attaches = f->fk.attaches, used = 0;
	for (int i = 0; i < NPORTS; i++) {
		if (!f->fk.ports[i].used)
			continue;
		used++;
		if (f->fk.ports[i].devid != HONEST_DEVID || f->fk.ports[i].speed != 3 || i >= HALF) {
			pthread_mutex_unlock(&f->fk.lock);
			fail_msg("%s: port %d attached with devid 0x%08x speed %u", name, i,
				 f->fk.ports[i].devid, f->fk.ports[i].speed);
		}
	}
	pthread_mutex_unlock(&f->fk.lock);
	if (attaches != 1 || used != 1)
		fail_msg("%s: %d attaches, %d ports in use; only %s should be (last lie to %s)",
			 name, attaches, used, HONEST, h->last_lie);
	if (h_get(h, &h->bad_busid_imports) != 0)
		fail_msg("%s: the daemon imported a busid not of the kernel's form", name);
	if (strcmp(att[0].busid, HONEST) != 0)
		fail_msg("%s: the daemon says it attached %s", name, att[0].busid);
	fk_reset(&f->fk);
	hostile_drop_all(h);
	f->cases++;
}

/* ---- the cases ----------------------------------------------------------------- */

/* Import replies that lie: the snapshot names 1-1 (lied to) and 1-2. */
static void test_lying_import_replies(void **state)
{
	struct fixture *f = *state;
	const char *snap = WELCOME "device busid=1-1 " ZERO_FIELDS "\ndevice busid=" HONEST " "
			   ZERO_FIELDS "\nsnapshot-end count=2\n";
	for (int r = R_OTHER_BUSID; r < R_COUNT; r++) {
		char name[64];
		snprintf(name, sizeof(name), "import reply: %s", reply_names[r]);
		run_case(f, name, snap, snap, (enum reply)r, 1);
	}
	printf("hostile server, import replies: %d lies refused\n", f->cases);
}

static char *repeat(const char *head, const char *fmt, int n, const char *tail)
{
	size_t cap = strlen(head) + strlen(tail) + (size_t)n * (strlen(fmt) + 16) + 1;
	char *s = malloc(cap);
	assert_non_null(s);
	size_t len = (size_t)snprintf(s, cap, "%s", head);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, fmt, i + 1);
	snprintf(s + len, cap - len, "%s", tail);
	return s;
}

/* Notify streams that lie; later connections get the honest snapshot. */
static void test_lying_notify(void **state)
{
	struct fixture *f = *state;
	static char big[200000];
	const char *honest_tail = "device busid=" HONEST " " ZERO_FIELDS "\nsnapshot-end count=1\n";
	static const struct {
		const char *name, *first;
		int lies;
	} cases[] = {
		{ "nothing at all", "", 0 },
		{ "error before welcome", "error reason=auth\n", 0 },
		{ "error with a bad reason", "error reason=%00%ff\n", 0 },
		{ "device before welcome", "device busid=1-1 " ZERO_FIELDS "\n", 0 },
		{ "welcome version 3", "welcome version=3 heartbeat=5 server=x\n", 0 },
		{ "welcome heartbeat 0", "welcome version=2 heartbeat=0 server=x\n", 0 },
		{ "welcome heartbeat huge", "welcome version=2 heartbeat=4294967296 server=x\n", 0 },
		{ "welcome without server", "welcome version=2 heartbeat=5\n", 0 },
		{ "v1 lines to a v2 client", "1-2;PLUGGED;\n1-1;PLUGGED;\n", 0 },
		{ "bad busids", WELCOME "device busid=../../etc " ZERO_FIELDS "\n"
				"device busid=1-1%0Arm " ZERO_FIELDS "\n"
				"device busid=1-1%3B " ZERO_FIELDS "\n"
				"device busid=0-1 " ZERO_FIELDS "\n"
				"device busid=1-1.1.1.1.1.1.1.1 " ZERO_FIELDS "\n"
				"device busid=1-1111111111111111111111111111111 " ZERO_FIELDS "\n"
				"device busid= " ZERO_FIELDS "\n"
				"device busid=1-1 busid=1-3 " ZERO_FIELDS "\n"
				"snapshot-end count=8\n"
				"plugged busid=/dev/sda " ZERO_FIELDS "\n"
				"plugged busid=1-%31 " ZERO_FIELDS "\n"
				"plugged busid=1-1%00 " ZERO_FIELDS "\n", 0 },
		{ "bad fields", WELCOME "device busid=1-1 vid=zzzz pid=a4a0 speed=high held=0\n"
				"device busid=1-1 vid=0525 pid=a4a0 speed=warp held=0\n"
				"device busid=1-1 vid=0525 pid=a4a0 speed=high held=2\n"
				"device busid=1-1 vid=10525 pid=a4a0 speed=high held=0\n"
				"device busid=1-1 vid=0525 speed=high held=0\n"
				"device busid=1-1 vid=0525 pid=a4a0 speed=high held=0 serial=%00\n"
				"device busid=1-1 vid=0525 pid=a4a0 speed=high held=0 product=%0A\n"
				"snapshot-end count=0\n", 0 },
		{ "held devices are not imported", WELCOME
				"device busid=1-1 vid=0525 pid=a4a0 speed=high held=1\n"
				"snapshot-end count=1\n"
				"plugged busid=1-3 vid=0525 pid=a4a0 speed=high held=1\n", 0 },
		{ "snapshot count lies", WELCOME "snapshot-end count=4294967295\n", 0 },
		{ "events about unknown devices", WELCOME "snapshot-end count=0\n"
				"unplugged busid=1-5\nheld busid=1-6 " ZERO_FIELDS "\n"
				"unplugged busid=9-9\n", 0 },
		{ "snapshot-end twice", WELCOME "snapshot-end count=0\nsnapshot-end count=0\n"
				"device busid=1-1 " ZERO_FIELDS "\n", 0 },
		{ "welcome twice", WELCOME WELCOME "snapshot-end count=0\n", 0 },
		{ "binary garbage", WELCOME "\x01\x02\xff\xfe\x80 busid=1-1\n\r\n\n\t\n"
				"snapshot-end count=0\n", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[96];
		snprintf(name, sizeof(name), "notify: %s", cases[i].name);
		/* What follows the lies on the same connection: if the daemon
		 * kept it, the honest device comes from here. */
		bool welcomed = strncmp(cases[i].first, "welcome version=2 heartbeat=5", 29) == 0 &&
				strstr(cases[i].first, "snapshot-end") != NULL;
		snprintf(big, sizeof(big), "%s%s", cases[i].first,
			 welcomed ? "plugged busid=" HONEST " " ZERO_FIELDS "\n" : "");
		run_case(f, name, big, HONEST_SNAPSHOT, R_STATUS_NODEV, cases[i].lies);
	}

	/* The same busid announced twice: one attachment. */
	run_case(f, "notify: duplicate snapshot entries",
		 WELCOME "device busid=" HONEST " " ZERO_FIELDS "\ndevice busid=" HONEST " "
		 ZERO_FIELDS "\nsnapshot-end count=2\n", HONEST_SNAPSHOT, R_STATUS_NODEV, 0);
	run_case(f, "notify: plugged twice",
		 WELCOME "snapshot-end count=0\nplugged busid=" HONEST " " ZERO_FIELDS
		 "\nplugged busid=" HONEST " " ZERO_FIELDS "\n", HONEST_SNAPSHOT, R_STATUS_NODEV, 0);

	/* Lines past the bound, and one that never ends in time. */
	int k = snprintf(big, sizeof(big), WELCOME);
	memset(big + k, 'x', 5000);
	snprintf(big + k + 5000, sizeof(big) - (size_t)k - 5000, "\nsnapshot-end count=0\n"
		 "plugged busid=" HONEST " " ZERO_FIELDS "\n");
	run_case(f, "notify: a 5000-byte line", big, HONEST_SNAPSHOT, R_STATUS_NODEV, 0);
	k = snprintf(big, sizeof(big), "%s", WELCOME "device busid=1-1 " ZERO_FIELDS " product=");
	memset(big + k, 'p', 2000);
	snprintf(big + k + 2000, sizeof(big) - (size_t)k - 2000, "\n%s", honest_tail);
	run_case(f, "notify: a device line past 1024 bytes", big, HONEST_SNAPSHOT,
		 R_STATUS_NODEV, 0);
	memset(big, 'y', 150000);
	big[150000] = 0;
	run_case(f, "notify: 150000 bytes without a newline", big, HONEST_SNAPSHOT,
		 R_STATUS_NODEV, 0);

	/* A flood: more devices than a snapshot holds, every import refused. */
	char *flood = repeat(WELCOME, "device busid=3-%d " ZERO_FIELDS "\n", 300,
			     "snapshot-end count=300\nplugged busid=" HONEST " " ZERO_FIELDS "\n");
	run_case(f, "notify: a 300-device snapshot", flood, HONEST_SNAPSHOT, R_STATUS_NODEV, 1);
	free(flood);
	flood = repeat(WELCOME "snapshot-end count=0\n", "plugged busid=4-%d " ZERO_FIELDS "\n",
		       300, "plugged busid=" HONEST " " ZERO_FIELDS "\n");
	run_case(f, "notify: 300 plugged events", flood, HONEST_SNAPSHOT, R_STATUS_NODEV, 1);
	free(flood);
	printf("hostile server: %d cases, no crash, no hang, only the honest device attached\n",
	       f->cases);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lying_import_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lying_notify, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
