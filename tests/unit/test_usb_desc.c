/* usb_desc: configuration descriptor parsing and endpoint lookup, driven by
 * hand-built descriptor bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/usb_desc.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Descriptor builders (USB 2.0 ch. 9 layouts, little-endian words).
 * CONFIG's wTotalLength is patched by parse_fixed(). */
#define LE16(v) (uint8_t)((v) & 0xff), (uint8_t)((v) >> 8)
#define CONFIG(nif, value) 9, 2, 0, 0, (nif), (value), 0, 0x80, 50
#define IFACE(num, alt, nep, cls, sub, proto) 9, 4, (num), (alt), (nep), (cls), (sub), (proto), 0
#define EP(addr, attr, mps, ival) 7, 5, (addr), (attr), LE16(mps), (ival)
#define IAD(first, count, cls) 8, 0x0b, (first), (count), (cls), 0, 0, 0
#define SS_COMPANION(burst) 6, 0x30, (burst), 0, LE16(0)

enum { BULK = 2, ISO = 1, INTR = 3, CTRL = 0 };

static struct usb_config_info *new_cfg(void)
{
	struct usb_config_info *cfg = malloc(sizeof(*cfg));

	assert_non_null(cfg);
	return cfg;
}

/* Parses a copy of d with wTotalLength set to its size. */
static int parse_fixed(const uint8_t *d, size_t n, struct usb_config_info *cfg)
{
	uint8_t *copy = malloc(n);
	int rc;

	assert_non_null(copy);
	memcpy(copy, d, n);
	copy[2] = (uint8_t)(n & 0xff);
	copy[3] = (uint8_t)(n >> 8);
	rc = usb_desc_parse_config(copy, n, cfg);
	free(copy);
	return rc;
}

static const uint8_t gadget_zero[] = {
	CONFIG(2, 3),
	IFACE(0, 0, 2, 0xff, 0, 0),
	EP(0x81, BULK, 512, 0),
	EP(0x01, BULK, 512, 0),
	IFACE(1, 0, 0, 0xff, 0, 0),
	IFACE(1, 1, 2, 0xff, 0, 0),
	EP(0x84, ISO | 0x04 /* async */, 1024, 1),
	EP(0x04, ISO, 0x1400 | 1024 /* 3 per microframe */, 4),
};

struct lookup_case {
	uint8_t cur_alt[2];
	uint8_t address;
	int want_rc;
	uint8_t iface;
	uint8_t type;
	uint16_t max_packet;
	uint8_t interval;
};

static const struct lookup_case gadget_zero_lookups[] = {
	{ { 0, 0 }, 0x81, 0, 0, BULK, 512, 0 },
	{ { 0, 0 }, 0x01, 0, 0, BULK, 512, 0 },
	{ { 0, 0 }, 0x84, -1, 0, 0, 0, 0 },      /* iso only in alt 1 */
	{ { 0, 0 }, 0x04, -1, 0, 0, 0, 0 },
	{ { 0, 1 }, 0x84, 0, 1, ISO, 1024, 1 },
	{ { 0, 1 }, 0x04, 0, 1, ISO, 0x1400 | 1024, 4 },
	{ { 0, 1 }, 0x81, 0, 0, BULK, 512, 0 },
	{ { 0, 1 }, 0x02, -1, 0, 0, 0, 0 },
	{ { 0, 1 }, 0x82, -1, 0, 0, 0, 0 },
	{ { 0, 1 }, 0x00, -1, 0, 0, 0, 0 },      /* ep0 is never looked up here */
	{ { 0, 1 }, 0x80, -1, 0, 0, 0, 0 },
	{ { 0, 1 }, 0x44, -1, 0, 0, 0, 0 },      /* not the same as 0x04 */
	{ { 5, 1 }, 0x81, -1, 0, 0, 0, 0 },      /* iface 0 at a missing alt */
	{ { 5, 1 }, 0x84, 0, 1, ISO, 1024, 1 },
};

