/* Flags and configuration file through one option table: see opts.h. */
#include "common/opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/conf.h"

void opt_bad_value(const struct opt_src *src, const struct option *opt, const char *value,
		   const char *reason_fmt, ...)
{
	char reason[256] = "";
	if (reason_fmt) {
		va_list ap;
		va_start(ap, reason_fmt);
		vsnprintf(reason, sizeof(reason), reason_fmt, ap);
		va_end(ap);
	}
	const char *sep = reason[0] ? ": " : "";
	if (src && src->file)
		fprintf(stderr, "%s:%u: %s: bad value \"%s\"%s%s\n", src->file, src->line,
			opt->name, value ? value : "", sep, reason);
	else
		fprintf(stderr, "bad --%s \"%s\"%s%s\n", opt->name, value ? value : "", sep,
			reason);
}

const struct option *opts_find_val(const struct option *longopts, int val)
{
	for (const struct option *o = longopts; o->name; o++) {
		if (o->val == val)
			return o;
	}
	return NULL;
}

static const struct option *find_name(const struct option *longopts, const char *name)
{
	for (const struct option *o = longopts; o->name; o++) {
		if (strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

static bool is_cli_only(const struct opts_spec *spec, int val)
{
	for (const int *v = spec->cli_only; v && *v; v++) {
		if (*v == val)
			return true;
	}
	return val == spec->config_val;
}

int opts_parse_bool(const char *s)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

int opts_apply_file(const struct opts_spec *spec, const char *path, struct conf *file)
{
	struct conf c;
	char err[CONF_ERR_SIZE];
	memset(file, 0, sizeof(*file));
	if (conf_load(path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", spec->prog, err);
		return 2;
	}
	int rc = 0;
	for (size_t i = 0; i < c.n && rc == 0; i++) {
		const struct conf_entry *e = &c.entries[i];
		struct opt_src src = { .file = c.path, .line = e->line };
		const struct option *o = find_name(spec->longopts, e->key);
		if (!o || is_cli_only(spec, o->val)) {
			fprintf(stderr, "%s:%u: %s: unknown key\n", c.path, e->line, e->key);
			rc = 2;
			break;
		}
		if (o->has_arg == no_argument) {
			int b = opts_parse_bool(e->value);
			if (b < 0) {
				opt_bad_value(&src, o, e->value, "want yes or no");
				rc = 2;
			} else if (b) {
				rc = spec->apply(spec->ctx, o, NULL, &src);
			}
		} else {
			rc = spec->apply(spec->ctx, o, e->value, &src);
		}
	}
	*file = c;
	return rc;
}

/* Starts getopt over again (glibc wants 0, the BSDs optreset). */
static void getopt_restart(void)
{
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
	extern int optreset;
	optreset = 1;
	optind = 1;
#else
	optind = 0;
#endif
}

/* The last -c/--config value among the flags, or NULL. Quiet: the real
 * pass reports bad flags. */
static const char *find_config(const struct opts_spec *spec, int argc, char **argv)
{
	const char *path = NULL;
	int c, saved = opterr;
	opterr = 0;
	getopt_restart();
	while ((c = getopt_long(argc, argv, spec->shortopts, spec->longopts, NULL)) != -1) {
		if (c == spec->config_val)
			path = optarg;
	}
	opterr = saved;
	getopt_restart();
	return path;
}

int opts_parse(const struct opts_spec *spec, int argc, char **argv, int *first_arg,
	       struct conf *file)
{
	const char *path = find_config(spec, argc, argv);
	int rc;
	memset(file, 0, sizeof(*file));
	if (path) {
		rc = opts_apply_file(spec, path, file);
		if (rc)
			return rc;
	} else if (spec->default_config && access(spec->default_config, F_OK) == 0) {
		rc = opts_apply_file(spec, spec->default_config, file);
		if (rc)
			return rc;
	}

	int c;
	struct opt_src cli = { 0 };
	while ((c = getopt_long(argc, argv, spec->shortopts, spec->longopts, NULL)) != -1) {
		if (c == spec->config_val)
			continue;
		const struct option *o = opts_find_val(spec->longopts, c);
		if (!o) {
			if (spec->usage)
				spec->usage(stderr);
			return 2;
		}
		rc = spec->apply(spec->ctx, o, o->has_arg == no_argument ? NULL : optarg, &cli);
		if (rc)
			return rc;
	}
	*first_arg = optind;
	return 0;
}
