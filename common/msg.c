/*
 * Message channels: framing, fd passing and buffered non-blocking I/O.
 * See msg.h for the wire format.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "msg.h"

#define MSG_READ_CHUNK	65536
#define MSG_WRITE_IOV	16

void
msgchan_init(struct msgchan *c, int fd, int peer, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->peer = peer;
	strlcpy(c->name, name, sizeof(c->name));
	if ((c->rbuf = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	TAILQ_INIT(&c->outq);
}

void
msgchan_clear(struct msgchan *c)
{
	struct msgout	*o;
	size_t		 i;

	if (c->ev != NULL) {
		event_free(c->ev);
		c->ev = NULL;
	}
	while ((o = TAILQ_FIRST(&c->outq)) != NULL) {
		TAILQ_REMOVE(&c->outq, o, entry);
		if (o->fd != -1)
			close(o->fd);
		free(o);
	}
	c->outlen = 0;
	for (i = 0; i < c->nrfds; i++)
		close(c->rfds[i]);
	c->nrfds = 0;
	if (c->rbuf != NULL) {
		evbuffer_free(c->rbuf);
		c->rbuf = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
}

struct msgchan *
msgchan_new(int fd, int peer, const char *name)
{
	struct msgchan	*c;

	if ((c = malloc(sizeof(*c))) == NULL)
		fatal("malloc");
	msgchan_init(c, fd, peer, name);
	return c;
}

void
msgchan_free(struct msgchan *c)
{
	if (c == NULL)
		return;
	msgchan_clear(c);
	free(c);
}

uint32_t
msg_reqid(void)
{
	static uint32_t	 next;

	if (++next == 0)
		next = 1;
	return next;
}

int
msg_compose(struct msgchan *c, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	struct msgout	*o;
	struct msg_hdr	 hdr;

	if (len > MSG_MAX_LEN - MSG_HDR_LEN) {
		if (fd != -1)
			close(fd);
		errno = EMSGSIZE;
		return -1;
	}
	if ((o = malloc(sizeof(*o) + MSG_HDR_LEN + len)) == NULL)
		fatal("malloc");
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.len = (uint32_t)(MSG_HDR_LEN + len);
	hdr.peerid = peerid;
	hdr.pid = (uint32_t)getpid();
	hdr.flags = fd != -1 ? MSG_F_FD : 0;
	memcpy(o->buf, &hdr, MSG_HDR_LEN);
	if (len > 0)
		memcpy(o->buf + MSG_HDR_LEN, data, len);
	o->len = MSG_HDR_LEN + len;
	o->off = 0;
	o->fd = fd;
	TAILQ_INSERT_TAIL(&c->outq, o, entry);
	c->outlen += o->len;
	return 0;
}

int
msg_compose_str(struct msgchan *c, uint32_t type, uint32_t peerid,
    const char *s)
{
	return msg_compose(c, type, peerid, -1, s, strlen(s));
}

/*
 * One sendmsg(2).  A message that carries an fd goes out alone, starting
 * with its first byte, so the fd arrives with the message it belongs to;
 * messages without fds are gathered up to MSG_WRITE_IOV at a time.
 */
