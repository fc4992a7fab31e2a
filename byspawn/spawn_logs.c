/*
 * Worker output: stdout and stderr share one pipe (so their order is
 * kept), read on proc_base and cut into lines kept in a ring of
 * WORKER_LOG_LINES.  Each line gets a sequence number so a reader can
 * follow the ring without missing or repeating lines.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "byspawn.h"
#include "log.h"

static int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t	 len, i;
	unsigned int cp;

	if (s[0] < 0x80)
		return s[0] != 0;	/* NUL is replaced as well */
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/*
 * A copy of the n bytes at s, fit for JSON: invalid UTF-8 and NULs
 * become '?', a trailing CR goes.
 */
static char *
clean_line(const char *s, size_t n)
{
	char	*out;
	size_t	 i, k;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if ((out = malloc(n + 1)) == NULL)
		fatal("malloc");
	for (i = 0; i < n; i += k) {
		if ((k = utf8_len((const unsigned char *)s + i, n - i)) == 0) {
			out[i] = '?';
			k = 1;
		} else
			memcpy(out + i, s + i, k);
	}
	out[n] = '\0';
	return out;
}

/* The ring grows up to WORKER_LOG_LINES, then drops the oldest line. */
static struct worker_logline *
ring_slot(struct worker_log *l)
{
	struct worker_logline	*v;
	size_t			 i;

	if (l->count == l->cap && l->cap < WORKER_LOG_LINES) {
		/* not wrapped yet: head is still 0 */
		l->cap = l->cap ? l->cap * 2 : 64;
		if (l->cap > WORKER_LOG_LINES)
			l->cap = WORKER_LOG_LINES;
		if ((v = reallocarray(l->lines, l->cap, sizeof(*v))) == NULL)
			fatal("reallocarray");
		l->lines = v;
	}
	if (l->count < l->cap)
		return &l->lines[(l->head + l->count++) % l->cap];
	i = l->head;
	free(l->lines[i].text);
	l->head = (l->head + 1) % l->cap;
	return &l->lines[i];
}

static void
add_line(struct worker *w, const char *s, size_t n)
{
	struct worker_logline	*ln = ring_slot(&w->log);

	ln->seq = ++w->log.next_seq;
	ln->time_ms = now_ms();
	ln->text = clean_line(s, n);
	log_trace("worker %s: %s", w->id, ln->text);
	if (w->on_log != NULL)
		w->on_log(w, ln, w->cb_arg);
}

/* Take complete lines, and at EOF (or when too long) the rest, too. */
static void
take_lines(struct worker *w, int eof)
{
	struct evbuffer		*b = w->log.partial;
	struct evbuffer_ptr	 p;
	size_t			 n;
	char			*s;

	for (;;) {
		p = evbuffer_search_eol(b, NULL, NULL, EVBUFFER_EOL_LF);
		if (p.pos != -1)
			n = (size_t)p.pos;
		else if (evbuffer_get_length(b) >= WORKER_LINE_MAX ||
		    (eof && evbuffer_get_length(b) > 0))
			n = evbuffer_get_length(b);
		else
			return;
		if (n > WORKER_LINE_MAX)
			n = WORKER_LINE_MAX;
		if ((s = (char *)evbuffer_pullup(b, (ev_ssize_t)n)) == NULL &&
		    n > 0)
			fatal("evbuffer_pullup");
		add_line(w, s, n);
		evbuffer_drain(b, n);
		if (p.pos != -1 && (size_t)p.pos == n)
			evbuffer_drain(b, 1);
	}
}

static void
log_read(evutil_socket_t fd, short ev, void *arg)
{
	struct worker	*w = arg;
	int		 n;

	n = evbuffer_read(w->log.partial, fd, 65536);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		take_lines(w, 0);
		return;
	}
	take_lines(w, 1);
	event_free(w->log.ev);
	w->log.ev = NULL;
	close(w->log.fd);
	w->log.fd = -1;
	worker_log_closed(w);
}

/* Start reading the worker's output from fd (the pipe's read end). */
int
worker_log_start(struct worker *w, int fd)
{
	if (fd_nonblock_cloexec(fd) == -1)
		return -1;
	w->log.fd = fd;
	if ((w->log.partial = evbuffer_new()) == NULL ||
	    (w->log.ev = event_new(proc_base, fd, EV_READ | EV_PERSIST,
	    log_read, w)) == NULL || event_add(w->log.ev, NULL) == -1)
		return -1;
	return 0;
}

int
worker_log_eof(const struct worker *w)
{
	return w->log.ev == NULL;
}

void
worker_log_free(struct worker *w)
{
	size_t	 i;

	if (w->log.ev != NULL)
		event_free(w->log.ev);
	w->log.ev = NULL;
	if (w->log.fd != -1)
		close(w->log.fd);
	w->log.fd = -1;
	if (w->log.partial != NULL)
		evbuffer_free(w->log.partial);
	w->log.partial = NULL;
	for (i = 0; i < w->log.count; i++)
		free(w->log.lines[(w->log.head + i) % w->log.cap].text);
	free(w->log.lines);
	memset(&w->log, 0, sizeof(w->log));
	w->log.fd = -1;
}

size_t
worker_log_read(const struct worker *w, uint64_t from,
    void (*fn)(const struct worker_logline *, void *), void *arg)
{
	const struct worker_log	*l = &w->log;
	uint64_t		 first;
	size_t			 i, n = 0;

	if (l->count == 0)
		return 0;
	first = l->lines[l->head].seq;
	i = from > first ? (size_t)(from - first) : 0;
	for (; i < l->count; i++, n++)
		fn(&l->lines[(l->head + i) % l->cap], arg);
	return n;
}
