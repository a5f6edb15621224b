/* USB configuration descriptor walking (USB 2.0 ch. 9, little-endian). */
#include "proto/usb_desc.h"

#include <stdbool.h>
#include <string.h>

#include "proto/bytes.h"

#define DT_CONFIG 2
#define DT_INTERFACE 4
#define DT_ENDPOINT 5

#define CONFIG_DESC_SIZE 9
#define INTERFACE_DESC_SIZE 9
#define ENDPOINT_DESC_SIZE 7 /* audio class endpoints are 9: extra bytes ignored */
#define DESC_HEADER_SIZE 2   /* bLength, bDescriptorType */

#define EP_DIR_IN 0x80
#define EP_NUMBER_MASK 0x0f
#define EP_RESERVED_MASK 0x70

const char *usb_desc_strerror(int err)
{
	switch (err) {
	case USB_DESC_OK:
		return "ok";
	case USB_DESC_E_SHORT:
		return "buffer ends inside a descriptor";
	case USB_DESC_E_TYPE:
		return "not a configuration descriptor";
	case USB_DESC_E_LENGTH:
		return "bad descriptor length";
	case USB_DESC_E_TOO_MANY:
		return "too many interfaces, altsettings or endpoints";
	case USB_DESC_E_ORPHAN:
		return "endpoint descriptor before any interface";
	default:
		return "unknown error";
	}
}

int usb_desc_find_interface(const struct usb_config_info *cfg, uint8_t number)
{
	for (unsigned i = 0; i < cfg->num_interfaces && i < USB_DESC_MAX_INTERFACES; i++)
		if (cfg->iface[i].number == number)
			return (int)i;
	return -1;
}

const struct usb_altsetting_info *usb_desc_find_alt(const struct usb_interface_info *iface,
						    uint8_t alt)
{
	for (unsigned i = 0; i < iface->num_altsettings && i < USB_DESC_MAX_ALTSETTINGS; i++)
		if (iface->alt[i].alt == alt)
			return &iface->alt[i];
	return NULL;
}

/* Parse state between descriptors: where endpoints go. */
struct walk {
	bool seen_interface;
	/* NULL after a duplicate altsetting: its endpoints are dropped, as
	 * the first description of that altsetting is the one used. */
	struct usb_altsetting_info *cur;
};

static int add_interface(struct usb_config_info *out, const uint8_t *d, struct walk *w)
{
	uint8_t number = d[2], alt = d[3];
	struct usb_interface_info *iface;
	struct usb_altsetting_info *as;
	int idx;

	w->seen_interface = true;
	w->cur = NULL;
	idx = usb_desc_find_interface(out, number);
	if (idx < 0) {
		if (out->num_interfaces >= USB_DESC_MAX_INTERFACES)
			return USB_DESC_E_TOO_MANY;
		idx = out->num_interfaces++;
		out->iface[idx].number = number;
	}
	iface = &out->iface[idx];
	if (usb_desc_find_alt(iface, alt))
		return USB_DESC_OK;
	if (iface->num_altsettings >= USB_DESC_MAX_ALTSETTINGS)
		return USB_DESC_E_TOO_MANY;
	as = &iface->alt[iface->num_altsettings++];
	as->alt = alt;
	as->iface_class = d[5];
	as->iface_subclass = d[6];
	as->iface_protocol = d[7];
	as->num_endpoints = 0;
	w->cur = as;
	return USB_DESC_OK;
}

static int add_endpoint(const uint8_t *d, struct walk *w)
{
	struct usb_altsetting_info *as = w->cur;
	uint8_t address = d[2];
	struct usb_endpoint_info *ep;

	if (!w->seen_interface)
		return USB_DESC_E_ORPHAN;
	if (!as)
		return USB_DESC_OK;
	/* Endpoint 0 is never described, and reserved address bits mean a
	 * broken descriptor; a repeated address would make lookups depend
	 * on order. Such endpoints are ignored rather than trusted. */
	if ((address & EP_NUMBER_MASK) == 0 || (address & EP_RESERVED_MASK) != 0)
		return USB_DESC_OK;
	for (unsigned i = 0; i < as->num_endpoints; i++)
		if (as->ep[i].address == address)
			return USB_DESC_OK;
	if (as->num_endpoints >= USB_DESC_MAX_ENDPOINTS)
		return USB_DESC_E_TOO_MANY;
	ep = &as->ep[as->num_endpoints++];
	ep->address = address;
	ep->type = d[3] & 3;
	ep->max_packet = get_le16(d + 4);
	ep->interval = d[6];
	return USB_DESC_OK;
}

static int walk_descriptors(const uint8_t *p, size_t total, struct usb_config_info *out)
{
	struct walk w = { false, NULL };
	size_t off = p[0];
	int rc;

	while (off < total) {
		size_t left = total - off;
		uint8_t blen, type;

		if (left < DESC_HEADER_SIZE)
			return USB_DESC_E_SHORT;
		blen = p[off];
		type = p[off + 1];
		/* A bLength below the header would never advance the walk. */
		if (blen < DESC_HEADER_SIZE)
			return USB_DESC_E_LENGTH;
		if (blen > left)
			return USB_DESC_E_SHORT;
		switch (type) {
		case DT_INTERFACE:
			if (blen < INTERFACE_DESC_SIZE)
				return USB_DESC_E_LENGTH;
			rc = add_interface(out, p + off, &w);
			break;
		case DT_ENDPOINT:
			if (blen < ENDPOINT_DESC_SIZE)
				return USB_DESC_E_LENGTH;
			rc = add_endpoint(p + off, &w);
			break;
		default:
			/* Interface associations, class-specific, SuperSpeed
			 * companions, OTG, vendor: nothing we route by. */
			rc = USB_DESC_OK;
			break;
		}
		if (rc != USB_DESC_OK)
			return rc;
		off += blen;
	}
	return USB_DESC_OK;
}

int usb_desc_parse_config(const uint8_t *p, size_t n, struct usb_config_info *out)
{
	size_t total;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!p || n < DESC_HEADER_SIZE)
		return USB_DESC_E_SHORT;
	if (p[1] != DT_CONFIG)
		return USB_DESC_E_TYPE;
	if (p[0] < CONFIG_DESC_SIZE)
		return USB_DESC_E_LENGTH;
	if (n < p[0])
		return USB_DESC_E_SHORT;
	total = get_le16(p + 2);
	if (total < p[0] || total > n)
		return USB_DESC_E_LENGTH;

	out->config_value = p[5];
	rc = walk_descriptors(p, total, out);
	if (rc != USB_DESC_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

int usb_desc_find_endpoint(const struct usb_config_info *cfg, const uint8_t *cur_alt,
			   uint8_t address, struct usb_endpoint_info *ep,
			   uint8_t *iface_number)
{
	if ((address & EP_NUMBER_MASK) == 0)
		return -1;
	for (unsigned i = 0; i < cfg->num_interfaces && i < USB_DESC_MAX_INTERFACES; i++) {
		const struct usb_interface_info *iface = &cfg->iface[i];
		const struct usb_altsetting_info *as;

		as = usb_desc_find_alt(iface, cur_alt ? cur_alt[i] : 0);
		if (!as)
			continue;
		for (unsigned k = 0; k < as->num_endpoints && k < USB_DESC_MAX_ENDPOINTS; k++) {
			if (as->ep[k].address != address)
				continue;
			if (ep)
				*ep = as->ep[k];
			if (iface_number)
				*iface_number = iface->number;
			return 0;
		}
	}
	return -1;
}
