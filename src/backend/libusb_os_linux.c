/* How libusb behaves on Linux (usbfs), as the rest of the backend needs to
 * know: a cancel ends only the URB it names (USBDEVFS_DISCARDURB), and a
 * handle can be closed without a reset. The darwin file says otherwise. */
#include "backend/libusb_internal.h"

uint32_t lu_os_handle_quirks(void)
{
	return 0;
}

void lu_os_before_close(struct lu_handle *h)
{
	(void)h;
}
