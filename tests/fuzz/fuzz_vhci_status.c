/* Fuzz target: the client's parser of vhci_hcd's status files.
 *
 * The text comes from the kernel, but the client decides which port to
 * write into sysfs from it, so it is parsed as if hostile. Whatever it
 * accepts must be within bounds: rows never past max, ports non-negative,
 * busids NUL-terminated, and a port picked from the result must be a free
 * row of the right hub. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/vhci.h"

#define MAX_ROWS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	struct vhci_port ports[MAX_ROWS];
	size_t count = 0;
	int rc = vhci_parse_status(text, ports, MAX_ROWS, &count);
	free(text);
	if (count > MAX_ROWS)
		__builtin_trap();
	if (rc < 0)
		return 0;
	for (size_t i = 0; i < count; i++) {
		if (ports[i].port < 0 || memchr(ports[i].local_busid, '\0', USBIP_BUSID_SIZE) == NULL)
			__builtin_trap();
	}
	static const uint32_t speeds[] = { USBIP_SPEED_HIGH, USBIP_SPEED_SUPER };
	for (size_t s = 0; s < 2; s++) {
		int port = vhci_pick_port(ports, count, speeds[s], NULL, 0);
		if (port < 0)
			continue;
		/* Port numbers are unique in the kernel's output but not in
		 * ours: a free row of the right hub must carry the number. */
		enum vhci_hub hub = speeds[s] == USBIP_SPEED_SUPER ? VHCI_HUB_SS : VHCI_HUB_HS;
		bool found = false;
		for (size_t i = 0; i < count; i++)
			found |= ports[i].port == port && ports[i].state == VHCI_ST_NULL &&
				 ports[i].hub == hub;
		if (!found)
			__builtin_trap();
	}
	return 0;
}