static ssize_t
msg_write_once(struct msgchan *c)
{
	struct iovec	 iov[MSG_WRITE_IOV];
	struct msghdr	 mh;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct cmsghdr	*cm;
	struct msgout	*o, *first;
	ssize_t		 n;
	int		 niov = 0, fd = -1;

	first = TAILQ_FIRST(&c->outq);
	memset(&mh, 0, sizeof(mh));
	if (first->fd != -1 && first->off == 0) {
		fd = first->fd;
		iov[niov].iov_base = first->buf;
		iov[niov++].iov_len = first->len;
	} else {
		for (o = first; o != NULL && niov < MSG_WRITE_IOV;
		    o = TAILQ_NEXT(o, entry)) {
			if (o != first && o->fd != -1)
				break;
			iov[niov].iov_base = o->buf + o->off;
			iov[niov++].iov_len = o->len - o->off;
		}
	}
	mh.msg_iov = iov;
	mh.msg_iovlen = niov;
	if (fd != -1) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		mh.msg_control = cmsgbuf.buf;
		mh.msg_controllen = sizeof(cmsgbuf.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do {
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	return n;
}

/* Account for n written bytes: advance offsets, free finished messages. */
static void
msg_consume(struct msgchan *c, size_t n)
{
	struct msgout	*o;
	size_t		 take;

	c->outlen -= n;
	while (n > 0 && (o = TAILQ_FIRST(&c->outq)) != NULL) {
		take = o->len - o->off;
		if (take > n)
			take = n;
		if (o->off == 0 && o->fd != -1) {
			/* the fd went out with the first byte */
			close(o->fd);
			o->fd = -1;
		}
		o->off += take;
		n -= take;
		if (o->off == o->len) {
			TAILQ_REMOVE(&c->outq, o, entry);
			free(o);
		}
	}
}

int
msg_flush(struct msgchan *c)
{
	ssize_t	 n;

	while (!TAILQ_EMPTY(&c->outq)) {
		n = msg_write_once(c);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == ENOBUFS)
				return 1;
			return -1;
		}
		msg_consume(c, (size_t)n);
	}
	return 0;
}

int
msg_flush_all(struct msgchan *c)
{
	struct pollfd	 pfd;
	int		 r;

	while ((r = msg_flush(c)) == 1) {
		pfd.fd = c->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
			return -1;
	}
	return r;
}

ssize_t
msg_read(struct msgchan *c)
{
	struct iovec	 iov;
	struct msghdr	 mh;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * MSG_MAX_FDS)];
	} cmsgbuf;
	struct cmsghdr	*cm;
	struct evbuffer_iovec vec;
	ssize_t		 n;
	size_t		 i, nfds;
	int		*fds;

	if (evbuffer_reserve_space(c->rbuf, MSG_READ_CHUNK, &vec, 1) != 1)
		fatalx("evbuffer_reserve_space");
	iov.iov_base = vec.iov_base;
	iov.iov_len = MSG_READ_CHUNK;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cmsgbuf.buf;
	mh.msg_controllen = sizeof(cmsgbuf.buf);
	do {
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n <= 0) {
		vec.iov_len = 0;
		evbuffer_commit_space(c->rbuf, &vec, 1);
		return n;
	}
	vec.iov_len = (size_t)n;
	evbuffer_commit_space(c->rbuf, &vec, 1);

	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(cm);
		for (i = 0; i < nfds; i++) {
			if (c->nrfds == MSG_MAX_FDS) {
				/* more fds than messages can claim */
				close(fds[i]);
				c->dead = 1;
				continue;
			}
			c->rfds[c->nrfds++] = fds[i];
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		c->dead = 1;
	if (c->dead) {
		errno = EBADMSG;
		return -1;
	}
	return n;
}

int
msg_get(struct msgchan *c, struct msg *m)
{
	struct msg_hdr	 hdr;
	size_t		 avail;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (c->dead) {
		errno = EBADMSG;
		return -1;
	}
	avail = evbuffer_get_length(c->rbuf);
	if (avail < MSG_HDR_LEN)
		return 0;
	evbuffer_copyout(c->rbuf, &hdr, MSG_HDR_LEN);
	if (hdr.len < MSG_HDR_LEN || hdr.len > MSG_MAX_LEN ||
	    (hdr.flags & ~MSG_F_FD) != 0) {
		c->dead = 1;
		errno = EBADMSG;
		return -1;
	}
	if (avail < hdr.len)
		return 0;
	if (hdr.flags & MSG_F_FD) {
		if (c->nrfds == 0) {
			c->dead = 1;
			errno = EBADMSG;
			return -1;
		}
		m->fd = c->rfds[0];
		memmove(c->rfds, c->rfds + 1, (c->nrfds - 1) * sizeof(int));
		c->nrfds--;
	}
	m->hdr = hdr;
	m->datalen = hdr.len - MSG_HDR_LEN;
	if ((m->data = malloc(m->datalen + 1)) == NULL)
		fatal("malloc");
	evbuffer_drain(c->rbuf, MSG_HDR_LEN);
	evbuffer_remove(c->rbuf, m->data, m->datalen);
	((char *)m->data)[m->datalen] = '\0';
	return 1;
}

