/* vhci sysfs code against fixture directories made in a temporary dir. */
/* nftw() is an XSI interface. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/vhci.h"

#define HEADER "hub port sta spd dev      sockfd local_busid\n"

/* Short fixture paths, so every joined path provably fits PATH_MAX. */
struct fixture {
	char root[64];
	char hc[128];
	char run[128];
};

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_file(const char *dir, const char *name)
{
	static char buf[4096];
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int n = vhci_read_attr(path, buf, sizeof(buf));
	if (n < 0)
		return NULL;
	return buf;
}

/* One controller's status text: nhs high-speed then nss SuperSpeed ports
 * starting at global port base, with the ports in used[] marked in use. */
static void status_text(char *out, size_t size, int base, int half, const int *used, size_t nused)
{
	size_t len = (size_t)snprintf(out, size, HEADER);
	for (int i = 0; i < 2 * half; i++) {
		int port = base + i;
		bool u = false;
		for (size_t k = 0; k < nused; k++)
			u |= used[k] == port;
		len += (size_t)snprintf(out + len, size - len, "%s  %04d %03d %03d %08x %06d %s\n",
					i < half ? "hs" : "ss", port, u ? 6 : 4, u ? 3 : 0,
					u ? 0x10002u : 0u, u ? 3 : 0, u ? "3-1" : "0-0");
	}
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/test_vhci.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/devices", f->root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/devices/platform", f->root);
	mkdir(p, 0755);
	snprintf(f->hc, sizeof(f->hc), "%s/devices/platform/vhci_hcd.0", f->root);
	mkdir(f->hc, 0755);
	snprintf(f->run, sizeof(f->run), "%s/run", f->root);
	write_file(f->hc, "attach", "");
	write_file(f->hc, "detach", "");
	write_file(f->hc, "nports", "16\n");
	char text[4096];
	status_text(text, sizeof(text), 0, 4, NULL, 0);
	write_file(f->hc, "status", text);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	/* Only our own mkdtemp directory. */
	assert_true(strncmp(f->root, "/tmp/test_vhci.", 15) == 0);
	assert_int_equal(nftw(f->root, remove_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
	free(f);
	return 0;
}

/* ---- status parsing ---------------------------------------------------- */

struct parse_case {
	const char *name;
	const char *text;
	int rc;           /* rows added or -errno */
};

static const struct parse_case parse_cases[] = {
	{ "header only", HEADER, 0 },
	{ "one free hs", HEADER "hs  0000 004 000 00000000 000000 0-0\n", 1 },
	{ "no final newline", HEADER "ss  0008 004 000 00000000 000000 0-0", 1 },
	{ "used row", HEADER "hs  0001 006 003 0001000a 000007 3-1\n", 1 },
	{ "blank lines ignored", HEADER "\nhs  0000 004 000 00000000 000000 0-0\n\n", 1 },
	{ "no header", "hs  0000 004 000 00000000 000000 0-0\n", -EINVAL },
	{ "empty", "", -EINVAL },
	{ "bad hub", HEADER "xs  0000 004 000 00000000 000000 0-0\n", -EINVAL },
	{ "port not decimal", HEADER "hs  00a0 004 000 00000000 000000 0-0\n", -EINVAL },
	{ "negative port", HEADER "hs  -1 004 000 00000000 000000 0-0\n", -EINVAL },
	{ "port too big", HEADER "hs  99999 004 000 00000000 000000 0-0\n", -EINVAL },
	{ "dev not hex", HEADER "hs  0000 004 000 0000000g 000000 0-0\n", -EINVAL },
	{ "dev too big", HEADER "hs  0000 004 000 100000000 000000 0-0\n", -EINVAL },
	{ "missing column", HEADER "hs  0000 004 000 00000000 000000\n", -EINVAL },
	{ "extra column", HEADER "hs  0000 004 000 00000000 000000 0-0 x\n", -EINVAL },
	{ "state too big", HEADER "hs  0000 1004 000 00000000 000000 0-0\n", -EINVAL },
	{ "busid too long", HEADER "hs  0000 004 000 00000000 000000 "
				   "1234567890123456789012345678901234\n", -EINVAL },
	{ "control char", HEADER "hs  0000 004 000 00000000 000000 0-\x01\n", -EINVAL },
	{ "good then bad", HEADER "hs  0000 004 000 00000000 000000 0-0\nhs 1\n", -EINVAL },
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		struct vhci_port ports[4];
		size_t count = 0;
		int rc = vhci_parse_status(parse_cases[i].text, ports, 4, &count);
		if (rc != parse_cases[i].rc)
			fail_msg("case '%s': got %d, want %d", parse_cases[i].name, rc,
				 parse_cases[i].rc);
	}
}

