/*
 * byctl: the operator's client for byd's admin socket.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "byctl.h"
#include "log.h"

#define DEFAULT_SOCKET	"/run/blockyard/byd.sock"

static const struct command commands[] = {
	{ "status",	0, 0, MSG_CTL_STATUS,	 print_status,
	    "show byd's processes, configuration and schema version",
	    NULL, "" },
	{ "reload",	0, 0, MSG_CTL_RELOAD,	 print_message,
	    "re-read the configuration file", NULL, "" },
	{ "log level",	1, 1, MSG_CTL_LOG_LEVEL, print_loglevel,
	    "set the log level: trace, debug, info, warn, error", NULL,
	    "LEVEL" },
	{ "token create", 0, 0, MSG_CTL_STATE, NULL,
	    "mint a personal access token, creating the user if needed",
	    cmd_token_create, "USER [--role admin|publisher|viewer] "
	    "[--name NAME] [--expires 90d|24h|30m | --expires-at TIME]" },
	{ "token list",	0, 0, MSG_CTL_STATE, NULL,
	    "list live tokens (--all: revoked ones too), never the secrets",
	    cmd_token_list, "[USER] [--all]" },
	{ "token revoke", 0, 0, MSG_CTL_STATE, NULL,
	    "revoke a token at once", cmd_token_revoke, "ID" },
	{ "user list",	0, 0, MSG_CTL_STATE, NULL,
	    "list users: sub, role, active, last login", cmd_user_list, "" },
	{ "user set",	0, 0, MSG_CTL_STATE, NULL,
	    "change a user's role or deactivate it (from its next request)",
	    cmd_user_set, "USER [--role ROLE] [--active true|false]" },
	{ "show workers", 0, 0, MSG_CTL_SPAWN, NULL,
	    "list the running and recently ended workers", cmd_show_workers,
	    "[APP_ID]" },
	{ "worker stop", 0, 0, MSG_CTL_SPAWN, NULL,
	    "stop a worker (SIGTERM, then SIGKILL after 5 s)",
	    cmd_worker_stop, "ID" },
};

static __attribute__((noreturn)) void
usage(void)
{
	size_t	 i;

	fprintf(stderr, "usage: byctl [--json] [-s socket] command "
	    "[argument ...]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "  %s %s\n      %s\n", commands[i].name,
		    commands[i].args, commands[i].help);
	exit(1);
}

/* Match argv against the command words; returns the argument count used. */
static const struct command *
match_command(int argc, char **argv, int *used)
{
	char	 words[128];
	size_t	 i;
	int	 n;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		words[0] = '\0';
		for (n = 0; n < argc && n < 3; n++) {
			if (n > 0)
				strlcat(words, " ", sizeof(words));
			strlcat(words, argv[n], sizeof(words));
			if (strcmp(words, commands[i].name) == 0) {
				*used = n + 1;
				return &commands[i];
			}
		}
	}
	return NULL;
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un	 sun;
	int			 s;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		fprintf(stderr, "byctl: %s: socket path too long\n", path);
		exit(1);
	}
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		perror("byctl: socket");
		exit(1);
	}
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == EACCES || errno == EPERM)
			fprintf(stderr, "byctl: %s: permission denied: run "
			    "byctl as root or as a member of byd's group "
			    "([server] user)\n", path);
		else if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "byctl: %s: %s: is byd running?\n",
			    path, strerror(errno));
		else
			fprintf(stderr, "byctl: %s: %s\n", path,
			    strerror(errno));
		exit(1);
	}
	return s;
}

