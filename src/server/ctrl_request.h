/* Which control requests the server executes itself.
 *
 * Requests that change device state must go through the backend's own calls
 * (libusb keeps its idea of configuration, alt settings and halts), exactly
 * as the kernel's own server does; everything else is forwarded as a plain
 * control transfer. Pure: decides from the 8 setup bytes alone. */
#ifndef USBIP_NOTIFY_SERVER_CTRL_REQUEST_H
#define USBIP_NOTIFY_SERVER_CTRL_REQUEST_H

#include <stdint.h>

enum ctrl_action {
	CTRL_FORWARD = 0,        /* send to the device as is */
	CTRL_SET_CONFIGURATION,  /* value = configuration */
	CTRL_SET_INTERFACE,      /* index = interface, value = alt setting */
	CTRL_CLEAR_HALT,         /* index = endpoint address */
	CTRL_RESET_DEVICE,       /* SET_FEATURE(PORT_RESET) to the port */
};

struct ctrl_decision {
	enum ctrl_action action;
	uint16_t value;
	uint16_t index;
};

/* setup: the 8 bytes of the USB setup packet, little-endian fields. */
struct ctrl_decision ctrl_classify(const uint8_t setup[8]);

const char *ctrl_action_name(enum ctrl_action action);

#endif
