/* One option table for the command line and the configuration file.
 *
 * A daemon describes its options once, as getopt_long's struct option
 * table, and handles each in one function, apply(). The command line feeds
 * it through getopt_long; a configuration file (common/conf.h) feeds it
 * entry by entry, each key looked up by long name in the same table, so
 * every flag is a key and both share one set of checks and messages.
 *
 * Precedence: opts_parse() applies the file first, then the flags, so a
 * flag overrides a single-valued key; repeatable options (allow, deny,
 * server, ...) add up from both.
 *
 * In a file, an option without an argument takes a boolean: "yes", "true",
 * "on" or "1" applies it, "no", "false", "off" or "0" leaves it out.
 * Options in opts_spec.cli_only (help, version, the config file itself)
 * are not keys. */
#ifndef USBIP_NOTIFY_COMMON_OPTS_H
#define USBIP_NOTIFY_COMMON_OPTS_H

#include <getopt.h>
#include <stdio.h>

#include "common/conf.h"
#include <stdbool.h>

/* Where a value came from, for messages. */
struct opt_src {
	const char *file; /* NULL: the command line */
	unsigned line;
};

/* Handles option val (getopt's val) with arg (NULL for no_argument).
 * Returns 0, 1 to stop with success (--help printed) or 2 for a usage
 * error, after printing it (opt_bad_value). */
typedef int (*opts_apply_fn)(void *ctx, const struct option *opt, const char *arg,
			     const struct opt_src *src);

struct opts_spec {
	const char *prog;             /* for messages */
	const char *shortopts;
	const struct option *longopts; /* ends with a zero entry */
	const int *cli_only;          /* vals that are no key; ends with 0 */
	int config_val;               /* val of -c/--config */
	const char *default_config;   /* read if present and no -c; may be NULL */
	opts_apply_fn apply;
	void (*usage)(FILE *out);
	void *ctx;
};

/* Prints a bad value naming it and where it came from:
 *   command line: "PROG: bad --NAME \"VALUE\": REASON"
 *   file:         "FILE:LINE: NAME: bad value \"VALUE\": REASON"
 * reason_fmt may be NULL. */
void opt_bad_value(const struct opt_src *src, const struct option *opt, const char *value,
		   const char *reason_fmt, ...) __attribute__((format(printf, 4, 5)));

/* The table entry for val, or NULL. */
const struct option *opts_find_val(const struct option *longopts, int val);

/* Parses a file boolean; returns 1, 0 or -1 when it is none. */
int opts_parse_bool(const char *s);

/* Applies every entry of the file at path, loaded into *file. The values
 * handed to apply point into *file: it stays loaded until the caller's
 * conf_free(file) (also after an error; conf_free of an empty conf is
 * fine). Unknown keys, cli-only keys and bad booleans are errors naming
 * file, line and key. Returns like apply (first non-zero wins), or 2 if
 * the file cannot be read or parsed. */
int opts_apply_file(const struct opts_spec *spec, const char *path, struct conf *file);

/* The whole sequence: finds -c/--config among the flags, applies that file
 * (or default_config if it exists) into *file as opts_apply_file() does,
 * then applies the flags in order. On 0,
 * *first_arg is the index of the first non-option argument in argv (GNU
 * getopt moves them to the end). Returns 0, 1 (stop, success) or 2. */
int opts_parse(const struct opts_spec *spec, int argc, char **argv, int *first_arg,
	       struct conf *file);

#endif
