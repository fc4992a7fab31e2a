/*
 * The process suite: who talks to whom, the message types, and the
 * start-up protocol every helper follows.
 *
 * byd creates one socketpair per row of proc_channels[] and fork+execs
 * each helper with its byd channel on PROC_PARENT_FD.  Then, over that
 * channel, byd sends:
 *
 *	MSG_CONFIG	effective configuration, JSON
 *	MSG_PEER_FD	one per peer channel (struct msg_peer + fd)
 *	MSG_LISTEN_FD	listening sockets, byproxy only (struct msg_listen + fd)
 *	MSG_CONFIG_END
 *
 * The helper sets itself up (still root), drops privileges, answers
 * MSG_READY (JSON with its status) and waits for MSG_GO before it serves.
 */

#ifndef BY_PROC_H
#define BY_PROC_H

#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <jansson.h>

#include "msg.h"
#include "config.h"

#define PROC_PARENT_FD	3
#define BY_VERSION	"0.1.0"

enum proc_id {
	PROC_BYD,
	PROC_PROXY,
	PROC_SPAWN,
	PROC_STATE,
	PROC_CTL,		/* byctl, on the admin socket */
	PROC_MAX
};

extern const char *const proc_names[PROC_MAX];	/* "byd", "byproxy", ... */
extern const char *const proc_titles[PROC_MAX];	/* role shown in ps */

/* The one table of allowed channels (byd creates exactly these). */
struct proc_channel {
	enum proc_id	a;
	enum proc_id	b;
};
extern const struct proc_channel proc_channels[];
extern const size_t proc_nchannels;

enum msg_type {
	MSG_NONE = 0,

	/* byd -> helper: start-up and control */
	MSG_CONFIG,		/* JSON {"config":{...},"config_file":...} */
	MSG_PEER_FD,		/* struct msg_peer, fd */
	MSG_LISTEN_FD,		/* struct msg_listen, fd */
	MSG_CONFIG_END,
	MSG_GO,			/* all helpers are ready: serve */
	MSG_RELOAD,		/* JSON: new effective configuration */
	MSG_LOG_LEVEL,		/* struct msg_int: enum log_level */
	MSG_DRAIN,		/* enter drain mode */
	MSG_SHUTDOWN,		/* finish and exit */

	/* helper -> byd */
	MSG_READY,		/* JSON status, e.g. {"schema_version":1} */

	/* between any two peers */
	MSG_PING,		/* peerid = request id */
	MSG_PONG,		/* struct msg_int: 1 ok, 0 failing */

	/*
	 * The control plane: byproxy (and byd, for byctl) -> bystate.
	 * JSON {"op":"apps.create","auth":{...}|null,"args":{...},
	 * "remote":"ip"}; the answer echoes the request id:
	 * {"status":201,"data":...} or {"status":404,"error":"not_found",
	 * "message":"app not found"}, optionally "headers":{...}.
	 */
	MSG_STATE_CALL,
	MSG_STATE_RESULT,

	/*
	 * Bundle uploads, byproxy <-> byspawn (struct msg_bundle; peerid
	 * is the request id): OPEN answers BUNDLE_FD with the archive file
	 * to write, UNPACK answers BUNDLE_RESULT, DISCARD removes whatever
	 * the upload left (no answer).
	 */
	MSG_BUNDLE_OPEN,
	MSG_BUNDLE_FD,		/* struct msg_bundle_result + fd (or none) */
	MSG_BUNDLE_UNPACK,
	MSG_BUNDLE_RESULT,	/* struct msg_bundle_result */
	MSG_BUNDLE_DISCARD,

	/*
	 * Worker control, byproxy (and byd, for byctl) -> byspawn: the
	 * same JSON call and result shapes as MSG_STATE_CALL.
	 */
	MSG_SPAWN_CALL,
	MSG_SPAWN_RESULT,

	/*
	 * Worker logs, byproxy -> byspawn: SUBSCRIBE (struct msg_logs)
	 * answers DATA (text, whole lines) zero or more times, then END
	 * (struct msg_bundle_result: 0, or 404 and a message); CANCEL
	 * (no payload) ends a subscription whose client went away.
	 */
	MSG_LOGS_SUBSCRIBE,
	MSG_LOGS_DATA,
	MSG_LOGS_END,
	MSG_LOGS_CANCEL,

	/* byspawn -> byproxy: a worker's process ended (struct msg_worker) */
	MSG_WORKER_EXITED,
	/*
	 * byspawn -> byproxy: a build activated a bundle, or a refresh or
	 * rollback changed its library (JSON {"app_id","bundle_id","kind":
	 * "deploy"|"refresh"}): the app's workers drain.
	 */
	MSG_BUILD_DONE,

