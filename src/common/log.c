#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static atomic_int current_level = LOG_LEVEL_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* Set once before threads start (log_to_syslog), read by every log_msg. */
static atomic_bool to_syslog;

void log_set_level(enum log_level level)
{
	atomic_store(&current_level, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&current_level);
}

int log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void log_to_syslog(const char *ident)
{
	/* NDELAY: connect to the log socket now, while the filesystem is still
	 * ours to see (a sandbox may hide /dev later); no LOG_CONS. */
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	atomic_store(&to_syslog, true);
}

int log_syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERROR:
		return LOG_ERR;
	case LOG_LEVEL_WARN:
		return LOG_WARNING;
	case LOG_LEVEL_INFO:
		return LOG_INFO;
	case LOG_LEVEL_DEBUG:
		break;
	}
	return LOG_DEBUG;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if ((int)level > atomic_load(&current_level))
		return;

	/* Format into one buffer so concurrent threads never interleave a line. */
	char line[1024];
	bool sys = atomic_load(&to_syslog);
	int off = sys ? 0 : snprintf(line, sizeof(line), "usbip-notify %s: ", level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof(line) - (size_t)off, fmt, ap);
	va_end(ap);
	if (sys)
		syslog(log_syslog_priority(level), "%s", line);
	else
		fprintf(stderr, "%s\n", line);
}
