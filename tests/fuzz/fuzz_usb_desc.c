/* Fuzz target: arbitrary bytes as a configuration descriptor.
 *
 * After a successful parse, the table must respect every bound and hold
 * only routable endpoints, and each of the 256 endpoint addresses must be
 * found exactly when a brute-force search over the current altsettings
 * finds it. The current altsettings come from the bytes after wTotalLength
 * (a byte below 0x80 picks an existing altsetting by index, others are
 * taken as a raw bAlternateSetting that may not exist). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/usb_desc.h"

static void check_table(const struct usb_config_info *cfg)
{
	if (cfg->num_interfaces > USB_DESC_MAX_INTERFACES)
		abort();
	for (unsigned i = 0; i < cfg->num_interfaces; i++) {
		const struct usb_interface_info *iface = &cfg->iface[i];

		if (usb_desc_find_interface(cfg, iface->number) != (int)i)
			abort(); /* interface numbers are unique */
		if (iface->num_altsettings == 0 || iface->num_altsettings > USB_DESC_MAX_ALTSETTINGS)
			abort();
		for (unsigned a = 0; a < iface->num_altsettings; a++) {
			const struct usb_altsetting_info *as = &iface->alt[a];

			if (usb_desc_find_alt(iface, as->alt) != as)
				abort(); /* altsettings are unique */
			if (as->num_endpoints > USB_DESC_MAX_ENDPOINTS)
				abort();
			for (unsigned e = 0; e < as->num_endpoints; e++) {
				uint8_t addr = as->ep[e].address;

				if ((addr & 0x0f) == 0 || (addr & 0x70) != 0 || as->ep[e].type > 3)
					abort();
				for (unsigned k = 0; k < e; k++)
					if (as->ep[k].address == addr)
						abort();
			}
		}
	}
}

static void check_lookups(const struct usb_config_info *cfg, const uint8_t *cur_alt)
{
	for (unsigned addr = 0; addr < 256; addr++) {
		struct usb_endpoint_info ep, want_ep;
		uint8_t ifnum = 0, want_if = 0;
		bool want = false;
		int rc;

		for (unsigned i = 0; i < cfg->num_interfaces && !want; i++) {
			const struct usb_interface_info *iface = &cfg->iface[i];

			for (unsigned a = 0; a < iface->num_altsettings && !want; a++) {
				const struct usb_altsetting_info *as = &iface->alt[a];

				if (as->alt != cur_alt[i])
					continue;
				for (unsigned e = 0; e < as->num_endpoints; e++) {
					if (as->ep[e].address == addr) {
						want = true;
						want_ep = as->ep[e];
						want_if = iface->number;
						break;
					}
				}
			}
		}
		rc = usb_desc_find_endpoint(cfg, cur_alt, (uint8_t)addr, &ep, &ifnum);
		if (rc != (want ? 0 : -1))
			abort();
		if (want && (ifnum != want_if || memcmp(&ep, &want_ep, sizeof(ep)) != 0))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct usb_config_info cfg; /* ~100 KiB: not on the stack */
	uint8_t cur_alt[USB_DESC_MAX_INTERFACES] = { 0 };
	size_t total;
	int rc;

	rc = usb_desc_parse_config(data, size, &cfg);
	if (rc != USB_DESC_OK) {
		if (rc > USB_DESC_E_SHORT || rc < USB_DESC_E_ORPHAN || cfg.num_interfaces != 0)
			abort();
		return 0;
	}
	check_table(&cfg);

	total = (size_t)data[2] | (size_t)data[3] << 8;
	for (unsigned i = 0; i < cfg.num_interfaces; i++) {
		uint8_t b = total + i < size ? data[total + i] : 0;
		const struct usb_interface_info *iface = &cfg.iface[i];

		cur_alt[i] = b < 0x80 ? iface->alt[b % iface->num_altsettings].alt : b;
	}
	check_lookups(&cfg, cur_alt);
	return 0;
}
