/* Unit tests for common/conf (the file format) and common/opts (one option
 * table for flags and file: lookup, booleans, precedence, messages). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/opts.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- The format ------------------------------------------------------------- */

static void test_valid(void **state)
{
	(void)state;
	static const char text[] =
		"# a comment\n"
		"\n"
		"port = 3240\n"
		"  listen=127.0.0.1  \n"
		"\t# indented comment\n"
		"allow = 1234:5678\r\n"
		"allow = 1-1\n"
		"notify-token = a#b = c\n"
		"no-notify = yes"; /* no final newline */
	struct conf c;
	char err[CONF_ERR_SIZE] = "";
	assert_int_equal(conf_parse("t.conf", text, strlen(text), &c, err, sizeof(err)), 0);
	assert_int_equal(c.n, 6);
	static const struct { const char *k, *v; unsigned line; } want[] = {
		{ "port", "3240", 3 },
		{ "listen", "127.0.0.1", 4 },
		{ "allow", "1234:5678", 6 },
		{ "allow", "1-1", 7 },
		{ "notify-token", "a#b = c", 8 },
		{ "no-notify", "yes", 9 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		assert_string_equal(c.entries[i].key, want[i].k);
		assert_string_equal(c.entries[i].value, want[i].v);
		assert_int_equal(c.entries[i].line, want[i].line);
	}
	assert_string_equal(c.path, "t.conf");
	conf_free(&c);
}

static void test_empty(void **state)
{
	(void)state;
	struct conf c;
	char err[CONF_ERR_SIZE];
	assert_int_equal(conf_parse("e", "", 0, &c, err, sizeof(err)), 0);
	assert_int_equal(c.n, 0);
	conf_free(&c);
	assert_int_equal(conf_parse("e", "\n\n# x\n", 6, &c, err, sizeof(err)), 0);
	assert_int_equal(c.n, 0);
	conf_free(&c);
}

struct bad_case {
	const char *text;
	size_t len; /* 0: strlen */
	int rc;
	const char *msg; /* substring of the message */
};

static void test_invalid(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{ "port 3240\n", 0, -EINVAL, "f.conf:1: expected KEY = VALUE" },
		{ "# ok\nport =\n", 0, -EINVAL, "f.conf:2: port: no value" },
		{ "= 3\n", 0, -EINVAL, "f.conf:1: no key" },
		{ "Port = 3\n", 0, -EINVAL, "f.conf:1: bad key \"Port\"" },
		{ "po rt = 3\n", 0, -EINVAL, "bad key \"po rt\"" },
		{ "[server]\n", 0, -EINVAL, "f.conf:1: expected KEY" },
		{ "a = 1\nb = x\0y\n", 12, -EINVAL, "f.conf:2: NUL byte" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct conf c;
		char err[CONF_ERR_SIZE] = "";
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		int rc = conf_parse("f.conf", cases[i].text, len, &c, err, sizeof(err));
		if (rc != cases[i].rc || !strstr(err, cases[i].msg))
			fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err);
		assert_null(c.entries);
	}
}

static void test_long_line(void **state)
{
	(void)state;
	char text[CONF_MAX_LINE + 16];
	memset(text, 'x', sizeof(text));
	memcpy(text, "k = ", 4);
	struct conf c;
	char err[CONF_ERR_SIZE] = "";
	/* Exactly CONF_MAX_LINE bytes is fine, one more is not. */
	assert_int_equal(conf_parse("l", text, CONF_MAX_LINE, &c, err, sizeof(err)), 0);
	assert_int_equal(strlen(c.entries[0].value), CONF_MAX_LINE - 4);
	conf_free(&c);
	assert_int_equal(conf_parse("l", text, CONF_MAX_LINE + 1, &c, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "l:1: line longer"));
}