static void test_gadget_zero(void **state)
{
	struct usb_config_info *cfg = new_cfg();
	const struct usb_altsetting_info *as;
	int idx;

	(void)state;
	assert_int_equal(parse_fixed(gadget_zero, sizeof(gadget_zero), cfg), USB_DESC_OK);
	assert_int_equal(cfg->config_value, 3);
	assert_int_equal(cfg->num_interfaces, 2);
	assert_int_equal(cfg->iface[0].number, 0);
	assert_int_equal(cfg->iface[0].num_altsettings, 1);
	assert_int_equal(cfg->iface[0].alt[0].num_endpoints, 2);
	assert_int_equal(cfg->iface[0].alt[0].iface_class, 0xff);
	assert_int_equal(cfg->iface[1].number, 1);
	assert_int_equal(cfg->iface[1].num_altsettings, 2);

	idx = usb_desc_find_interface(cfg, 1);
	assert_int_equal(idx, 1);
	assert_int_equal(usb_desc_find_interface(cfg, 2), -1);
	as = usb_desc_find_alt(&cfg->iface[idx], 0);
	assert_non_null(as);
	assert_int_equal(as->num_endpoints, 0);
	as = usb_desc_find_alt(&cfg->iface[idx], 1);
	assert_non_null(as);
	assert_int_equal(as->alt, 1);
	assert_int_equal(as->num_endpoints, 2);
	assert_int_equal(as->ep[0].address, 0x84);
	assert_int_equal(as->ep[1].address, 0x04);
	assert_null(usb_desc_find_alt(&cfg->iface[idx], 2));

	for (size_t i = 0; i < ARRAY_LEN(gadget_zero_lookups); i++) {
		const struct lookup_case *c = &gadget_zero_lookups[i];
		struct usb_endpoint_info ep;
		uint8_t iface = 0xee;
		int rc;

		memset(&ep, 0xee, sizeof(ep));
		rc = usb_desc_find_endpoint(cfg, c->cur_alt, c->address, &ep, &iface);
		if (rc != c->want_rc)
			fail_msg("lookup %zu (0x%02x): rc %d want %d", i, c->address, rc,
				 c->want_rc);
		if (rc != 0)
			continue;
		assert_int_equal(iface, c->iface);
		assert_int_equal(ep.address, c->address);
		assert_int_equal(ep.type, c->type);
		assert_int_equal(ep.max_packet, c->max_packet);
		assert_int_equal(ep.interval, c->interval);
	}

	/* NULL cur_alt: every interface at altsetting 0. */
	assert_int_equal(usb_desc_find_endpoint(cfg, NULL, 0x81, NULL, NULL), 0);
	assert_int_equal(usb_desc_find_endpoint(cfg, NULL, 0x84, NULL, NULL), -1);
	free(cfg);
}

/* SuperSpeed mass storage: every endpoint followed by its companion. */
static const uint8_t mass_storage_ss[] = {
	CONFIG(1, 1),
	IFACE(0, 0, 2, 0x08, 0x06, 0x50),
	EP(0x81, BULK, 1024, 0),
	SS_COMPANION(15),
	EP(0x02, BULK, 1024, 0),
	SS_COMPANION(15),
};

static void test_mass_storage(void **state)
{
	struct usb_config_info *cfg = new_cfg();
	const uint8_t alt0[1] = { 0 };
	struct usb_endpoint_info ep;
	uint8_t iface = 0xee;

	(void)state;
	assert_int_equal(parse_fixed(mass_storage_ss, sizeof(mass_storage_ss), cfg),
			 USB_DESC_OK);
	assert_int_equal(cfg->num_interfaces, 1);
	assert_int_equal(cfg->iface[0].alt[0].iface_class, 0x08);
	assert_int_equal(cfg->iface[0].alt[0].iface_subclass, 0x06);
	assert_int_equal(cfg->iface[0].alt[0].iface_protocol, 0x50);
	assert_int_equal(cfg->iface[0].alt[0].num_endpoints, 2);
	assert_int_equal(usb_desc_find_endpoint(cfg, alt0, 0x02, &ep, &iface), 0);
	assert_int_equal(ep.type, BULK);
	assert_int_equal(ep.max_packet, 1024);
	assert_int_equal(iface, 0);
	assert_int_equal(usb_desc_find_endpoint(cfg, alt0, 0x81, &ep, &iface), 0);
	assert_int_equal(usb_desc_find_endpoint(cfg, alt0, 0x82, &ep, &iface), -1);
	free(cfg);
}

