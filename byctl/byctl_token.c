/*
 * byctl token create|revoke|list: personal access tokens, minted by the
 * operator on the admin socket.  The token is shown once, alone on the
 * last line of standard output, so scripts can take it with tail -n 1.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "byctl.h"

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/*
 * getopt_long over a command's own arguments (argv[0] is the first
 * argument after the command words, argv[-1] the last command word).
 */
static int
cmd_getopt(int argc, char **argv, const char *opts,
    const struct option *longopts)
{
	return getopt_long(argc + 1, argv - 1, opts, longopts, NULL);
}

static int
cmd_usage(const char *cmd, const char *args)
{
	fprintf(stderr, "usage: byctl %s %s\n", cmd, args);
	return 1;
}

#define CREATE_ARGS	"USER [--role admin|publisher|viewer] [--name NAME] " \
			"[--expires 90d|24h|30m | --expires-at TIME]"

static void
print_created(json_t *d, int json)
{
	json_t	*out;

	if (json) {
		out = json_pack("{s:O s:O s:O s:O s:O s:O}",
		    "id", json_object_get(d, "id"),
		    "name", json_object_get(d, "name"),
		    "token", json_object_get(d, "token"),
		    "created_at", json_object_get(d, "created_at"),
		    "expires_at", json_object_get(d, "expires_at"),
		    "user", json_object_get(d, "user"));
		print_json(out);
		json_decref(out);
		return;
	}
	if (json_is_true(json_object_get(d, "user_created")))
		fprintf(stderr, "byctl: created user %s with role %s\n",
		    jstr(d, "user"), jstr(d, "role"));
	else if (jstr(d, "previous_role") != NULL)
		fprintf(stderr, "byctl: changed the role of %s from %s to %s\n",
		    jstr(d, "user"), jstr(d, "previous_role"), jstr(d, "role"));
	fprintf(stderr, "byctl: token %s \"%s\" for %s, expires %s; it is "
	    "shown only this once:\n", jstr(d, "id"), jstr(d, "name"),
	    jstr(d, "user"), jstr(d, "expires_at") ? jstr(d, "expires_at") :
	    "never");
	fflush(stderr);
	printf("%s\n", jstr(d, "token"));
}

int
cmd_token_create(int argc, char **argv, const char *sock, int json)
{
	static const struct option longopts[] = {
		{ "role",	required_argument,	NULL,	'r' },
		{ "name",	required_argument,	NULL,	'n' },
		{ "expires",	required_argument,	NULL,	'e' },
		{ "expires-at",	required_argument,	NULL,	'a' },
		{ NULL,		0,			NULL,	0 }
	};
	json_t	*args, *d;
	int	 ch;

	args = json_object();
	optind = 0;
	while ((ch = cmd_getopt(argc, argv, "r:n:e:a:", longopts)) != -1) {
		switch (ch) {
		case 'r':
			json_object_set_new(args, "role", json_string(optarg));
			break;
		case 'n':
			json_object_set_new(args, "name", json_string(optarg));
			break;
		case 'e':
			json_object_set_new(args, "expires_in",
			    json_string(optarg));
			break;
		case 'a':
			json_object_set_new(args, "expires_at",
			    json_string(optarg));
			break;
		default:
			json_decref(args);
			return cmd_usage("token create", CREATE_ARGS);
		}
	}
	/* optind counts argv[-1] as the program name */
	if (argc - (optind - 1) != 1) {
		json_decref(args);
		return cmd_usage("token create", CREATE_ARGS);
	}
	json_object_set_new(args, "user", json_string(argv[optind - 1]));
	if ((d = ctl_state(sock, "tokens.create", args, json)) == NULL)
		return 1;
	print_created(d, json);
	json_decref(d);
	return 0;
}

int
cmd_token_revoke(int argc, char **argv, const char *sock, int json)
{
	json_t	*d;

	if (argc != 1)
		return cmd_usage("token revoke", "ID");
	if ((d = ctl_state(sock, "tokens.revoke", json_pack("{s:s}", "id",
	    argv[0]), json)) == NULL)
		return 1;
	if (json)
		print_json(d);
	else
		printf("token %s revoked\n", argv[0]);
	json_decref(d);
	return 0;
}

static const char *
token_state(json_t *t, const char *now)
{
	const char	*exp = jstr(t, "expires_at");

	if (json_is_true(json_object_get(t, "revoked")))
		return "revoked";
	/* stored times are RFC 3339 UTC to the second: text order works */
	if (exp != NULL && strcmp(exp, now) < 0)
		return "expired";
	return "active";
}

static int
width(json_t *list, const char *key, int min)
{
	json_t		*t;
	size_t		 i;
	const char	*s;
	int		 w = min;

	json_array_foreach(list, i, t)
		if ((s = jstr(t, key)) != NULL && (int)strlen(s) > w)
			w = (int)strlen(s);
	return w;
}

static void
print_tokens(json_t *list)
{
	json_t		*t;
	size_t		 i;
	char		 now[32];
	time_t		 tt = time(NULL);
	struct tm	 tm;
	int		 wu, wn;

	gmtime_r(&tt, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	wu = width(list, "user_sub", 4);
	wn = width(list, "name", 4);
	printf("%-36s  %-*s  %-*s  %-20s  %-20s  %-20s  %s\n", "ID", wu,
	    "USER", wn, "NAME", "CREATED", "EXPIRES", "LAST USED", "STATE");
	json_array_foreach(list, i, t)
		printf("%-36s  %-*s  %-*s  %-20s  %-20s  %-20s  %s\n",
		    jstr(t, "id"), wu, jstr(t, "user_sub"), wn, jstr(t, "name"),
		    jstr(t, "created_at"), jstr(t, "expires_at") ?
		    jstr(t, "expires_at") : "never", jstr(t, "last_used_at") ?
		    jstr(t, "last_used_at") : "-", token_state(t, now));
}

int
cmd_token_list(int argc, char **argv, const char *sock, int json)
{
	static const struct option longopts[] = {
		{ "all",	no_argument,	NULL,	'a' },
		{ NULL,		0,		NULL,	0 }
	};
	json_t	*args, *d;
	int	 ch, all = 0, rest;

	optind = 0;
	while ((ch = cmd_getopt(argc, argv, "a", longopts)) != -1) {
		if (ch != 'a')
			return cmd_usage("token list", "[USER] [--all]");
		all = 1;
	}
	if ((rest = argc - (optind - 1)) > 1)
		return cmd_usage("token list", "[USER] [--all]");
	args = json_pack("{s:b}", "all", all);
	if (rest == 1)
		json_object_set_new(args, "user", json_string(argv[optind -
		    1]));
	if ((d = ctl_state(sock, "tokens.list", args, json)) == NULL)
		return 1;
	if (json)
		print_json(d);
	else
		print_tokens(d);
	json_decref(d);
	return 0;
}
