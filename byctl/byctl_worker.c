/*
 * byctl show workers, byctl worker stop ID: byspawn's workers.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byctl.h"

int
cmd_show_workers(int argc, char **argv, const char *sock, int json)
{
	json_t		*d, *w, *ws;
	size_t		 i;

	if (argc > 1) {
		fprintf(stderr, "usage: byctl show workers [APP_ID]\n");
		return 1;
	}
	d = ctl_spawn(sock, "workers.list", argc == 1 ?
	    json_pack("{s:s}", "app_id", argv[0]) : NULL, json);
	if (d == NULL)
		return 1;
	ws = json_object_get(d, "workers");
	if (json) {
		json_dumpf(ws, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(d);
		return 0;
	}
	printf("%-36s %-36s %-9s %7s %6s %5s %12s\n", "WORKER", "APP", "STATE",
	    "PID", "UID", "PORT", "MEMORY");
	json_array_foreach(ws, i, w) {
		printf("%-36s %-36s %-9s %7lld %6lld %5lld %12lld\n",
		    json_string_value(json_object_get(w, "id")),
		    json_string_value(json_object_get(w, "app_id")),
		    json_string_value(json_object_get(w, "state")),
		    json_integer_value(json_object_get(w, "pid")),
		    json_integer_value(json_object_get(w, "uid")),
		    json_integer_value(json_object_get(w, "port")),
		    json_integer_value(json_object_get(json_object_get(w,
		    "usage"), "memory_bytes")));
	}
	json_decref(d);
	return 0;
}

int
cmd_worker_stop(int argc, char **argv, const char *sock, int json)
{
	json_t	*d;

	if (argc != 1) {
		fprintf(stderr, "usage: byctl worker stop ID\n");
		return 1;
	}
	if ((d = ctl_spawn(sock, "workers.stop", json_pack("{s:s}",
	    "worker_id", argv[0]), json)) == NULL)
		return 1;
	if (json) {
		json_dumpf(d, stdout, JSON_INDENT(2));
		putchar('\n');
	} else
		printf("stopping worker %s\n", argv[0]);
	json_decref(d);
	return 0;
}
