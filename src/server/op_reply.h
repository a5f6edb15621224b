/* Building the replies to operation requests (before import). */
#ifndef USBIP_NOTIFY_SERVER_OP_REPLY_H
#define USBIP_NOTIFY_SERVER_OP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "proto/usbip_codec.h"
#include "server/export_table.h"

/* The wire record of a device as DEVLIST and IMPORT report it. */
void op_device_record(const struct bk_device_info *info, struct usbip_device_record *rec);

/* A whole OP_REP_DEVLIST for the given devices in one malloc'ed buffer.
 * Returns its length, or a negative Linux errno. */
int op_devlist_reply(const struct export_view *devs, size_t count, uint8_t **out);

#endif
