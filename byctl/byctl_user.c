/*
 * byctl user list|set: the users the server knows, their roles and
 * whether they may log in.  A change holds from the user's next request.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byctl.h"

#define SET_ARGS	"USER [--role admin|publisher|viewer] " \
			"[--active true|false]"

static const char *
jstr(json_t *o, const char *k)
{
	const char	*s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

static void
print_users(json_t *list)
{
	json_t		*u;
	size_t		 i;
	int		 w = 3;

	json_array_foreach(list, i, u)
		if ((int)strlen(jstr(u, "sub")) > w)
			w = (int)strlen(jstr(u, "sub"));
	printf("%-*s  %-9s  %-6s  %s\n", w, "SUB", "ROLE", "ACTIVE",
	    "LAST LOGIN");
	json_array_foreach(list, i, u)
		printf("%-*s  %-9s  %-6s  %s\n", w, jstr(u, "sub"),
		    jstr(u, "role"), json_is_true(json_object_get(u, "active")) ?
		    "yes" : "no", jstr(u, "last_login"));
}

int
cmd_user_list(int argc, char **argv, const char *sock, int json)
{
	json_t	*d;

	if (argc != 0) {
		fprintf(stderr, "usage: byctl user list\n");
		return 1;
	}
	if ((d = ctl_state(sock, "users.list", NULL, json)) == NULL)
		return 1;
	if (json)
		print_json(d);
	else
		print_users(d);
	json_decref(d);
	return 0;
}

static int
set_usage(void)
{
	fprintf(stderr, "usage: byctl user set %s\n", SET_ARGS);
	return 1;
}

int
cmd_user_set(int argc, char **argv, const char *sock, int json)
{
	static const struct option longopts[] = {
		{ "role",	required_argument,	NULL,	'r' },
		{ "active",	required_argument,	NULL,	'a' },
		{ NULL,		0,			NULL,	0 }
	};
	json_t	*body, *d;
	int	 ch;

	body = json_object();
	optind = 0;
	while ((ch = getopt_long(argc + 1, argv - 1, "r:a:", longopts,
	    NULL)) != -1) {
		if (ch == 'r')
			json_object_set_new(body, "role", json_string(optarg));
		else if (ch == 'a' && (strcmp(optarg, "true") == 0 ||
		    strcmp(optarg, "false") == 0))
			json_object_set_new(body, "active",
			    json_boolean(strcmp(optarg, "true") == 0));
		else {
			json_decref(body);
			return set_usage();
		}
	}
	if (argc - (optind - 1) != 1 || json_object_size(body) == 0) {
		json_decref(body);
		return set_usage();
	}
	if ((d = ctl_state(sock, "users.update", json_pack("{s:s s:o}",
	    "sub", argv[optind - 1], "body", body), json)) == NULL)
		return 1;
	if (json)
		print_json(d);
	else
		printf("%s: role %s, active %s\n", jstr(d, "sub"),
		    jstr(d, "role"), json_is_true(json_object_get(d,
		    "active")) ? "yes" : "no");
	json_decref(d);
	return 0;
}
