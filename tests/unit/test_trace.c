/* Unit tests for server/trace: the --trace line of each command and reply,
 * table-driven, and that a disabled trace emits nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proto/linux_errno.h"
#include "server/trace.h"

static struct usbip_header submit(uint32_t seq, uint32_t ep, uint32_t dir, uint32_t len,
				  uint32_t npackets)
{
	struct usbip_header h;
	memset(&h, 0, sizeof(h));
	h.command = USBIP_CMD_SUBMIT;
	h.seqnum = seq;
	h.ep = ep;
	h.direction = dir;
	h.u.cmd_submit.transfer_buffer_length = len;
	h.u.cmd_submit.number_of_packets = npackets;
	return h;
}

static void test_cmd_lines(void **state)
{
	(void)state;
	char line[TRACE_LINE_SIZE];
	struct usbip_header h = submit(17, 0, USBIP_DIR_IN, 64, USBIP_NO_ISO_PACKETS);
	static const uint8_t get_desc[8] = { 0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x40, 0x00 };
	memcpy(h.u.cmd_submit.setup, get_desc, 8);
	trace_format_cmd(line, sizeof(line), "1-1 10.0.0.2:40112", &h);
	assert_string_equal(line, "1-1 10.0.0.2:40112 > SUBMIT seq=17 ep=0 in len=64 "
				  "setup=80.06.0100.0000.0040");

	h = submit(18, 2, USBIP_DIR_OUT, 512, USBIP_NO_ISO_PACKETS);
	trace_format_cmd(line, sizeof(line), NULL, &h);
	assert_string_equal(line, "> SUBMIT seq=18 ep=2 out len=512");

	h = submit(19, 3, USBIP_DIR_IN, 3072, 8);
	trace_format_cmd(line, sizeof(line), "1-2", &h);
	assert_string_equal(line, "1-2 > SUBMIT seq=19 ep=3 in len=3072 iso=8");

	memset(&h, 0, sizeof(h));
	h.command = USBIP_CMD_UNLINK;
	h.seqnum = 20;
	h.u.cmd_unlink.seqnum = 18;
	trace_format_cmd(line, sizeof(line), "1-1", &h);
	assert_string_equal(line, "1-1 > UNLINK seq=20 victim=18");
}

static void test_ret_lines(void **state)
{
	(void)state;
	char line[TRACE_LINE_SIZE];
	struct usbip_header h;
	memset(&h, 0, sizeof(h));
	h.command = USBIP_RET_SUBMIT;
	h.seqnum = 17;
	h.u.ret_submit.actual_length = 18;
	trace_format_ret(line, sizeof(line), "1-1", &h, 0, true);
	assert_string_equal(line, "1-1 < SUBMIT seq=17 ep=0 in len=18 status=0");

	h.u.ret_submit.status = -LNX_EPIPE;
	h.u.ret_submit.actual_length = 0;
	trace_format_ret(line, sizeof(line), "1-1", &h, 1, false);
	assert_string_equal(line, "1-1 < SUBMIT seq=17 ep=1 out len=0 status=-EPIPE");

	h.u.ret_submit.status = 0;
	h.u.ret_submit.number_of_packets = 8;
	h.u.ret_submit.error_count = 1;
	h.u.ret_submit.actual_length = 2000;
	trace_format_ret(line, sizeof(line), NULL, &h, 3, true);
	assert_string_equal(line, "< SUBMIT seq=17 ep=3 in len=2000 status=0 iso=8 errors=1");

	memset(&h, 0, sizeof(h));
	h.command = USBIP_RET_UNLINK;
	h.seqnum = 20;
	h.u.ret_unlink.status = -LNX_ECONNRESET;
	trace_format_ret(line, sizeof(line), "1-1", &h, 0, false);
	assert_string_equal(line, "1-1 < UNLINK seq=20 status=-ECONNRESET");
}

static void test_truncation(void **state)
{
	(void)state;
	char line[16];
	struct usbip_header h = submit(1, 0, USBIP_DIR_IN, 64, USBIP_NO_ISO_PACKETS);
	int n = trace_format_cmd(line, sizeof(line), "1-1 a-long-peer-name", &h);
	assert_true(n > (int)sizeof(line));
	assert_int_equal(strlen(line), sizeof(line) - 1);
}

struct sink {
	int calls;
	char last[TRACE_LINE_SIZE];
};

static void capture(void *ctx, const char *line)
{
	struct sink *s = ctx;
	s->calls++;
	strncpy(s->last, line, sizeof(s->last) - 1);
}

static void test_emit(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct trace t = { .enabled = false, .emit = capture, .ctx = &s };
	struct usbip_header h = submit(5, 1, USBIP_DIR_IN, 8, USBIP_NO_ISO_PACKETS);
	trace_cmd(&t, "1-1", &h);
	trace_cmd(NULL, "1-1", &h);
	assert_int_equal(s.calls, 0);
	t.enabled = true;
	trace_cmd(&t, "1-1", &h);
	assert_int_equal(s.calls, 1);
	assert_string_equal(s.last, "1-1 > SUBMIT seq=5 ep=1 in len=8");
	h.command = USBIP_RET_SUBMIT;
	h.u.ret_submit.actual_length = 8;
	h.u.ret_submit.number_of_packets = 0;
	trace_ret(&t, "1-1", &h, 1, true);
	assert_int_equal(s.calls, 2);
	assert_string_equal(s.last, "1-1 < SUBMIT seq=5 ep=1 in len=8 status=0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_lines),
		cmocka_unit_test(test_ret_lines),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_emit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