json_t *
ctl_request(const char *path, uint32_t type, const char *arg)
{
	struct msgchan	 c;
	struct msg	 m;
	json_t		*res;
	json_error_t	 jerr;
	uint32_t	 id = msg_reqid();

	msgchan_init(&c, ctl_connect(path), PROC_BYD, "byd");
	msg_compose(&c, type, id, -1, arg, arg ? strlen(arg) : 0);
	if (msg_flush_all(&c) == -1) {
		perror("byctl: write");
		exit(1);
	}
	switch (msg_recv_blocking(&c, &m)) {
	case 1:
		break;
	case 0:
		fprintf(stderr, "byctl: byd closed the connection (refused: "
		    "not root or in byd's group?)\n");
		exit(1);
	default:
		perror("byctl: read");
		exit(1);
	}
	if (m.hdr.type != MSG_CTL_RESULT || m.hdr.peerid != id) {
		fprintf(stderr, "byctl: unexpected answer from byd\n");
		exit(1);
	}
	if ((res = json_loadb(m.data, m.datalen, 0, &jerr)) == NULL) {
		fprintf(stderr, "byctl: bad answer from byd: %s\n", jerr.text);
		exit(1);
	}
	msg_free(&m);
	msgchan_clear(&c);
	return res;
}

json_t *
ctl_state(const char *sock, const char *op, json_t *args, int json)
{
	return ctl_call(sock, MSG_CTL_STATE, op, args, json);
}

json_t *
ctl_spawn(const char *sock, const char *op, json_t *args, int json)
{
	return ctl_call(sock, MSG_CTL_SPAWN, op, args, json);
}

json_t *
ctl_call(const char *sock, uint32_t type, const char *op, json_t *args,
    int json)
{
	json_t	*req, *res, *data;
	char	*s;

	req = json_pack("{s:s s:o}", "op", op, "args",
	    args != NULL ? args : json_object());
	if (req == NULL || (s = json_dumps(req, JSON_COMPACT)) == NULL) {
		fprintf(stderr, "byctl: cannot encode the request\n");
		exit(1);
	}
	json_decref(req);
	res = ctl_request(sock, type, s);
	free(s);
	if (!json_is_true(json_object_get(res, "ok"))) {
		fprintf(stderr, "byctl: %s\n",
		    json_string_value(json_object_get(res, "error")) ?
		    json_string_value(json_object_get(res, "error")) :
		    "request failed");
		if (json)
			print_json(res);
		json_decref(res);
		return NULL;
	}
	data = json_incref(json_object_get(res, "data"));
	json_decref(res);
	return data != NULL ? data : json_null();
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json",	no_argument,		NULL,	'j' },
		{ "socket",	required_argument,	NULL,	's' },
		{ "help",	no_argument,		NULL,	'h' },
		{ NULL,		0,			NULL,	0 }
	};
	const struct command	*cmd;
	const char		*sock = DEFAULT_SOCKET, *arg = NULL;
	json_t			*res;
	int			 ch, json = 0, used, rc;

	if (getenv("BLOCKYARD_SERVER_CONTROL_SOCKET") != NULL)
		sock = getenv("BLOCKYARD_SERVER_CONTROL_SOCKET");
	while ((ch = getopt_long(argc, argv, "+js:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 's':
			sock = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();
	if (local_command(argc, argv, json, &rc))
		return rc;
	if ((cmd = match_command(argc, argv, &used)) == NULL) {
		fprintf(stderr, "byctl: unknown command: %s\n", argv[0]);
		usage();
	}
	if (cmd->run != NULL)
		return cmd->run(argc - used, argv + used, sock, json);
	if (argc - used < cmd->minargs || argc - used > cmd->maxargs)
		usage();
	if (cmd->minargs > 0)
		arg = argv[used];

	res = ctl_request(sock, cmd->type, arg);
	if (!json_is_true(json_object_get(res, "ok"))) {
		fprintf(stderr, "byctl: %s\n",
		    json_string_value(json_object_get(res, "error")) ?
		    json_string_value(json_object_get(res, "error")) :
		    "request failed");
		if (json)
			print_json(res);
		json_decref(res);
		return 1;
	}
	if (json)
		print_json(res);
	else
		cmd->print(res);
	json_decref(res);
	return 0;
}
