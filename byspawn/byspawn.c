/*
 * byspawn: start-up checks and liveness.  Workers and build sandboxes
 * come with the workers issue; until then byspawn proves that the
 * sandbox tool works and answers pings.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byspawn.h"
#include "log.h"

static char	 bwrap_version[128];

static void
spawn_init(void)
{
	char	 err[512];

	if (preflight_bwrap(proc_conf->process.bwrap_path, bwrap_version,
	    sizeof(bwrap_version), err, sizeof(err)) == -1)
		fatalx("[process] bwrap_path: %s", err);
	log_info("sandbox: %s (%s)", bwrap_version,
	    proc_conf->process.bwrap_path);
}

static json_t *
spawn_start(void)
{
	return json_pack("{s:s}", "bwrap", bwrap_version);
}

static void
spawn_reload(const struct config *old)
{
	char	 err[512];

	if (strcmp(old->process.bwrap_path, proc_conf->process.bwrap_path) &&
	    preflight_bwrap(proc_conf->process.bwrap_path, bwrap_version,
	    sizeof(bwrap_version), err, sizeof(err)) == -1)
		log_warnx("[process] bwrap_path: %s", err);
}

static const struct helper spawn_helper = {
	.id = PROC_SPAWN,
	.drop_privs = 0,
	.init = spawn_init,
	.start = spawn_start,
	.reload = spawn_reload,
};

int
main(int argc, char *argv[])
{
	helper_main(argc, argv, &spawn_helper);
}
