/*
 * byspawn: start-up checks, liveness, and the worker machinery
 * (spawn_*.c) that the API drives.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byspawn.h"
#include "log.h"

/* Longest wait for workers to stop on SIGTERM before they are killed. */
#define SHUTDOWN_GRACE_MS	5000

static char	 bwrap_version[128];

static void
spawn_init(void)
{
	char	 err[512], name[64];

	if (preflight_bwrap(proc_conf->process.bwrap_path, bwrap_version,
	    sizeof(bwrap_version), err, sizeof(err)) == -1)
		fatalx("[process] bwrap_path: %s", err);
	log_info("sandbox: %s (%s)", bwrap_version,
	    proc_conf->process.bwrap_path);
	/* cgroups, orphans of a crashed run, the seccomp profile */
	workers_cgroup_name(proc_conf, name, sizeof(name));
	if (workers_init(name, err, sizeof(err)) == -1)
		fatalx("workers: %s", err);
	if (bundle_storage_init(err, sizeof(err)) == -1)
		fatalx("[storage] bundle_server_path: %s", err);
	builds_init();
}

static json_t *
spawn_start(void)
{
	return json_pack("{s:s,s:o}", "bwrap", bwrap_version,
	    "workers", workers_status());
}

static void
spawn_stopped(void *arg)
{
	logsub_free();
	builds_free();
	tasks_free();
	workers_free();
	/* empty now; a byd with a temporary control socket leaves no trace */
	cgroup_remove_base();
	helper_exit(0);
}

static void
spawn_shutdown(void)
{
	int64_t	 grace = proc_conf->server.shutdown_timeout / 2;

	/* leave byd time to see us exit within its own timeout */
	if (grace > SHUTDOWN_GRACE_MS || grace <= 0)
		grace = SHUTDOWN_GRACE_MS;
	bundle_shutdown();
	builds_shutdown();
	workers_shutdown((int)grace, spawn_stopped, NULL);
}

static void
spawn_reload(const struct config *old)
{
	char	 err[512];

	if (strcmp(old->process.bwrap_path, proc_conf->process.bwrap_path) &&
	    preflight_bwrap(proc_conf->process.bwrap_path, bwrap_version,
	    sizeof(bwrap_version), err, sizeof(err)) == -1)
		log_warnx("[process] bwrap_path: %s", err);
	builds_reload();
}

static const struct msg_handler spawn_proxy_handlers[] = {
	{ MSG_BUNDLE_OPEN,	spawn_bundle_dispatch },
	{ MSG_BUNDLE_UNPACK,	spawn_bundle_dispatch },
	{ MSG_BUNDLE_DISCARD,	spawn_bundle_dispatch },
	{ MSG_SPAWN_CALL,	spawn_call },
	{ MSG_LOGS_SUBSCRIBE,	logsub_dispatch },
	{ MSG_LOGS_CANCEL,	logsub_dispatch },
	{ 0,			NULL }
};

static const struct msg_handler spawn_state_handlers[] = {
	{ MSG_STATE_RESULT,	spawn_state_result },
	{ 0,			NULL }
};

static const struct msg_handler spawn_byd_handlers[] = {
	{ MSG_SPAWN_CALL,	spawn_call },
	{ 0,			NULL }
};

static const struct helper spawn_helper = {
	.id = PROC_SPAWN,
	.drop_privs = 0,
	.init = spawn_init,
	.start = spawn_start,
	.reload = spawn_reload,
	.shutdown = spawn_shutdown,
	.handlers = {
		[PROC_PROXY] = spawn_proxy_handlers,
		[PROC_BYD] = spawn_byd_handlers,
		[PROC_STATE] = spawn_state_handlers,
	},
};

int
main(int argc, char *argv[])
{
	helper_main(argc, argv, &spawn_helper);
}
