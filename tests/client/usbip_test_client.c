/* usbip-test-client: list and import USB/IP devices and run a few
 * transfers by hand, through the test client library.
 *
 *   usbip-test-client [-t MS] list HOST [PORT]
 *   usbip-test-client [-t MS] import HOST PORT BUSID [ACTION...]
 *     --control-in BMREQ BREQ WVALUE WINDEX WLENGTH
 *     --bulk-in EP LEN
 *     --bulk-out EP HEXBYTES
 *
 * Exit status: 0 when everything succeeded (every URB with status 0),
 * 1 on any failure, 2 on a usage error. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/bytes.h"
#include "proto/linux_errno.h"
#include "usbip_client.h"

#define DEFAULT_PORT "3240"
#define DEFAULT_TIMEOUT_MS 5000
#define MAX_ACTIONS 64

enum action_kind { ACT_CONTROL_IN, ACT_BULK_IN, ACT_BULK_OUT };

struct action {
	enum action_kind kind;
	uint32_t ep;
	uint32_t length;
	uint8_t setup[USBIP_SETUP_SIZE];
	uint8_t *out;           /* ACT_BULK_OUT, owned */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: usbip-test-client [-t TIMEOUT_MS] list HOST [PORT]\n"
		"       usbip-test-client [-t TIMEOUT_MS] import HOST PORT BUSID [ACTION...]\n"
		"actions, run in order after the import:\n"
		"  --control-in BMREQ BREQ WVALUE WINDEX WLENGTH   e.g. 0x80 6 0x100 0 18\n"
		"  --bulk-in EP LEN\n"
		"  --bulk-out EP HEXBYTES                          e.g. 1 deadbeef\n"
		"numbers take C syntax (0x.. hex); default port %s, timeout %d ms\n",
		DEFAULT_PORT, DEFAULT_TIMEOUT_MS);
}