/* Audio-like: an association, class-specific interface and endpoint
 * descriptors between the standard ones, 9-byte audio endpoints, and a HID
 * interface with its HID descriptor. */
static const uint8_t audio_like[] = {
	CONFIG(3, 1),
	IAD(0, 2, 0x01),
	IFACE(0, 0, 0, 0x01, 0x01, 0),
	9, 0x24, 0x01, LE16(0x0100), LE16(30), 1, 1,           /* AC header */
	12, 0x24, 0x02, 1, LE16(0x0101), 0, 2, LE16(3), 0, 0,    /* input terminal */
	9, 0x24, 0x03, 2, LE16(0x0301), 0, 1, 0,                 /* output terminal */
	IFACE(1, 0, 0, 0x01, 0x02, 0),
	IFACE(1, 1, 1, 0x01, 0x02, 0),
	7, 0x24, 0x01, 1, 1, LE16(1),                            /* AS general */
	11, 0x24, 0x02, 1, 2, 2, 16, 1, 0x44, 0xac, 0x00,        /* format type */
	9, 5, 0x01, 0x09, LE16(192), 1, 0, 0,                   /* audio iso OUT */
	7, 0x25, 0x01, 0x01, 0, LE16(0),                         /* CS endpoint */
	IFACE(2, 0, 1, 0x03, 0, 0),
	9, 0x21, LE16(0x0111), 0, 1, 0x22, LE16(50),             /* HID */
	EP(0x83, INTR, 8, 10),
};

static void test_audio_like(void **state)
{
	struct usb_config_info *cfg = new_cfg();
	const uint8_t alts[3] = { 0, 1, 0 };
	struct usb_endpoint_info ep;
	uint8_t iface = 0xee;

	(void)state;
	assert_int_equal(parse_fixed(audio_like, sizeof(audio_like), cfg), USB_DESC_OK);
	assert_int_equal(cfg->num_interfaces, 3);
	assert_int_equal(cfg->iface[0].num_altsettings, 1);
	assert_int_equal(cfg->iface[0].alt[0].num_endpoints, 0);
	assert_int_equal(cfg->iface[1].num_altsettings, 2);
	assert_int_equal(cfg->iface[1].alt[1].num_endpoints, 1);
	assert_int_equal(cfg->iface[2].alt[0].iface_class, 0x03);

	assert_int_equal(usb_desc_find_endpoint(cfg, alts, 0x01, &ep, &iface), 0);
	assert_int_equal(iface, 1);
	assert_int_equal(ep.type, ISO);
	assert_int_equal(ep.max_packet, 192);
	assert_int_equal(ep.interval, 1);
	assert_int_equal(usb_desc_find_endpoint(cfg, alts, 0x83, &ep, &iface), 0);
	assert_int_equal(iface, 2);
	assert_int_equal(ep.type, INTR);
	assert_int_equal(ep.interval, 10);
	assert_int_equal(usb_desc_find_endpoint(cfg, NULL, 0x01, &ep, &iface), -1);
	free(cfg);
}

/* Altsettings are grouped by interface number even when another
 * interface's descriptor comes between them. */
static void test_interleaved_altsettings(void **state)
{
	static const uint8_t d[] = {
		CONFIG(2, 1),
		IFACE(0, 0, 1, 0xff, 0, 0),
		EP(0x81, INTR, 8, 1),
		IFACE(1, 0, 1, 0xff, 0, 0),
		EP(0x82, BULK, 64, 0),
		IFACE(0, 1, 1, 0xff, 0, 0),
		EP(0x81, ISO, 256, 1),
	};
	struct usb_config_info *cfg = new_cfg();
	const uint8_t alts[2] = { 1, 0 };
	struct usb_endpoint_info ep;
	uint8_t iface = 0xee;

	(void)state;
	assert_int_equal(parse_fixed(d, sizeof(d), cfg), USB_DESC_OK);
	assert_int_equal(cfg->num_interfaces, 2);
	assert_int_equal(cfg->iface[0].num_altsettings, 2);
	assert_int_equal(cfg->iface[1].num_altsettings, 1);
	assert_int_equal(usb_desc_find_endpoint(cfg, alts, 0x81, &ep, &iface), 0);
	assert_int_equal(iface, 0);
	assert_int_equal(ep.type, ISO);
	assert_int_equal(usb_desc_find_endpoint(cfg, NULL, 0x81, &ep, &iface), 0);
	assert_int_equal(ep.type, INTR);
	assert_int_equal(usb_desc_find_endpoint(cfg, alts, 0x82, &ep, &iface), 0);
	assert_int_equal(iface, 1);
	free(cfg);
}

