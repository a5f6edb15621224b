#include "backend/sim_descriptors.h"

#include <stdio.h>
#include <string.h>

#include "proto/bytes.h"

#define DT_DEVICE 1
#define DT_CONFIG 2
#define DT_INTERFACE 4
#define DT_ENDPOINT 5

#define LO(v) ((uint8_t)((v) & 0xff))
#define HI(v) ((uint8_t)((v) >> 8))

const uint8_t sim_device_desc[SIM_DEVICE_DESC_SIZE] = {
	18, DT_DEVICE,
	LO(0x0200), HI(0x0200),   /* bcdUSB 2.0 */
	0xff, 0x00, 0x00,         /* vendor-specific class, as gadget zero */
	64,                       /* bMaxPacketSize0 */
	LO(0x0525), HI(0x0525),   /* idVendor: NetChip */
	LO(0xa4a0), HI(0xa4a0),   /* idProduct: Gadget Zero */
	LO(0x0100), HI(0x0100),   /* bcdDevice */
	SIM_STR_MANUFACTURER, SIM_STR_PRODUCT, SIM_STR_SERIAL,
	1,                        /* bNumConfigurations */
};

/* Interface descriptor: number, alt, endpoint count, vendor class. */
#define IFACE(num, alt, neps) 9, DT_INTERFACE, (num), (alt), (neps), 0xff, 0x00, 0x00, 0
/* Endpoint descriptor: address, bmAttributes, wMaxPacketSize, bInterval. */
#define EP(addr, attr, maxp, ival) 7, DT_ENDPOINT, (addr), (attr), LO(maxp), HI(maxp), (ival)

#define ATTR_ISO 0x01
#define ATTR_BULK 0x02
#define ATTR_INT 0x03

const uint8_t sim_config_desc[SIM_CONFIG_DESC_SIZE] = {
	9, DT_CONFIG,
	LO(SIM_CONFIG_DESC_SIZE), HI(SIM_CONFIG_DESC_SIZE), /* wTotalLength */
	SIM_NUM_INTERFACES,
	SIM_CONFIG_VALUE,
	0,                        /* iConfiguration */
	0x80,                     /* bus powered */
	50,                       /* 100 mA */

	/* if 0: source/sink */
	IFACE(0, 0, 4),
	EP(0x81, ATTR_BULK, 512, 0),
	EP(0x01, ATTR_BULK, 512, 0),
	EP(0x83, ATTR_INT, 64, 4),
	EP(0x03, ATTR_INT, 64, 4),

	/* if 1: isochronous source/sink, endpoints only in alt 1 */
	IFACE(1, 0, 0),
	IFACE(1, 1, 2),
	EP(0x84, ATTR_ISO, 1024, 4),
	EP(0x04, ATTR_ISO, 1024, 4),

	/* if 2: loopback */
	IFACE(2, 0, 2),
	EP(0x02, ATTR_BULK, 512, 0),
	EP(0x82, ATTR_BULK, 512, 0),

	/* if 3: the interface sim_lock_interface() can make busy */
	IFACE(3, 0, 1),
	EP(0x85, ATTR_BULK, 512, 0),
};

void sim_serial_for_port(unsigned port, char out[SIM_SERIAL_SIZE])
{
	snprintf(out, SIM_SERIAL_SIZE, "SIM%04u", port % 10000u);
}

int sim_string_desc(uint8_t index, const char *serial, uint8_t *out, size_t n)
{
	const char *s;

	switch (index) {
	case SIM_STR_LANGIDS:
		if (n < 4)
			return -1;
		out[0] = 4;
		out[1] = 3;
		out[2] = LO(0x0409); /* English (US) */
		out[3] = HI(0x0409);
		return 4;
	case SIM_STR_MANUFACTURER:
		s = SIM_MANUFACTURER;
		break;
	case SIM_STR_PRODUCT:
		s = SIM_PRODUCT;
		break;
	case SIM_STR_SERIAL:
		s = serial;
		break;
	default:
		return -1;
	}

	size_t len = 2 + 2 * strlen(s);
	if (len > 255 || len > n)
		return -1;
	out[0] = (uint8_t)len;
	out[1] = 3;
	for (size_t i = 0; s[i] != '\0'; i++) {
		out[2 + 2 * i] = (uint8_t)s[i];
		out[3 + 2 * i] = 0;
	}
	return (int)len;
}

/* Calls visit for every descriptor after the configuration header, telling
 * it the interface and altsetting it belongs to; stops at a nonzero return. */
typedef int (*desc_visit_fn)(void *ctx, const uint8_t *d, uint8_t ifnum, uint8_t alt);

static int walk_config(desc_visit_fn visit, void *ctx)
{
	size_t total = get_le16(sim_config_desc + 2);
	uint8_t ifnum = 0xff, alt = 0xff;

	for (size_t off = sim_config_desc[0]; off + 2 <= total;) {
		const uint8_t *d = sim_config_desc + off;
		if (d[0] < 2 || off + d[0] > total)
			return -1;
		if (d[1] == DT_INTERFACE && d[0] >= 9) {
			ifnum = d[2];
			alt = d[3];
		}
		int r = visit(ctx, d, ifnum, alt);
		if (r != 0)
			return r;
		off += d[0];
	}
	return 0;
}

struct find_ep_ctx {
	const uint8_t *cur_alt;
	uint8_t address;
	uint8_t type;
	uint8_t ifnum;
};

static int visit_find_ep(void *ctx, const uint8_t *d, uint8_t ifnum, uint8_t alt)
{
	struct find_ep_ctx *c = ctx;

	if (d[1] != DT_ENDPOINT || d[0] < 7 || ifnum >= SIM_NUM_INTERFACES)
		return 0;
	if (alt != c->cur_alt[ifnum] || d[2] != c->address)
		return 0;
	c->type = d[3] & 3;
	c->ifnum = ifnum;
	return 1;
}

int sim_desc_find_endpoint(const uint8_t cur_alt[SIM_NUM_INTERFACES], uint8_t address,
			   uint8_t *type, uint8_t *ifnum)
{
	struct find_ep_ctx c = { .cur_alt = cur_alt, .address = address };

	if ((address & 0x0f) == 0 || walk_config(visit_find_ep, &c) != 1)
		return -1;
	*type = c.type;
	*ifnum = c.ifnum;
	return 0;
}

struct find_alt_ctx {
	uint8_t ifnum;
	uint8_t alt;
	struct usbip_interface_record rec;
};

static int visit_find_alt(void *ctx, const uint8_t *d, uint8_t ifnum, uint8_t alt)
{
	struct find_alt_ctx *c = ctx;

	if (d[1] != DT_INTERFACE || ifnum != c->ifnum || alt != c->alt)
		return 0;
	c->rec.bInterfaceClass = d[5];
	c->rec.bInterfaceSubClass = d[6];
	c->rec.bInterfaceProtocol = d[7];
	return 1;
}

bool sim_desc_has_alt(uint8_t ifnum, uint8_t alt)
{
	struct find_alt_ctx c = { .ifnum = ifnum, .alt = alt };

	return walk_config(visit_find_alt, &c) == 1;
}

int sim_desc_iface_class(uint8_t ifnum, struct usbip_interface_record *out)
{
	struct find_alt_ctx c = { .ifnum = ifnum, .alt = 0 };

	if (walk_config(visit_find_alt, &c) != 1)
		return -1;
	*out = c.rec;
	return 0;
}
