/*
 * JSON-lines logging.  Each line is built in one buffer and written with
 * one write(2) so that lines from the four processes sharing stderr do
 * not interleave.
 */

#include <sys/time.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	8192

static const char	*log_proc = "byd";
static int		 log_syslog;
static enum log_level	 log_level = LOG_LVL_INFO;

static const char *const level_names[] = {
	"trace", "debug", "info", "warn", "error"
};

void
log_init(const char *proc, int to_syslog)
{
	log_proc = proc;
	log_syslog = to_syslog;
	if (to_syslog)
		openlog(proc, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	tzset();
}

static void	log_msg_at(enum log_level, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

void
log_setproc(const char *proc)
{
	log_proc = proc;
}

void
log_setlevel(enum log_level lvl)
{
	log_level = lvl;
}

/* Say so at whichever of the two levels is more verbose, so it shows. */
void
log_setlevel_announce(enum log_level lvl)
{
	enum log_level	 old = log_level;

	if (lvl > old)
		log_msg_at(old <= LOG_LVL_INFO ? LOG_LVL_INFO : old,
		    "log level set to %s", level_names[lvl]);
	log_level = lvl;
	if (lvl <= old)
		log_msg_at(lvl <= LOG_LVL_INFO ? LOG_LVL_INFO : lvl,
		    "log level set to %s", level_names[lvl]);
}

enum log_level
log_getlevel(void)
{
	return log_level;
}

int
log_level_parse(const char *s)
{
	size_t	 i;

	if (s == NULL)
		return -1;
	if (strcmp(s, "warning") == 0)
		return LOG_LVL_WARN;
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
log_level_name(enum log_level lvl)
{
	if ((int)lvl < 0 || lvl > LOG_LVL_ERROR)
		return "info";
	return level_names[lvl];
}

/* Append s to buf as the inside of a JSON string. */
static size_t
json_escape(char *buf, size_t off, size_t size, const char *s)
{
	const unsigned char	*p;
	int			 n;

	for (p = (const unsigned char *)s; *p != '\0' && off + 8 < size; p++) {
		switch (*p) {
		case '"':
		case '\\':
			buf[off++] = '\\';
			buf[off++] = (char)*p;
			break;
		case '\n':
			buf[off++] = '\\';
			buf[off++] = 'n';
			break;
		case '\t':
			buf[off++] = '\\';
			buf[off++] = 't';
			break;
		case '\r':
			buf[off++] = '\\';
			buf[off++] = 'r';
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				n = snprintf(buf + off, size - off, "\\u%04x",
				    *p);
				off += (size_t)n;
			} else
				buf[off++] = (char)*p;
		}
	}
	return off;
}

static void
log_write(enum log_level lvl, const char *msg)
{
	char		 line[LOG_LINE_MAX + 256];
	struct timeval	 tv;
	struct tm	 tm;
	size_t		 off;
	int		 n;
	ssize_t		 w;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
	    "\"level\":\"%s\",\"proc\":\"%s\",\"pid\":%ld,\"msg\":\"",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000,
	    level_names[lvl], log_proc, (long)getpid());
	if (n < 0)
		return;
	off = json_escape(line, (size_t)n, sizeof(line) - 4, msg);
	line[off++] = '"';
	line[off++] = '}';
	if (log_syslog) {
		line[off] = '\0';
		syslog(lvl >= LOG_LVL_ERROR ? LOG_ERR : lvl == LOG_LVL_WARN ?
		    LOG_WARNING : lvl == LOG_LVL_INFO ? LOG_INFO : LOG_DEBUG,
		    "%s", line);
		return;
	}
	line[off++] = '\n';
	do {
		w = write(STDERR_FILENO, line, off);
	} while (w == -1 && errno == EINTR);
}

void
log_msg(enum log_level lvl, const char *fmt, va_list ap)
{
	char	 msg[LOG_LINE_MAX];

	if (lvl < log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_write(lvl, msg);
}

static void
log_msg_at(enum log_level lvl, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_msg(lvl, fmt, ap);
	va_end(ap);
}

/* Like log_msg, with ": strerror(errno)" appended. */
static void
log_msg_errno(enum log_level lvl, int saved, const char *fmt, va_list ap)
{
	char	 msg[LOG_LINE_MAX];
	size_t	 len;

	if (lvl < log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(saved));
	log_write(lvl, msg);
}

#define LOG_FN(name, lvl)				\
void							\
name(const char *fmt, ...)				\
{							\
	va_list	 ap;					\
							\
	va_start(ap, fmt);				\
	log_msg(lvl, fmt, ap);				\
	va_end(ap);					\
}

LOG_FN(log_trace, LOG_LVL_TRACE)
LOG_FN(log_debug, LOG_LVL_DEBUG)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_warnx, LOG_LVL_WARN)
LOG_FN(log_errorx, LOG_LVL_ERROR)

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_msg_errno(LOG_LVL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_error(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_msg_errno(LOG_LVL_ERROR, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_msg_errno(LOG_LVL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_msg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