/* Entries that cannot be routed to are dropped; the first description of
 * an altsetting or address wins. */
static void test_ignored_entries(void **state)
{
	static const uint8_t d[] = {
		CONFIG(1, 1),
		IFACE(0, 0, 5, 0xff, 0, 0),
		EP(0x00, CTRL, 64, 0),   /* endpoint 0 */
		EP(0x80, CTRL, 64, 0),
		EP(0x91, BULK, 64, 0),   /* reserved address bits */
		EP(0x81, BULK, 64, 0),
		EP(0x81, INTR, 8, 1),    /* duplicate address */
		IFACE(0, 0, 1, 0xff, 0, 0), /* duplicate altsetting */
		EP(0x02, BULK, 64, 0),
	};
	struct usb_config_info *cfg = new_cfg();
	struct usb_endpoint_info ep;

	(void)state;
	assert_int_equal(parse_fixed(d, sizeof(d), cfg), USB_DESC_OK);
	assert_int_equal(cfg->num_interfaces, 1);
	assert_int_equal(cfg->iface[0].num_altsettings, 1);
	assert_int_equal(cfg->iface[0].alt[0].num_endpoints, 1);
	assert_int_equal(usb_desc_find_endpoint(cfg, NULL, 0x81, &ep, NULL), 0);
	assert_int_equal(ep.type, BULK);
	assert_int_equal(usb_desc_find_endpoint(cfg, NULL, 0x91, &ep, NULL), -1);
	assert_int_equal(usb_desc_find_endpoint(cfg, NULL, 0x02, &ep, NULL), -1);
	free(cfg);
}

/* Bytes after wTotalLength belong to someone else and are not read. */
static void test_bytes_beyond_total_ignored(void **state)
{
	uint8_t d[sizeof(gadget_zero) + 4];
	struct usb_config_info *cfg = new_cfg();

	(void)state;
	memcpy(d, gadget_zero, sizeof(gadget_zero));
	d[2] = sizeof(gadget_zero);
	d[3] = 0;
	memset(d + sizeof(gadget_zero), 0, 4); /* would be bLength 0 */
	assert_int_equal(usb_desc_parse_config(d, sizeof(d), cfg), USB_DESC_OK);
	assert_int_equal(cfg->num_interfaces, 2);
	free(cfg);
}

/* A configuration with no interfaces at all parses to an empty table. */
static void test_bare_config(void **state)
{
	static const uint8_t d[] = { CONFIG(0, 7) };
	struct usb_config_info *cfg = new_cfg();

	(void)state;
	assert_int_equal(parse_fixed(d, sizeof(d), cfg), USB_DESC_OK);
	assert_int_equal(cfg->config_value, 7);
	assert_int_equal(cfg->num_interfaces, 0);
	assert_int_equal(usb_desc_find_endpoint(cfg, NULL, 0x81, NULL, NULL), -1);
	free(cfg);
}

struct error_case {
	const char *what;
	uint8_t bytes[40];
	size_t n;
	int want;
};

