#include "server/ctrl_request.h"

#include "proto/bytes.h"

/* USB 2.0 chapter 9 values, and the hub class's PORT_RESET feature. */
enum {
	REQ_CLEAR_FEATURE = 1,
	REQ_SET_FEATURE = 3,
	REQ_SET_CONFIGURATION = 9,
	REQ_SET_INTERFACE = 11,
	RT_STD_DEVICE_OUT = 0x00,
	RT_STD_INTERFACE_OUT = 0x01,
	RT_STD_ENDPOINT_OUT = 0x02,
	RT_CLASS_OTHER_OUT = 0x23, /* hub class request to a port */
	FEATURE_ENDPOINT_HALT = 0,
	FEATURE_PORT_RESET = 4,
};

struct ctrl_decision ctrl_classify(const uint8_t setup[8])
{
	uint8_t type = setup[0], request = setup[1];
	uint16_t value = get_le16(setup + 2), index = get_le16(setup + 4);
	struct ctrl_decision d = { CTRL_FORWARD, value, index };

	if (type == RT_STD_DEVICE_OUT && request == REQ_SET_CONFIGURATION)
		d.action = CTRL_SET_CONFIGURATION;
	else if (type == RT_STD_INTERFACE_OUT && request == REQ_SET_INTERFACE)
		d.action = CTRL_SET_INTERFACE;
	else if (type == RT_STD_ENDPOINT_OUT && request == REQ_CLEAR_FEATURE &&
		 value == FEATURE_ENDPOINT_HALT && (index & 0x7f) != 0)
		d.action = CTRL_CLEAR_HALT;
	/* A halt on endpoint 0 is cleared by the next setup packet; the host
	 * OS has no endpoint to clear (usbfs answers ENOENT), so the request
	 * goes to the device, which may accept or stall it. */
	else if (type == RT_CLASS_OTHER_OUT && request == REQ_SET_FEATURE &&
		 value == FEATURE_PORT_RESET)
		d.action = CTRL_RESET_DEVICE;
	return d;
}

const char *ctrl_action_name(enum ctrl_action action)
{
	switch (action) {
	case CTRL_FORWARD: return "forward";
	case CTRL_SET_CONFIGURATION: return "SET_CONFIGURATION";
	case CTRL_SET_INTERFACE: return "SET_INTERFACE";
	case CTRL_CLEAR_HALT: return "CLEAR_FEATURE(ENDPOINT_HALT)";
	case CTRL_RESET_DEVICE: return "SET_FEATURE(PORT_RESET)";
	}
	return "?";
}
