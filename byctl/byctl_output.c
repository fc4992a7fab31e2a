/*
 * byctl: how answers are printed for people (--json prints them raw).
 */

#include <stdio.h>
#include <stdlib.h>

#include "byctl.h"

void
print_json(json_t *res)
{
	json_object_del(res, "ok");
	json_dumpf(res, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	putchar('\n');
}

static void
format_uptime(json_int_t s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%lldd%lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh%lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%lldm%llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%llds", s);
}

void
print_status(json_t *res)
{
	json_t		*procs, *p, *sv;
	size_t		 i;
	char		 up[32];

	printf("byd %s\n", json_string_value(json_object_get(res,
	    "version")));
	printf("config file:    %s\n", json_string_value(json_object_get(res,
	    "config_file")));
	sv = json_object_get(res, "schema_version");
	if (json_is_integer(sv))
		printf("schema version: %lld\n", json_integer_value(sv));
	else
		printf("schema version: unknown\n");
	sv = json_object_get(res, "database");
	printf("database:       %s\n", json_is_string(sv) ?
	    json_string_value(sv) : "unknown");
	printf("draining:       %s\n\n",
	    json_is_true(json_object_get(res, "draining")) ? "yes" : "no");
	printf("%-9s %-8s %7s %-12s %9s %s\n", "PROCESS", "ROLE", "PID",
	    "USER", "UPTIME", "STATE");
	procs = json_object_get(res, "processes");
	json_array_foreach(procs, i, p) {
		format_uptime(json_integer_value(json_object_get(p, "uptime")),
		    up, sizeof(up));
		printf("%-9s %-8s %7lld %-12s %9s %s\n",
		    json_string_value(json_object_get(p, "name")),
		    json_string_value(json_object_get(p, "role")),
		    json_integer_value(json_object_get(p, "pid")),
		    json_string_value(json_object_get(p, "user")), up,
		    json_string_value(json_object_get(p, "state")));
	}
}

void
print_message(json_t *res)
{
	const char	*m = json_string_value(json_object_get(res, "message"));

	if (m != NULL)
		printf("%s\n", m);
}

void
print_loglevel(json_t *res)
{
	printf("log level: %s\n", json_string_value(json_object_get(res,
	    "level")));
}