/* Parses an unsigned number in [0, max]; -1 when it is not one. */
static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int hex_nibble(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Hex pairs, optionally separated by ':' or spaces. Returns a malloc'd
 * buffer and its length, or NULL on a parse error. */
static uint8_t *parse_hex(const char *s, uint32_t *len_out)
{
	size_t cap = strlen(s) / 2 + 1;
	uint8_t *buf = malloc(cap);
	uint32_t len = 0;

	if (!buf)
		return NULL;
	while (*s) {
		if (*s == ':' || *s == ' ') {
			s++;
			continue;
		}
		int hi = hex_nibble((unsigned char)s[0]);
		int lo = s[1] ? hex_nibble((unsigned char)s[1]) : -1;
		if (hi < 0 || lo < 0) {
			free(buf);
			return NULL;
		}
		buf[len++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	*len_out = len;
	return buf;
}

static void hexdump(const uint8_t *p, size_t n)
{
	for (size_t at = 0; at < n; at += 16) {
		size_t row = n - at < 16 ? n - at : 16;

		printf("  %04zx ", at);
		for (size_t i = 0; i < 16; i++) {
			if (i < row)
				printf(" %02x", p[at + i]);
			else
				printf("   ");
		}
		printf("  |");
		for (size_t i = 0; i < row; i++)
			putchar(isprint(p[at + i]) ? p[at + i] : '.');
		printf("|\n");
	}
}

/* ---- list -------------------------------------------------------------- */

static int print_device(void *ctx, const struct usbip_device_record *dev,
			const struct usbip_interface_record *ifaces)
{
	unsigned *count = ctx;

	(*count)++;
	printf("%s  %04x:%04x  %s  class %02x/%02x/%02x  config %u/%u  path %s\n", dev->busid,
	       dev->idVendor, dev->idProduct, usbip_speed_name(dev->speed), dev->bDeviceClass,
	       dev->bDeviceSubClass, dev->bDeviceProtocol, dev->bConfigurationValue,
	       dev->bNumConfigurations, dev->path);
	for (unsigned i = 0; i < dev->bNumInterfaces; i++)
		printf("    interface %u: class %02x/%02x/%02x\n", i, ifaces[i].bInterfaceClass,
		       ifaces[i].bInterfaceSubClass, ifaces[i].bInterfaceProtocol);
	return 0;
}

static int cmd_list(const char *host, const char *port, int timeout_ms)
{
	struct uc_conn *conn;
	unsigned count = 0;
	int rc = uc_connect(host, port, timeout_ms, &conn);

	if (rc < 0) {
		fprintf(stderr, "connect %s:%s: %s\n", host, port, uc_strerror(rc));
		return 1;
	}
	rc = uc_devlist(conn, print_device, &count);
	if (rc < 0)
		fprintf(stderr, "devlist: %s: %s\n", uc_strerror(rc), uc_last_error(conn));
	else if (count == 0)
		printf("no exported devices\n");
	uc_close(conn);
	return rc < 0 ? 1 : 0;
}

/* ---- import and transfers ---------------------------------------------- */

static void free_actions(struct action *acts, int n)
{
	for (int i = 0; i < n; i++)
		free(acts[i].out);
}

/* Parses the actions after BUSID. Returns how many, or -1 on a usage error. */
static int parse_actions(int argc, char **argv, struct action *acts)
{
	int n = 0;

	for (int i = 0; i < argc; n++) {
		struct action *a = &acts[n];
		uint32_t v[5];

		if (n == MAX_ACTIONS) {
			fprintf(stderr, "at most %d actions\n", MAX_ACTIONS);
			free_actions(acts, n);
			return -1;
		}
		memset(a, 0, sizeof(*a));
		if (strcmp(argv[i], "--control-in") == 0 && argc - i > 5) {
			if (parse_u32(argv[i + 1], 0xff, &v[0]) || parse_u32(argv[i + 2], 0xff, &v[1]) ||
			    parse_u32(argv[i + 3], 0xffff, &v[2]) ||
			    parse_u32(argv[i + 4], 0xffff, &v[3]) ||
			    parse_u32(argv[i + 5], 0xffff, &v[4])) {
				fprintf(stderr, "--control-in: bad number\n");
				goto err;
			}
			if (!(v[0] & 0x80)) {
				fprintf(stderr, "--control-in: BMREQ 0x%02x lacks the IN bit 0x80\n", v[0]);
				goto err;
			}
			a->kind = ACT_CONTROL_IN;
			a->ep = 0;
			a->length = v[4];
			a->setup[0] = (uint8_t)v[0];
			a->setup[1] = (uint8_t)v[1];
			put_le16(a->setup + 2, (uint16_t)v[2]);
			put_le16(a->setup + 4, (uint16_t)v[3]);
			put_le16(a->setup + 6, (uint16_t)v[4]);
			i += 6;
		} else if (strcmp(argv[i], "--bulk-in") == 0 && argc - i > 2) {
			if (parse_u32(argv[i + 1], 15, &a->ep) ||
			    parse_u32(argv[i + 2], USBIP_MAX_TRANSFER_LENGTH, &a->length)) {
				fprintf(stderr, "--bulk-in: bad endpoint or length\n");
				goto err;
			}
			a->kind = ACT_BULK_IN;
			i += 3;
		} else if (strcmp(argv[i], "--bulk-out") == 0 && argc - i > 2) {
			if (parse_u32(argv[i + 1], 15, &a->ep)) {
				fprintf(stderr, "--bulk-out: bad endpoint\n");
				goto err;
			}
			a->out = parse_hex(argv[i + 2], &a->length);
			if (!a->out) {
				fprintf(stderr, "--bulk-out: bad hex bytes\n");
				goto err;
			}
			a->kind = ACT_BULK_OUT;
			i += 3;
		} else {
			fprintf(stderr, "unknown or incomplete action '%s'\n", argv[i]);
			goto err;
		}
	}
	return n;

err:
	/* acts[n] is zeroed or complete, so freeing it too is safe. */
	free_actions(acts, n + 1);
	return -1;
}

/* Runs one action as one URB and prints its reply. 0 when status is 0. */
static int run_action(struct uc_conn *conn, const struct action *a, uint32_t seqnum,
		      int timeout_ms)
{
	static const char *const names[] = { "control-in", "bulk-in", "bulk-out" };
	struct uc_urb urb;
	struct uc_reply r;
	int rc;

	memset(&urb, 0, sizeof(urb));
	urb.seqnum = seqnum;
	urb.devid = uc_devid(conn);
	urb.direction = a->kind == ACT_BULK_OUT ? USBIP_DIR_OUT : USBIP_DIR_IN;
	urb.ep = a->ep;
	urb.transfer_flags = urb.direction == USBIP_DIR_IN ? USBIP_URB_DIR_IN : 0;
	urb.buffer_length = a->length;
	memcpy(urb.setup, a->setup, USBIP_SETUP_SIZE);
	urb.out_data = a->out;

	rc = uc_submit(conn, &urb);
	if (rc < 0) {
		fprintf(stderr, "%s: submit: %s: %s\n", names[a->kind], uc_strerror(rc),
			uc_last_error(conn));
		return 1;
	}
	rc = uc_recv(conn, &r, timeout_ms);
	if (rc < 0) {
		fprintf(stderr, "%s: reply: %s: %s\n", names[a->kind], uc_strerror(rc),
			uc_last_error(conn));
		return 1;
	}
	printf("%s ep %u seqnum %u: status %d%s%s, actual_length %u\n", names[a->kind], a->ep,
	       r.seqnum, r.status, r.status ? " " : "",
	       r.status ? linux_errno_name(r.status) : "", r.actual_length);
	if (r.data_len > 0)
		hexdump(r.data, r.data_len);
	rc = r.status == 0 ? 0 : 1;
	uc_reply_free(&r);
	return rc;
}

static int cmd_import(const char *host, const char *port, const char *busid, int argc,
		      char **argv, int timeout_ms)
{
	struct action acts[MAX_ACTIONS];
	struct usbip_device_record dev;
	struct uc_conn *conn;
	uint32_t op_status = 0;
	int nacts = parse_actions(argc, argv, acts);
	int failed = 0;
	int rc;

	if (nacts < 0) {
		usage(stderr);
		return 2;
	}
	rc = uc_connect(host, port, timeout_ms, &conn);
	if (rc < 0) {
		fprintf(stderr, "connect %s:%s: %s\n", host, port, uc_strerror(rc));
		failed = 1;
		goto out_free_actions;
	}
	rc = uc_import(conn, busid, &op_status, &dev);
	if (rc < 0) {
		fprintf(stderr, "import %s: %s: %s\n", busid, uc_strerror(rc), uc_last_error(conn));
		failed = 1;
		goto out_close;
	}
	printf("imported %s  %04x:%04x  %s  devid 0x%08x\n", dev.busid, dev.idVendor,
	       dev.idProduct, usbip_speed_name(dev.speed), uc_devid(conn));
	for (int i = 0; i < nacts && !failed; i++)
		failed = run_action(conn, &acts[i], (uint32_t)i + 1, timeout_ms);
out_close:
	uc_close(conn);
out_free_actions:
	free_actions(acts, nacts);
	return failed;
}

int main(int argc, char **argv)
{
	int timeout_ms = DEFAULT_TIMEOUT_MS;
	int i = 1;

	if (i + 1 < argc && strcmp(argv[i], "-t") == 0) {
		uint32_t t;
		if (parse_u32(argv[i + 1], 24u * 3600u * 1000u, &t)) {
			usage(stderr);
			return 2;
		}
		timeout_ms = (int)t;
		i += 2;
	}
	if (i < argc && (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (i + 1 < argc && strcmp(argv[i], "list") == 0 && argc - i <= 3)
		return cmd_list(argv[i + 1], i + 2 < argc ? argv[i + 2] : DEFAULT_PORT, timeout_ms);
	if (i + 3 < argc && strcmp(argv[i], "import") == 0)
		return cmd_import(argv[i + 1], argv[i + 2], argv[i + 3], argc - (i + 4),
				  argv + i + 4, timeout_ms);
	usage(stderr);
	return 2;
}
