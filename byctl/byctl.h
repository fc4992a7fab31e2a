/*
 * byctl: admin socket client.
 */

#ifndef BYCTL_H
#define BYCTL_H

#include <jansson.h>

#include "msg.h"
#include "proc.h"

struct command {
	const char	*name;		/* words, e.g. "log level" */
	int		 minargs;
	int		 maxargs;
	uint32_t	 type;		/* request message */
	void		(*print)(json_t *);
	const char	*help;
	/* commands with options of their own; NULL: plain request */
	int		(*run)(int argc, char **argv, const char *sock,
			    int json);
	const char	*args;		/* for the usage text */
};

/* byctl.c */
json_t	*ctl_request(const char *sock, uint32_t type, const char *arg);
/*
 * Run a bystate op as the operator; prints the error and returns NULL
 * when it failed, else the answer's "data" (caller's reference).
 */
json_t	*ctl_state(const char *sock, const char *op, json_t *args, int json);
/* the same for byspawn's worker ops, and the general form */
json_t	*ctl_spawn(const char *sock, const char *op, json_t *args, int json);
json_t	*ctl_call(const char *sock, uint32_t type, const char *op,
	    json_t *args, int json);

/* byctl_worker.c */
int	 cmd_show_workers(int, char **, const char *, int);
int	 cmd_worker_stop(int, char **, const char *, int);

/* byctl_output.c */
void	 print_json(json_t *);
void	 print_status(json_t *);
void	 print_message(json_t *);
void	 print_loglevel(json_t *);

/* byctl_token.c, byctl_user.c: data commands (bystate ops) */
int	 cmd_token_create(int, char **, const char *, int);
int	 cmd_token_revoke(int, char **, const char *, int);
int	 cmd_token_list(int, char **, const char *, int);
int	 cmd_user_list(int, char **, const char *, int);
int	 cmd_user_set(int, char **, const char *, int);

/* byctl_local.c: commands that need no running byd */
int	 local_command(int argc, char **argv, int json, int *rc);

#endif /* BYCTL_H */