	/* byctl <-> byd, on the admin socket */
	MSG_CTL_STATUS,		/* -> JSON result */
	MSG_CTL_RELOAD,		/* -> JSON result */
	MSG_CTL_LOG_LEVEL,	/* string level -> JSON result */
	MSG_CTL_RESULT,		/* JSON {"ok":true,...} or {"ok":false,"error":..} */
	MSG_CTL_STATE,		/* JSON state call, forwarded to bystate */
	MSG_CTL_SPAWN,		/* JSON spawn call, forwarded to byspawn */

	MSG_TYPE_MAX
};

const char	*msg_type_name(uint32_t);

struct msg_peer {
	int32_t		proc;		/* enum proc_id at the other end */
};

enum listen_kind {
	LISTEN_MAIN,
	LISTEN_MANAGEMENT,
};

struct msg_listen {
	int32_t		kind;		/* enum listen_kind */
};

struct msg_int {
	int32_t		value;
};

#define MSG_ID_LEN	37	/* a UUID and its NUL */

struct msg_bundle {
	char		app_id[MSG_ID_LEN];
	char		bundle_id[MSG_ID_LEN];
};

struct msg_bundle_result {
	int32_t		status;		/* 0 ok, else the HTTP status */
	int64_t		files;
	int64_t		bytes;
	char		message[256];	/* for the client when status != 0 */
	char		task_id[MSG_ID_LEN];	/* the unpack's task, or "" */
	int32_t		pinned;		/* the manifest pins packages */
};

struct msg_logs {
	char		app_id[MSG_ID_LEN];
	char		worker_id[MSG_ID_LEN];
	int32_t		follow;		/* stay for new lines until it exits */
};

struct msg_worker {
	char		worker_id[MSG_ID_LEN];
	char		app_id[MSG_ID_LEN];
	int32_t		stopped;	/* worker_stop asked for it */
	int32_t		code;		/* exit code, -1 killed */
	int32_t		signal;
	int32_t		oom;
};

/* A canonical lowercase UUID?  Ids become path names in byspawn. */
int		 msg_id_valid(const char *);

/*
 * A dispatch table row.  Each process has one table per peer; a message
 * whose type is in no table is fatal.
 */
struct msg_handler {
	uint32_t	type;
	void		(*fn)(struct msgchan *, struct msg *);
};

/* Helper side of the start-up protocol (common/proc.c). */
struct helper {
	enum proc_id	 id;
	int		 drop_privs;	/* switch to [server] user */
	int		 chroot;	/* chroot to helper_chroot_dir() */

	/* as root, after the configuration arrived */
	void		(*init)(void);
	/* after the privilege drop; returns the READY status (or NULL) */
	json_t		*(*start)(void);
	/* byd said MSG_GO */
	void		(*go)(void);
	/* byd said MSG_RELOAD; the new configuration is in proc_conf */
	void		(*reload)(const struct config *old);
	void		(*drain)(void);
	/* orderly exit requested; call helper_exit() when done */
	void		(*shutdown)(void);
	/* a listening socket from byd (byproxy) */
	void		(*listen_fd)(enum listen_kind, int fd);

	/* dispatch tables per peer, terminated by {0, NULL} */
	const struct msg_handler *handlers[PROC_MAX];
};

/* State every helper shares, filled by helper_main. */
extern struct event_base	*proc_base;
extern struct config		*proc_conf;
extern char			*proc_config_file;
extern struct msgchan		*proc_peers[PROC_MAX];
extern enum proc_id		 proc_self;
extern int			 proc_debug;

/* Run a helper; never returns. */
__attribute__((noreturn)) void helper_main(int argc, char **argv,
		    const struct helper *);
__attribute__((noreturn)) void helper_exit(int status);

/* Send to a peer: -1 (EPIPE) once it is gone; fatal if no such channel. */
int		 proc_send(enum proc_id, uint32_t type, uint32_t peerid,
		    int fd, const void *data, size_t len);

/* Generic dispatch: handles MSG_PING and the table; unknown = fatal. */
void		 proc_dispatch(struct msgchan *, struct msg *,
		    const struct msg_handler *);

/*
 * Privileges.  proc_drop_privs switches to user (setgroups, setresgid,
 * setresuid, verified), optionally chroots first, and sets
 * PR_SET_NO_NEW_PRIVS.  When not root it only sets no_new_privs and
 * returns 0.  Fatal on failure.
 */
void		 proc_drop_privs(const char *user, const char *chroot_dir);
/* Directory the helpers chroot into: dirname(control_socket)/empty. */
void		 proc_chroot_dir(const struct config *, char *, size_t);
/* Show role in ps. */
void		 proc_title_init(int argc, char **argv);
void		 proc_settitle(const char *);

/* Sets FD_CLOEXEC and O_NONBLOCK. */
int		 fd_nonblock_cloexec(int fd);

#endif /* BY_PROC_H */