/* wTotalLength is written by hand here: some cases lie about it. */
static const struct error_case error_cases[] = {
	{ "empty", { 0 }, 0, USB_DESC_E_SHORT },
	{ "one byte", { 9 }, 1, USB_DESC_E_SHORT },
	{ "device descriptor", { 18, 1, LE16(0x0200), 0, 0, 0, 64 }, 8, USB_DESC_E_TYPE },
	{ "interface first", { IFACE(0, 0, 0, 0, 0, 0) }, 9, USB_DESC_E_TYPE },
	{ "config bLength 0", { 0, 2, LE16(9), 0, 1, 0, 0x80, 50 }, 9, USB_DESC_E_LENGTH },
	{ "config bLength 8", { 8, 2, LE16(9), 0, 1, 0, 0x80, 50 }, 9, USB_DESC_E_LENGTH },
	{ "config cut", { 9, 2, LE16(9), 0, 1 }, 6, USB_DESC_E_SHORT },
	{ "total below bLength", { 9, 2, LE16(8), 0, 1, 0, 0x80, 50 }, 9, USB_DESC_E_LENGTH },
	{ "total beyond buffer", { 9, 2, LE16(18), 0, 1, 0, 0x80, 50, IFACE(0, 0, 0, 0, 0, 0) },
	  17, USB_DESC_E_LENGTH },
	{ "total 0xffff", { 9, 2, LE16(0xffff), 0, 1, 0, 0x80, 50 }, 9, USB_DESC_E_LENGTH },
	{ "zero bLength inside", { 9, 2, LE16(11), 0, 1, 0, 0x80, 50, 0, 4 }, 11,
	  USB_DESC_E_LENGTH },
	{ "bLength 1 inside", { 9, 2, LE16(11), 0, 1, 0, 0x80, 50, 1, 4 }, 11,
	  USB_DESC_E_LENGTH },
	{ "lone trailing byte", { 9, 2, LE16(10), 0, 1, 0, 0x80, 50, 9 }, 10, USB_DESC_E_SHORT },
	{ "descriptor past total", { 9, 2, LE16(15), 0, 1, 0, 0x80, 50, IFACE(0, 0, 0, 0, 0, 0) },
	  18, USB_DESC_E_SHORT },
	{ "short interface", { 9, 2, LE16(17), 1, 1, 0, 0x80, 50, 8, 4, 0, 0, 0, 0, 0, 0 }, 17,
	  USB_DESC_E_LENGTH },
	{ "short endpoint", { 9, 2, LE16(24), 1, 1, 0, 0x80, 50, IFACE(0, 0, 1, 0, 0, 0),
	  6, 5, 0x81, 2, LE16(64) }, 24, USB_DESC_E_LENGTH },
	{ "orphan endpoint", { 9, 2, LE16(16), 0, 1, 0, 0x80, 50, EP(0x81, BULK, 64, 0) }, 16,
	  USB_DESC_E_ORPHAN },
	{ "orphan after IAD", { 9, 2, LE16(24), 0, 1, 0, 0x80, 50, IAD(0, 1, 0xff),
	  EP(0x81, BULK, 64, 0) }, 24, USB_DESC_E_ORPHAN },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(error_cases); i++) {
		const struct error_case *c = &error_cases[i];
		struct usb_config_info *cfg = new_cfg();
		/* Exactly n bytes on the heap, so ASan flags any over-read. */
		uint8_t *p = malloc(c->n ? c->n : 1);
		int rc;

		assert_non_null(p);
		memcpy(p, c->bytes, c->n);
		memset(cfg, 0x77, sizeof(*cfg));
		rc = usb_desc_parse_config(p, c->n, cfg);
		if (rc != c->want)
			fail_msg("%s: got %d (%s), want %d", c->what, rc,
				 usb_desc_strerror(rc), c->want);
		/* A failed parse leaves nothing half-filled to look up. */
		assert_int_equal(cfg->num_interfaces, 0);
		free(p);
		free(cfg);
	}
	{
		struct usb_config_info *cfg = new_cfg();

		assert_int_equal(usb_desc_parse_config(NULL, 0, cfg), USB_DESC_E_SHORT);
		free(cfg);
	}
}

/* A growable descriptor buffer for the bound tests. */
struct dbuf {
	uint8_t b[4096];
	size_t n;
};

static void put(struct dbuf *d, const uint8_t *bytes, size_t n)
{
	assert_true(d->n + n <= sizeof(d->b));
	memcpy(d->b + d->n, bytes, n);
	d->n += n;
}

static void put_config(struct dbuf *d)
{
	const uint8_t c[] = { CONFIG(0, 1) };

	d->n = 0;
	put(d, c, sizeof(c));
}

