/*
 * The message layer between the byd processes (the idea of OpenBSD's
 * imsg, our own code): a fixed header, a payload of at most MSG_MAX_LEN
 * bytes in all, and at most one file descriptor per message, passed with
 * SCM_RIGHTS together with the first byte of its message.
 *
 * A channel is one end of a SOCK_STREAM socketpair.  Output is queued and
 * written when the socket accepts it; input is read into a buffer and
 * split into messages.  Anything that does not frame correctly is a
 * protocol error: the peer is broken or hostile and the caller must drop
 * the channel (the daemons treat it as fatal).
 */

#ifndef BY_MSG_H
#define BY_MSG_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/buffer.h>

#define MSG_HDR_LEN	((size_t)sizeof(struct msg_hdr))
/*
 * Header included.  Big enough for any API answer (JSON request bodies
 * are capped at 1 MiB); bulk data such as bundles travels as an fd.
 */
#define MSG_MAX_LEN	(4 * 1024 * 1024)
#define MSG_MAX_FDS	16		/* received, not yet consumed */
#define MSG_F_FD	0x1		/* an fd travels with this message */

struct msg_hdr {
	uint32_t	type;
	uint32_t	len;		/* header + payload */
	uint32_t	peerid;		/* request id; a reply echoes it */
	uint32_t	pid;		/* sender */
	uint32_t	flags;
};

struct msg {
	struct msg_hdr	 hdr;
	int		 fd;		/* -1 when none; the receiver owns it */
	void		*data;		/* payload, NUL-terminated copy */
	size_t		 datalen;
};

struct msgout {
	TAILQ_ENTRY(msgout) entry;
	size_t		 len;
	size_t		 off;
	int		 fd;
	unsigned char	 buf[];
};
TAILQ_HEAD(msgoutq, msgout);

struct msgchan;
typedef void	(*msg_dispatch_fn)(struct msgchan *, struct msg *, void *);
typedef void	(*msg_closed_fn)(struct msgchan *, void *);

struct msgchan {
	int		 fd;
	int		 peer;		/* enum proc_id of the other end */
	char		 name[32];	/* for log lines */

	struct evbuffer	*rbuf;
	int		 rfds[MSG_MAX_FDS];
	size_t		 nrfds;

	struct msgoutq	 outq;
	size_t		 outlen;	/* bytes queued */

	struct event	*ev;
	short		 events;
	msg_dispatch_fn	 dispatch;
	msg_closed_fn	 closed;
	void		*arg;
	int		 dead;
};

/* Plain channel operations; no event loop needed (tests, byctl). */
void	 msgchan_init(struct msgchan *, int fd, int peer, const char *name);
void	 msgchan_clear(struct msgchan *);
struct msgchan *msgchan_new(int fd, int peer, const char *name);
void	 msgchan_free(struct msgchan *);

/*
 * Queue a message.  fd (or -1) is owned by the channel from here on and
 * closed once sent.  Returns -1 with errno EMSGSIZE when too big.
 */
int	 msg_compose(struct msgchan *, uint32_t type, uint32_t peerid, int fd,
	    const void *data, size_t len);
int	 msg_compose_str(struct msgchan *, uint32_t type, uint32_t peerid,
	    const char *);
/* Write what the socket takes: 0 all sent, 1 more pending, -1 error. */
int	 msg_flush(struct msgchan *);
/* Block until all is written (startup, byctl). 0 or -1. */
int	 msg_flush_all(struct msgchan *);
/* Read what is there: >0 bytes, 0 EOF, -1 error (EAGAIN included). */
ssize_t	 msg_read(struct msgchan *);
/*
 * Take the next whole message out of the input buffer: 1 got one (free it
 * with msg_free), 0 need more input, -1 protocol error (errno EBADMSG:
 * bad length, fd missing or too many fds).
 */
int	 msg_get(struct msgchan *, struct msg *);
/* Blocking read of exactly one message: 1, 0 on EOF, -1 on error. */
int	 msg_recv_blocking(struct msgchan *, struct msg *);
void	 msg_free(struct msg *);

/* A fresh request id (never 0). */
uint32_t msg_reqid(void);

/* libevent glue: dispatch each message, call closed on EOF or error. */
void	 msgchan_event_start(struct msgchan *, struct event_base *,
	    msg_dispatch_fn, msg_closed_fn, void *);
/* compose and make sure the write event is armed */
int	 msgchan_send(struct msgchan *, uint32_t type, uint32_t peerid, int fd,
	    const void *data, size_t len);
int	 msgchan_send_str(struct msgchan *, uint32_t type, uint32_t peerid,
	    const char *);

#endif /* BY_MSG_H */