static void test_parse_fields(void **state)
{
	(void)state;
	struct vhci_port ports[4];
	size_t count = 0;
	assert_int_equal(vhci_parse_status(HEADER "hs  0001 006 003 0001000a 000007 3-1\n"
					   "ss  0009 004 000 00000000 000000 0-0\n",
					   ports, 4, &count),
			 2);
	assert_int_equal(count, 2);
	assert_int_equal(ports[0].hub, VHCI_HUB_HS);
	assert_int_equal(ports[0].port, 1);
	assert_int_equal(ports[0].state, VHCI_ST_USED);
	assert_int_equal(ports[0].speed, 3);
	assert_int_equal(ports[0].devid, 0x1000a);
	assert_int_equal(ports[0].sockfd, 7);
	assert_string_equal(ports[0].local_busid, "3-1");
	assert_int_equal(ports[1].hub, VHCI_HUB_SS);
	assert_int_equal(ports[1].port, 9);
	assert_int_equal(ports[1].state, VHCI_ST_NULL);
}

static void test_parse_bound(void **state)
{
	(void)state;
	struct vhci_port ports[2];
	size_t count = 0;
	char text[4096];
	status_text(text, sizeof(text), 0, 2, NULL, 0); /* 4 rows */
	assert_int_equal(vhci_parse_status(text, ports, 2, &count), -E2BIG);
	assert_int_equal(count, 2);
}

