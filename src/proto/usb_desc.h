/* USB configuration descriptor parsing: which endpoint has which type and
 * belongs to which interface.
 *
 * The server never guesses an endpoint's type: it parses the active
 * configuration's raw descriptor (as the device sent it, little-endian) into
 * this table and looks endpoints up by address and the interfaces' current
 * alternate settings. Pure: no I/O, no allocation. */
#ifndef USBIP_NOTIFY_PROTO_USB_DESC_H
#define USBIP_NOTIFY_PROTO_USB_DESC_H

#include <stddef.h>
#include <stdint.h>

#define USB_DESC_MAX_INTERFACES 32
#define USB_DESC_MAX_ALTSETTINGS 16   /* per interface */
#define USB_DESC_MAX_ENDPOINTS 32     /* per alternate setting (30 real + slack) */

/* bmAttributes & 3 */
enum usb_ep_type {
	USB_EP_CONTROL = 0,
	USB_EP_ISO = 1,
	USB_EP_BULK = 2,
	USB_EP_INTERRUPT = 3,
};

struct usb_endpoint_info {
	uint8_t address;        /* bEndpointAddress, 0x80 bit = IN */
	uint8_t type;           /* enum usb_ep_type */
	uint16_t max_packet;    /* wMaxPacketSize as sent */
	uint8_t interval;       /* bInterval */
};

struct usb_altsetting_info {
	uint8_t alt;            /* bAlternateSetting */
	uint8_t iface_class;
	uint8_t iface_subclass;
	uint8_t iface_protocol;
	uint8_t num_endpoints;
	struct usb_endpoint_info ep[USB_DESC_MAX_ENDPOINTS];
};

struct usb_interface_info {
	uint8_t number;         /* bInterfaceNumber */
	uint8_t num_altsettings;
	struct usb_altsetting_info alt[USB_DESC_MAX_ALTSETTINGS];
};

struct usb_config_info {
	uint8_t config_value;   /* bConfigurationValue */
	uint8_t num_interfaces; /* distinct interface numbers found */
	struct usb_interface_info iface[USB_DESC_MAX_INTERFACES];
};

enum usb_desc_err {
	USB_DESC_OK = 0,
	USB_DESC_E_SHORT = -1,     /* buffer ends inside a descriptor */
	USB_DESC_E_TYPE = -2,      /* first descriptor is not a configuration */
	USB_DESC_E_LENGTH = -3,    /* bLength too small, or wTotalLength beyond the buffer */
	USB_DESC_E_TOO_MANY = -4,  /* more interfaces/altsettings/endpoints than the bounds */
	USB_DESC_E_ORPHAN = -5,    /* endpoint descriptor before any interface */
};

const char *usb_desc_strerror(int err);

/* Parses a configuration descriptor and everything wTotalLength covers.
 * Unknown descriptor types (class-specific, SS companions, ...) are skipped.
 * Endpoint descriptors for endpoint 0, with reserved address bits or
 * repeating an address within an altsetting, and a repeated altsetting
 * (with its endpoints), are ignored: the first description wins. On error
 * *out is zeroed. */
int usb_desc_parse_config(const uint8_t *p, size_t n, struct usb_config_info *out);

/* Index into out->iface[] of the interface with that number, or -1. */
int usb_desc_find_interface(const struct usb_config_info *cfg, uint8_t number);

/* The altsetting with that bAlternateSetting in an interface, or NULL. */
const struct usb_altsetting_info *usb_desc_find_alt(const struct usb_interface_info *iface,
						    uint8_t alt);

/* Looks up a non-zero endpoint address given each interface's current
 * alternate setting (cur_alt[i] is the bAlternateSetting of cfg->iface[i];
 * cur_alt NULL means every interface is at altsetting 0).
 * On success fills *ep and *iface_number and returns 0; -1 when no interface's
 * current altsetting has that endpoint. */
int usb_desc_find_endpoint(const struct usb_config_info *cfg, const uint8_t *cur_alt,
			   uint8_t address, struct usb_endpoint_info *ep,
			   uint8_t *iface_number);

#endif
