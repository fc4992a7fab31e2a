/*
 * byd: the root monitor.  It parses the configuration, owns the listening
 * sockets and the admin socket, starts the helpers from one channel table
 * and supervises them.  It never touches HTTP, the database or workers.
 */

#ifndef BYD_H
#define BYD_H

#include <sys/types.h>

#include <limits.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "proc.h"

#define BYD_READY_TIMEOUT	60	/* seconds for every helper to start */

enum child_state {
	CHILD_NONE,
	CHILD_STARTING,
	CHILD_READY,
	CHILD_STOPPING,
	CHILD_EXITED,
};

struct child {
	enum proc_id	 id;
	pid_t		 pid;
	struct msgchan	*chan;		/* byd's end of the byd<->child pair */
	enum child_state state;
	time_t		 started;
	json_t		*status;	/* what MSG_READY said */
};

struct byd {
	struct config	*conf;
	char		*config_file;	/* as given, for reloads */
	char		 helperdir[PATH_MAX];
	int		 debug;
	int		 verbose;
	int		 root;		/* started as root */
	struct event_base *base;
	time_t		 started;

	struct child	 children[PROC_MAX];
	int		 listen_fd[2];	/* enum listen_kind; -1 when unused */

	int		 ready;		/* every helper said MSG_READY */
	int		 draining;
	int		 stopping;
	int		 exit_status;
	struct event	*ready_timer;
	struct event	*stop_timer;
};

extern struct byd *env;

/* byd.c */
int	 byd_reload(char *err, size_t errlen);
void	 byd_set_loglevel(enum log_level);
void	 byd_drain(void);
void	 byd_shutdown(int status);
json_t	*byd_status(void);

/* byd_child.c */
void	 child_start_all(void);
void	 child_send_all(uint32_t type, const void *data, size_t len);
void	 child_send_config(enum proc_id, uint32_t type);
void	 child_reaped(pid_t, int status);
void	 child_stop_next(void);
void	 child_kill_all(void);
int	 child_alive(enum proc_id);
const char *child_state_name(enum child_state);

/* byd_listen.c */
int	 listen_open(const char *hostport, char *err, size_t errlen);

/* byd_control.c */
void	 control_init(void);
void	 control_cleanup(void);
void	 control_state_result(struct msg *);

#endif /* BYD_H */
