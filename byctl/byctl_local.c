/*
 * byctl commands that run without byd: "help" and "seccomp export".
 */

#include <stdio.h>
#include <string.h>

#include "byctl.h"
#include "seccomp_profile.h"

/* byctl seccomp export FILE: the filter for [process] seccomp_profile */
static int
seccomp_export(int argc, char **argv)
{
	char	 err[512];

	if (argc != 3) {
		fprintf(stderr, "usage: byctl seccomp export FILE\n");
		return 1;
	}
	if (seccomp_profile_write(argv[2], err, sizeof(err)) == -1) {
		fprintf(stderr, "byctl: %s\n", err);
		return 1;
	}
	return 0;
}

int
local_command(int argc, char **argv, int json, int *rc)
{
	if (strcmp(argv[0], "help") == 0) {
		fprintf(stdout, "byctl commands: status, reload, "
		    "log level LEVEL, token create|list|revoke, "
		    "user list|set, seccomp export FILE (no byd needed); "
		    "run byctl without arguments for the usage, and see "
		    "byctl(8)\n");
		*rc = 0;
		return 1;
	}
	if (strcmp(argv[0], "seccomp") == 0 && argc >= 2 &&
	    strcmp(argv[1], "export") == 0) {
		*rc = seccomp_export(argc, argv);
		return 1;
	}
	return 0;
}
