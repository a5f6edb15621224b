/* --trace lines: see trace.h. */
#include "server/trace.h"

#include <stdio.h>

#include "common/log.h"
#include "proto/linux_errno.h"

static const char *dir_word(bool in)
{
	return in ? "in" : "out";
}

/* "0" or "-EPIPE". */
static void status_text(int32_t status, char *buf, size_t n)
{
	if (status == 0)
		snprintf(buf, n, "0");
	else
		snprintf(buf, n, "-%s", linux_errno_name(status));
}

int trace_format_cmd(char *buf, size_t n, const char *who, const struct usbip_header *h)
{
	const char *sep = who ? " " : "";
	who = who ? who : "";
	if (h->command == USBIP_CMD_UNLINK)
		return snprintf(buf, n, "%s%s> UNLINK seq=%u victim=%u", who, sep, h->seqnum,
				h->u.cmd_unlink.seqnum);
	if (h->command != USBIP_CMD_SUBMIT)
		return snprintf(buf, n, "%s%s> command %u seq=%u", who, sep, h->command, h->seqnum);
	const struct usbip_cmd_submit *c = &h->u.cmd_submit;
	int len = snprintf(buf, n, "%s%s> SUBMIT seq=%u ep=%u %s len=%u", who, sep, h->seqnum,
			   h->ep, dir_word(h->direction == USBIP_DIR_IN), c->transfer_buffer_length);
	size_t used = len < 0 ? 0 : ((size_t)len < n ? (size_t)len : n);
	if (h->ep == 0 && used < n) {
		const uint8_t *s = c->setup;
		len += snprintf(buf + used, n - used, " setup=%02x.%02x.%04x.%04x.%04x", s[0], s[1],
				s[2] | s[3] << 8, s[4] | s[5] << 8, s[6] | s[7] << 8);
	}
	used = len < 0 ? 0 : ((size_t)len < n ? (size_t)len : n);
	uint32_t iso = usbip_iso_count(c->number_of_packets);
	if (iso && used < n)
		len += snprintf(buf + used, n - used, " iso=%u", iso);
	return len;
}

int trace_format_ret(char *buf, size_t n, const char *who, const struct usbip_header *h,
		     uint32_t ep, bool dir_in)
{
	const char *sep = who ? " " : "";
	char st[24];
	who = who ? who : "";
	if (h->command == USBIP_RET_UNLINK) {
		status_text(h->u.ret_unlink.status, st, sizeof(st));
		return snprintf(buf, n, "%s%s< UNLINK seq=%u status=%s", who, sep, h->seqnum, st);
	}
	if (h->command != USBIP_RET_SUBMIT)
		return snprintf(buf, n, "%s%s< reply %u seq=%u", who, sep, h->command, h->seqnum);
	const struct usbip_ret_submit *r = &h->u.ret_submit;
	status_text(r->status, st, sizeof(st));
	int len = snprintf(buf, n, "%s%s< SUBMIT seq=%u ep=%u %s len=%u status=%s", who, sep,
			   h->seqnum, ep, dir_word(dir_in), r->actual_length, st);
	size_t used = len < 0 ? 0 : ((size_t)len < n ? (size_t)len : n);
	uint32_t iso = usbip_iso_count(r->number_of_packets);
	if (iso && used < n)
		len += snprintf(buf + used, n - used, " iso=%u errors=%d", iso, r->error_count);
	return len;
}

static void emit(const struct trace *t, const char *line)
{
	if (t->emit)
		t->emit(t->ctx, line);
	else
		log_info("%s", line);
}

void trace_cmd(const struct trace *t, const char *who, const struct usbip_header *h)
{
	if (!t || !t->enabled)
		return;
	char line[TRACE_LINE_SIZE];
	trace_format_cmd(line, sizeof(line), who, h);
	emit(t, line);
}

void trace_ret(const struct trace *t, const char *who, const struct usbip_header *h, uint32_t ep,
	       bool dir_in)
{
	if (!t || !t->enabled)
		return;
	char line[TRACE_LINE_SIZE];
	trace_format_ret(line, sizeof(line), who, h, ep, dir_in);
	emit(t, line);
}