static void test_load_missing(void **state)
{
	(void)state;
	struct conf c;
	char err[CONF_ERR_SIZE] = "";
	assert_int_equal(conf_load("/nonexistent/x.conf", &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/x.conf"));
}

/* ---- One table for flags and file ------------------------------------------ */

enum { T_PORT = 'p', T_CONFIG = 'c', T_HELP = 'h', T_ALLOW = 256, T_QUIET };

static const struct option t_longopts[] = {
	{ "port", required_argument, NULL, T_PORT },
	{ "allow", required_argument, NULL, T_ALLOW },
	{ "quiet", no_argument, NULL, T_QUIET },
	{ "config", required_argument, NULL, T_CONFIG },
	{ "help", no_argument, NULL, T_HELP },
	{ NULL, 0, NULL, 0 },
};
static const int t_cli_only[] = { T_HELP, 0 };

struct t_ctx {
	char port[16];
	char port_from[64];
	char allows[8][32];
	int nallow;
	int quiet;
};

static int t_apply(void *vctx, const struct option *o, const char *arg,
		   const struct opt_src *src)
{
	struct t_ctx *t = vctx;
	switch (o->val) {
	case T_PORT:
		if (strspn(arg, "0123456789") != strlen(arg)) {
			opt_bad_value(src, o, arg, "want a number");
			return 2;
		}
		snprintf(t->port, sizeof(t->port), "%s", arg);
		snprintf(t->port_from, sizeof(t->port_from), "%s:%u",
			 src->file ? "file" : "cli", src->line);
		return 0;
	case T_ALLOW:
		snprintf(t->allows[t->nallow++], sizeof(t->allows[0]), "%s", arg);
		return 0;
	case T_QUIET:
		assert_null(arg);
		t->quiet++;
		return 0;
	case T_HELP:
		return 1;
	}
	return 2;
}

static char tmpdir[64];

static const char *write_file(const char *name, const char *text)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int run(struct t_ctx *t, const char *default_config, int argc, const char **args,
	       int *first)
{
	char *argv[16];
	for (int i = 0; i < argc; i++)
		argv[i] = (char *)args[i];
	argv[argc] = NULL;
	memset(t, 0, sizeof(*t));
	struct opts_spec spec = {
		.prog = "t", .shortopts = "p:c:h", .longopts = t_longopts,
		.cli_only = t_cli_only, .config_val = T_CONFIG,
		.default_config = default_config, .apply = t_apply, .ctx = t,
	};
	struct conf file;
	int rc = opts_parse(&spec, argc, argv, first, &file);
	conf_free(&file);
	return rc;
}

static void test_precedence(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s",
		 write_file("a.conf", "port = 1000\nallow = a\nallow = b\nquiet = yes\n"));
	struct t_ctx t;
	int first = -1;

	/* The file alone. */
	const char *a1[] = { "t", "-c", path };
	assert_int_equal(run(&t, NULL, 3, a1, &first), 0);
	assert_string_equal(t.port, "1000");
	assert_string_equal(t.port_from, "file:1");
	assert_int_equal(t.nallow, 2);
	assert_int_equal(t.quiet, 1);

	/* A flag overrides the file, wherever -c stands; lists add up. */
	const char *a2[] = { "t", "--port", "2000", "--allow", "c", "--config", path, "rest" };
	assert_int_equal(run(&t, NULL, 8, a2, &first), 0);
	assert_string_equal(t.port, "2000");
	assert_string_equal(t.port_from, "cli:0");
	assert_int_equal(t.nallow, 3);
	assert_string_equal(t.allows[0], "a");
	assert_string_equal(t.allows[2], "c");
	assert_int_equal(first, 7);

	/* The default file is read when present and no -c is given... */
	const char *a3[] = { "t" };
	assert_int_equal(run(&t, path, 1, a3, &first), 0);
	assert_string_equal(t.port, "1000");
	/* ...and skipped when absent. */
	assert_int_equal(run(&t, "/nonexistent/t.conf", 1, a3, &first), 0);
	assert_string_equal(t.port, "");
	/* -c names another file: the default is not read. */
	char other[128];
	snprintf(other, sizeof(other), "%s", write_file("b.conf", "allow = z\n"));
	const char *a4[] = { "t", "-c", other };
	assert_int_equal(run(&t, path, 3, a4, &first), 0);
	assert_string_equal(t.port, "");
	assert_int_equal(t.nallow, 1);
}

static void test_file_errors(void **state)
{
	(void)state;
	struct { const char *text; } cases[] = {
		{ "port = 1\nbogus = 2\n" },   /* unknown key */
		{ "help = yes\n" },            /* command-line only */
		{ "config = x\n" },            /* command-line only */
		{ "quiet = maybe\n" },         /* bad boolean */
		{ "port = x1\n" },             /* bad value, from apply */
		{ "port 1\n" },                /* syntax */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *path = write_file("bad.conf", cases[i].text);
		const char *argv[] = { "t", "-c", path };
		struct t_ctx t;
		int first;
		assert_int_equal(run(&t, NULL, 3, argv, &first), 2);
	}
	/* Missing -c file is an error, not silently the defaults. */
	const char *argv[] = { "t", "-c", "/nonexistent/t.conf" };
	struct t_ctx t;
	int first;
	assert_int_equal(run(&t, NULL, 3, argv, &first), 2);
}

static void test_bool(void **state)
{
	(void)state;
	assert_int_equal(opts_parse_bool("yes"), 1);
	assert_int_equal(opts_parse_bool("TRUE"), 1);
	assert_int_equal(opts_parse_bool("on"), 1);
	assert_int_equal(opts_parse_bool("1"), 1);
	assert_int_equal(opts_parse_bool("no"), 0);
	assert_int_equal(opts_parse_bool("off"), 0);
	assert_int_equal(opts_parse_bool("0"), 0);
	assert_int_equal(opts_parse_bool("2"), -1);
	assert_int_equal(opts_parse_bool(""), -1);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_bool),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