int
msg_recv_blocking(struct msgchan *c, struct msg *m)
{
	struct pollfd	 pfd;
	ssize_t		 n;
	int		 r;

	for (;;) {
		if ((r = msg_get(c, m)) != 0)
			return r;
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, -1) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		n = msg_read(c);
		if (n == 0) {
			if (evbuffer_get_length(c->rbuf) != 0) {
				/* EOF inside a message */
				errno = EBADMSG;
				return -1;
			}
			return 0;
		}
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
	}
}

void
msg_free(struct msg *m)
{
	free(m->data);
	m->data = NULL;
	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
}

/* ---- libevent glue ------------------------------------------------------ */

static void
msgchan_update(struct msgchan *c)
{
	short	 want = EV_READ | EV_PERSIST;

	if (c->ev == NULL)
		return;
	if (!TAILQ_EMPTY(&c->outq))
		want |= EV_WRITE;
	if (want == c->events)
		return;
	event_del(c->ev);
	event_assign(c->ev, event_get_base(c->ev), c->fd, want,
	    event_get_callback(c->ev), event_get_callback_arg(c->ev));
	c->events = want;
	event_add(c->ev, NULL);
}

static void
msgchan_fail(struct msgchan *c)
{
	if (c->ev != NULL)
		event_del(c->ev);
	c->dead = 1;
	if (c->closed != NULL)
		c->closed(c, c->arg);
}

static void
msgchan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct msgchan	*c = arg;
	struct msg	 m;
	ssize_t		 n;
	int		 r;

	if (what & EV_WRITE) {
		if (msg_flush(c) == -1) {
			log_warn("write to %s", c->name);
			msgchan_fail(c);
			return;
		}
	}
	if (what & EV_READ) {
		n = msg_read(c);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			goto out;
		if (n == -1) {
			log_warn("read from %s", c->name);
			msgchan_fail(c);
			return;
		}
		if (n == 0) {
			log_debug("channel to %s closed", c->name);
			msgchan_fail(c);
			return;
		}
		while ((r = msg_get(c, &m)) == 1) {
			c->dispatch(c, &m, c->arg);
			msg_free(&m);
			if (c->dead)
				return;
		}
		if (r == -1) {
			log_warnx("bad message from %s", c->name);
			msgchan_fail(c);
			return;
		}
	}
 out:
	msgchan_update(c);
}

void
msgchan_event_start(struct msgchan *c, struct event_base *base,
    msg_dispatch_fn dispatch, msg_closed_fn closed, void *arg)
{
	c->dispatch = dispatch;
	c->closed = closed;
	c->arg = arg;
	c->events = EV_READ | EV_PERSIST;
	if ((c->ev = event_new(base, c->fd, c->events, msgchan_cb, c)) == NULL)
		fatalx("event_new");
	event_add(c->ev, NULL);
	msgchan_update(c);
}

int
msgchan_send(struct msgchan *c, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	if (c->dead) {
		if (fd != -1)
			close(fd);
		errno = EPIPE;
		return -1;
	}
	if (msg_compose(c, type, peerid, fd, data, len) == -1)
		return -1;
	msgchan_update(c);
	return 0;
}

int
msgchan_send_str(struct msgchan *c, uint32_t type, uint32_t peerid,
    const char *s)
{
	return msgchan_send(c, type, peerid, -1, s, strlen(s));
}
