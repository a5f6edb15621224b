/* The simulated gadget-zero device's descriptors, as the device would send
 * them (little-endian), and small lookups over those same bytes.
 *
 * The engine (sim.c) answers GET_DESCRIPTOR from these arrays and decides
 * which endpoints exist by walking the configuration descriptor, so what the
 * device says and what it does cannot drift apart. Pure data and functions:
 * no state, no allocation, safe from any thread. */
#ifndef USBIP_NOTIFY_BACKEND_SIM_DESCRIPTORS_H
#define USBIP_NOTIFY_BACKEND_SIM_DESCRIPTORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/usbip_codec.h"

#define SIM_DEVICE_DESC_SIZE 18
#define SIM_CONFIG_DESC_SIZE 117
#define SIM_NUM_INTERFACES 4
#define SIM_CONFIG_VALUE 1
#define SIM_VENDOR_BUF_SIZE 256   /* gadget zero's 0x5b/0x5c buffer */
#define SIM_SERIAL_SIZE 16        /* "SIM0001" and its NUL fit */

/* String descriptor indexes the device descriptor refers to. */
enum sim_string_index {
	SIM_STR_LANGIDS = 0,
	SIM_STR_MANUFACTURER = 1,
	SIM_STR_PRODUCT = 2,
	SIM_STR_SERIAL = 3,
};

#define SIM_MANUFACTURER "usbip-notify"
#define SIM_PRODUCT "Simulated Gadget Zero"

extern const uint8_t sim_device_desc[SIM_DEVICE_DESC_SIZE];
extern const uint8_t sim_config_desc[SIM_CONFIG_DESC_SIZE];

/* Writes the serial of the port-th device ("SIM0001" for port 1). */
void sim_serial_for_port(unsigned port, char out[SIM_SERIAL_SIZE]);

/* Builds string descriptor index (UTF-16LE from the ASCII strings above;
 * serial supplies index 3) into out. Returns its length, or -1 for an index
 * the device does not have or when out is too small. */
int sim_string_desc(uint8_t index, const char *serial, uint8_t *out, size_t n);

/* Looks address (not 0) up among the endpoints of each interface's current
 * alternate setting (cur_alt[i] for interface i). On success stores the
 * transfer type (bmAttributes & 3) and interface number and returns 0;
 * returns -1 when no current altsetting has that endpoint. */
int sim_desc_find_endpoint(const uint8_t cur_alt[SIM_NUM_INTERFACES], uint8_t address,
			   uint8_t *type, uint8_t *ifnum);

/* Whether the configuration has interface ifnum with altsetting alt. */
bool sim_desc_has_alt(uint8_t ifnum, uint8_t alt);

/* Class triple of interface ifnum's altsetting 0; -1 if there is none. */
int sim_desc_iface_class(uint8_t ifnum, struct usbip_interface_record *out);

#endif
