/* Logging: one small module with levels and a prefix.
 *
 * Libraries log through here; the daemons decide the level and where lines
 * go: stderr by default (journald collects it under systemd), or syslog(3)
 * after log_to_syslog() (--syslog). Thread-safe: each message is written
 * with a single fprintf or syslog call. */
#ifndef USBIP_NOTIFY_COMMON_LOG_H
#define USBIP_NOTIFY_COMMON_LOG_H

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int log_level_parse(const char *s);

/* Sends every later message to syslog(3), facility daemon, as IDENT[PID]
 * with the level as its priority and without the stderr prefix. Call once,
 * before the daemon's threads start; ident must stay valid. */
void log_to_syslog(const char *ident);

/* The syslog(3) priority of a level (LOG_ERR ... LOG_DEBUG). */
int log_syslog_priority(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