static void test_read_two_controllers(void **state)
{
	struct fixture *f = *state;
	char text[4096];
	int used[] = { 9 };
	status_text(text, sizeof(text), 8, 4, used, 1);
	write_file(f->hc, "status.1", text);
	struct vhci v;
	assert_int_equal(vhci_init(&v, f->root, f->run, NULL), 0);
	struct vhci_port ports[64];
	int n = vhci_read_ports(&v, ports, 64);
	assert_int_equal(n, 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(ports[i].port, i);
	assert_int_equal(ports[9].state, VHCI_ST_USED);
	assert_int_equal(ports[12].hub, VHCI_HUB_SS);
	int np = 0;
	assert_int_equal(vhci_read_nports(&v, &np), 0);
	assert_int_equal(np, 16);
}

static void test_locate_missing(void **state)
{
	struct fixture *f = *state;
	char empty[128];
	snprintf(empty, sizeof(empty), "%s/nothing", f->root);
	struct vhci v;
	assert_int_equal(vhci_init(&v, empty, f->run, NULL), 0);
	assert_int_equal(vhci_locate(&v), -ENOENT);
	struct vhci_port ports[4];
	assert_int_equal(vhci_read_ports(&v, ports, 4), -ENOENT);
	/* A test root never runs modprobe. */
	assert_int_equal(vhci_load_module(&v), -ENOENT);
}

/* ---- port choice -------------------------------------------------------- */

struct pick_case {
	uint32_t speed;
	int want;
};

static void test_pick_by_speed(void **state)
{
	(void)state;
	struct vhci_port ports[32];
	size_t count = 0;
	char text[4096];
	int used[] = { 0, 4 }; /* first hs and first ss port taken */
	status_text(text, sizeof(text), 0, 4, used, 2);
	assert_int_equal(vhci_parse_status(text, ports, 32, &count), 8);
	static const struct pick_case cases[] = {
		{ 1, 1 }, { 2, 1 }, { 3, 1 }, { 4, 1 }, { 5, 5 }, { 6, 5 }, { 0, -EINVAL },
		{ 7, -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = vhci_pick_port(ports, count, cases[i].speed, NULL, 0);
		if (got != cases[i].want)
			fail_msg("speed %u: got %d, want %d", cases[i].speed, got, cases[i].want);
	}
	int skip[] = { 1, 2 };
	assert_int_equal(vhci_pick_port(ports, count, 3, skip, 2), 3);
	int skip_all[] = { 1, 2, 3 };
	assert_int_equal(vhci_pick_port(ports, count, 3, skip_all, 3), -EBUSY);
	assert_int_equal(vhci_hub_for_speed(5), VHCI_HUB_SS);
	assert_int_equal(vhci_hub_for_speed(2), VHCI_HUB_HS);
}

static void test_pick_full_hub(void **state)
{
	(void)state;
	struct vhci_port ports[32];
	size_t count = 0;
	char text[4096];
	int used[] = { 0, 1 };
	status_text(text, sizeof(text), 0, 2, used, 2);
	assert_int_equal(vhci_parse_status(text, ports, 32, &count), 4);
	assert_int_equal(vhci_pick_port(ports, count, 3, NULL, 0), -EBUSY);
	assert_int_equal(vhci_pick_port(ports, count, 5, NULL, 0), 2);
}

/* ---- attach / detach ---------------------------------------------------- */

static void test_attach_writes(void **state)
{
	struct fixture *f = *state;
	struct vhci v;
	assert_int_equal(vhci_init(&v, f->root, f->run, NULL), 0);
	int port = -1;
	assert_int_equal(vhci_attach(&v, 7, 0x10002, 3, &port), 0);
	assert_int_equal(port, 0);
	assert_string_equal(read_file(f->hc, "attach"), "0 7 65538 3");
	/* SuperSpeedPlus goes to the ss hub, reported as SuperSpeed. */
	assert_int_equal(vhci_attach(&v, 9, 0x20003, 6, &port), 0);
	assert_int_equal(port, 4);
	assert_string_equal(read_file(f->hc, "attach"), "4 9 131075 5");
	assert_int_equal(vhci_attach(&v, -1, 1, 3, &port), -EBADF);
	assert_int_equal(vhci_attach(&v, 7, 1, 0, &port), -EINVAL);

	assert_int_equal(vhci_detach(&v, 4), 0);
	assert_string_equal(read_file(f->hc, "detach"), "4");
	assert_int_equal(vhci_detach(&v, -1), -EINVAL);
}

struct inject {
	int busy_left;   /* answer EBUSY this many times */
	int fail_with;   /* then this (0 = write the file) */
	char texts[8][64];
	int calls;
};

static int inject_write(void *ctx, const char *path, const char *text)
{
	struct inject *in = ctx;
	if (in->calls < 8)
		snprintf(in->texts[in->calls], sizeof(in->texts[0]), "%s", text);
	in->calls++;
	if (in->busy_left > 0) {
		in->busy_left--;
		return -EBUSY;
	}
	if (in->fail_with)
		return in->fail_with;
	return vhci_write_file(NULL, path, text);
}

static void test_attach_ebusy_retry(void **state)
{
	struct fixture *f = *state;
	struct inject in = { .busy_left = 2 };
	struct vhci_ops ops = { .write_attr = inject_write, .ctx = &in };
	struct vhci v;
	assert_int_equal(vhci_init(&v, f->root, f->run, &ops), 0);
	int port = -1;
	assert_int_equal(vhci_attach(&v, 5, 0x10002, 2, &port), 0);
	assert_int_equal(in.calls, 3);
	assert_string_equal(in.texts[0], "0 5 65538 2");
	assert_string_equal(in.texts[1], "1 5 65538 2");
	assert_string_equal(in.texts[2], "2 5 65538 2");
	assert_int_equal(port, 2);
	assert_string_equal(read_file(f->hc, "attach"), "2 5 65538 2");
}

static void test_attach_ebusy_exhausted(void **state)
{
	struct fixture *f = *state;
	struct inject in = { .busy_left = 100 };
	struct vhci_ops ops = { .write_attr = inject_write, .ctx = &in };
	struct vhci v;
	assert_int_equal(vhci_init(&v, f->root, f->run, &ops), 0);
	int port = -1;
	/* 4 hs ports: each tried once, then no free port is left to try. */
	assert_int_equal(vhci_attach(&v, 5, 1, 3, &port), -EBUSY);
	assert_int_equal(in.calls, 4);
	assert_int_equal(port, -1);
}

static void test_attach_other_error(void **state)
{
	struct fixture *f = *state;
	struct inject in = { .fail_with = -EINVAL };
	struct vhci_ops ops = { .write_attr = inject_write, .ctx = &in };
	struct vhci v;
	assert_int_equal(vhci_init(&v, f->root, f->run, &ops), 0);
	int port = -1;
	assert_int_equal(vhci_attach(&v, 5, 1, 3, &port), -EINVAL);
	assert_int_equal(in.calls, 1);
}

static void test_attach_no_free_port(void **state)
{
	struct fixture *f = *state;
	char text[4096];
	int used[] = { 0, 1, 2, 3 };
	status_text(text, sizeof(text), 0, 4, used, 4);
	write_file(f->hc, "status", text);
	struct inject in = { 0 };
	struct vhci_ops ops = { .write_attr = inject_write, .ctx = &in };
	struct vhci v;
	assert_int_equal(vhci_init(&v, f->root, f->run, &ops), 0);
	int port = -1;
	assert_int_equal(vhci_attach(&v, 5, 1, 3, &port), -EBUSY);
	assert_int_equal(in.calls, 0);
	/* The ss hub still has room. */
	assert_int_equal(vhci_attach(&v, 5, 1, 5, &port), 0);
	assert_int_equal(port, 4);
}

/* ---- port records ------------------------------------------------------- */

static void test_records(void **state)
{
	struct fixture *f = *state;
	struct vhci v;
	assert_int_equal(vhci_init(&v, f->root, f->run, NULL), 0);
	char host[VHCI_HOST_SIZE], service[VHCI_SERVICE_SIZE], busid[USBIP_BUSID_SIZE];
	assert_int_equal(vhci_record_read(&v, 3, host, service, busid), -ENOENT);
	assert_int_equal(vhci_record_write(&v, 3, "192.168.1.5", "3240", "1-1.2"), 0);
	assert_string_equal(read_file(f->run, "port3"), "192.168.1.5 3240 1-1.2\n");
	assert_int_equal(vhci_record_read(&v, 3, host, service, busid), 0);
	assert_string_equal(host, "192.168.1.5");
	assert_string_equal(service, "3240");
	assert_string_equal(busid, "1-1.2");
	assert_int_equal(vhci_record_remove(&v, 3), 0);
	assert_null(read_file(f->run, "port3"));
	assert_int_equal(vhci_record_remove(&v, 3), 0);

	/* Hostile strings never reach the file. */
	assert_int_equal(vhci_record_write(&v, 3, "a b", "3240", "1-1"), -EINVAL);
	assert_int_equal(vhci_record_write(&v, 3, "h", "3240", "../x"), -EINVAL);
	assert_int_equal(vhci_record_write(&v, 3, "h\n", "3240", "1-1"), -EINVAL);
	assert_int_equal(vhci_record_write(&v, -1, "h", "3240", "1-1"), -EINVAL);

	static const char *bad[] = { "h 3240\n", "h 3240 1-1", "h 3240 0-0\n",
				     "h 3240 1-1 extra\n", "h 3240 1-1\nmore\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(f->run, "port5", bad[i]);
		if (vhci_record_read(&v, 5, host, service, busid) != -EINVAL)
			fail_msg("record '%s' accepted", bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_bound),
		cmocka_unit_test(test_pick_by_speed),
		cmocka_unit_test(test_pick_full_hub),
		cmocka_unit_test_setup_teardown(test_read_two_controllers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locate_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_ebusy_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_ebusy_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_other_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_no_free_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_records, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