static void put_iface(struct dbuf *d, uint8_t num, uint8_t alt)
{
	const uint8_t i[] = { IFACE(num, alt, 0, 0xff, 0, 0) };

	put(d, i, sizeof(i));
}

static void put_ep(struct dbuf *d, uint8_t addr)
{
	const uint8_t e[] = { EP(addr, BULK, 64, 0) };

	put(d, e, sizeof(e));
}

static void test_interface_bound(void **state)
{
	static struct dbuf d;
	struct usb_config_info *cfg = new_cfg();

	(void)state;
	put_config(&d);
	for (unsigned i = 0; i < USB_DESC_MAX_INTERFACES; i++)
		put_iface(&d, (uint8_t)i, 0);
	assert_int_equal(parse_fixed(d.b, d.n, cfg), USB_DESC_OK);
	assert_int_equal(cfg->num_interfaces, USB_DESC_MAX_INTERFACES);
	assert_int_equal(usb_desc_find_interface(cfg, USB_DESC_MAX_INTERFACES - 1),
			 USB_DESC_MAX_INTERFACES - 1);
	put_iface(&d, 200, 0);
	assert_int_equal(parse_fixed(d.b, d.n, cfg), USB_DESC_E_TOO_MANY);
	free(cfg);
}

static void test_altsetting_bound(void **state)
{
	static struct dbuf d;
	struct usb_config_info *cfg = new_cfg();

	(void)state;
	put_config(&d);
	for (unsigned a = 0; a < USB_DESC_MAX_ALTSETTINGS; a++)
		put_iface(&d, 3, (uint8_t)a);
	assert_int_equal(parse_fixed(d.b, d.n, cfg), USB_DESC_OK);
	assert_int_equal(cfg->iface[0].num_altsettings, USB_DESC_MAX_ALTSETTINGS);
	put_iface(&d, 3, 99);
	assert_int_equal(parse_fixed(d.b, d.n, cfg), USB_DESC_E_TOO_MANY);
	free(cfg);
}

/* Every real endpoint address fits; repeats beyond them add nothing. */
static void test_endpoint_bound(void **state)
{
	static struct dbuf d;
	struct usb_config_info *cfg = new_cfg();
	const struct usb_altsetting_info *as;

	(void)state;
	put_config(&d);
	put_iface(&d, 0, 0);
	for (unsigned num = 1; num <= 15; num++) {
		put_ep(&d, (uint8_t)num);
		put_ep(&d, (uint8_t)(0x80 | num));
	}
	for (unsigned num = 1; num <= 15; num++)
		put_ep(&d, (uint8_t)num);
	assert_int_equal(parse_fixed(d.b, d.n, cfg), USB_DESC_OK);
	as = usb_desc_find_alt(&cfg->iface[0], 0);
	assert_non_null(as);
	assert_int_equal(as->num_endpoints, 30);
	for (unsigned a = 0; a < 256; a++) {
		bool real = (a & 0x0f) != 0 && (a & 0x70) == 0;

		assert_int_equal(usb_desc_find_endpoint(cfg, NULL, (uint8_t)a, NULL, NULL),
				 real ? 0 : -1);
	}
	free(cfg);
}

static void test_strerror(void **state)
{
	const int errs[] = { USB_DESC_OK, USB_DESC_E_SHORT, USB_DESC_E_TYPE, USB_DESC_E_LENGTH,
			     USB_DESC_E_TOO_MANY, USB_DESC_E_ORPHAN };

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(errs); i++)
		for (size_t k = i + 1; k < ARRAY_LEN(errs); k++)
			assert_string_not_equal(usb_desc_strerror(errs[i]),
						usb_desc_strerror(errs[k]));
	assert_non_null(usb_desc_strerror(-1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gadget_zero),
		cmocka_unit_test(test_mass_storage),
		cmocka_unit_test(test_audio_like),
		cmocka_unit_test(test_interleaved_altsettings),
		cmocka_unit_test(test_ignored_entries),
		cmocka_unit_test(test_bytes_beyond_total_ignored),
		cmocka_unit_test(test_bare_config),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_interface_bound),
		cmocka_unit_test(test_altsetting_bound),
		cmocka_unit_test(test_endpoint_bound),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
