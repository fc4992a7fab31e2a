/*
 * Logging: one JSON object per line on stderr (or, when byd runs as a
 * daemon without -d, the same line to syslog).
 *
 *   {"time":"2026-11-24T10:00:00.123Z","level":"info","proc":"byd",
 *    "pid":123,"msg":"ready"}
 */

#ifndef BY_LOG_H
#define BY_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_TRACE,
	LOG_LVL_DEBUG,
	LOG_LVL_INFO,
	LOG_LVL_WARN,
	LOG_LVL_ERROR,
};

void	 log_init(const char *proc, int to_syslog);
void	 log_setproc(const char *proc);
void	 log_setlevel(enum log_level);
/* set and log the change so that it shows at either level */
void	 log_setlevel_announce(enum log_level);
enum log_level log_getlevel(void);
/* "trace" .. "error", also "warning"; -1 when unknown */
int	 log_level_parse(const char *);
const char *log_level_name(enum log_level);

void	 log_trace(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_errorx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_msg(enum log_level, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
/* fatal appends strerror(errno); fatalx does not.  Both exit(1). */
void	 fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif /* BY_LOG_H */
