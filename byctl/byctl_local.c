/*
 * byctl commands that run without byd.  None yet beyond "help"; the
 * seccomp profile export lands here with the workers.
 */

#include <stdio.h>
#include <string.h>

#include "byctl.h"

int
local_command(int argc, char **argv, int json, int *rc)
{
	if (strcmp(argv[0], "help") == 0) {
		fprintf(stdout, "byctl commands: status, reload, "
		    "log level LEVEL, token create|list|revoke, "
		    "user list|set; run byctl without arguments for the "
		    "usage, and see byctl(8)\n");
		*rc = 0;
		return 1;
	}
	return 0;
}
