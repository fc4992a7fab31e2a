/*
 * bystate: owns the database.  Started by byd, runs as the [server] user
 * with no network listener; the other processes reach the data only
 * through messages to it.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "proc.h"
#include "bystate.h"

static void	 state_init(void);
static json_t	*state_start(void);
static void	 state_shutdown(void);

static const struct helper state_helper = {
	.id = PROC_STATE,
	.drop_privs = 1,
	/* the database lives somewhere in the file system: no chroot */
	.chroot = 0,
	.init = state_init,
	.start = state_start,
	.shutdown = state_shutdown,
	.handlers = {
		[PROC_BYD] = state_byd_handlers,
		[PROC_PROXY] = state_proxy_handlers,
		[PROC_SPAWN] = state_spawn_handlers,
	},
};

/*
 * Still root: make the database directory and hand the files to the user
 * we are about to become, who must create the -wal and -shm files.
 */
static void
state_init(void)
{
	struct passwd	*pw;
	enum db_driver	 d;
	char		 err[1024];
	uid_t		 uid = 0;
	gid_t		 gid = 0;
	int		 root = geteuid() == 0;

	if (db_driver_parse(proc_conf->database.driver, &d) == -1)
		fatalx("[database] driver: unknown driver \"%s\"",
		    proc_conf->database.driver != NULL ?
		    proc_conf->database.driver : "");
	if (root) {
		if ((pw = getpwnam(proc_conf->server.user)) == NULL)
			fatalx("[server] user: unknown user %s",
			    proc_conf->server.user);
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (proc_conf->audit.present && audit_prepare(proc_conf->audit.path,
	    uid, gid, root, err, sizeof(err)) == -1)
		fatalx("[audit] path: %s", err);
	if (d != DB_SQLITE)
		return;
	if (db_prepare(d, proc_conf->database.path, uid, gid, root, err,
	    sizeof(err)) == -1)
		fatalx("[database] path: %s", err);
}

static json_t *
state_start(void)
{
	json_t		*status;
	const char	*target;
	char		 err[1024];

	/* nothing we create is anyone else's business */
	umask(077);
	target = strcmp(proc_conf->database.driver, "sqlite") == 0 ?
	    proc_conf->database.path : proc_conf->database.url;
	/* messages name the target as db_open redacted it (no password) */
	if (state_open(proc_conf->database.driver, target, err,
	    sizeof(err)) == -1)
		fatalx("database: %s", err);
	/* our workers died with the previous run: so did their sessions */
	sessions_end_stale(state_handle());
	/* and so did their dependency builds */
	bundles_fail_unfinished(state_handle());
	app_sweep_start();
	if (proc_conf->audit.present && audit_open(proc_conf->audit.path, err,
	    sizeof(err)) == -1)
		fatalx("[audit] path: %s", err);
	log_info("database ready (%s %s), schema version %d",
	    proc_conf->database.driver, state_handle()->target,
	    state_schema_version());
	status = json_pack("{s:i, s:s}", "schema_version",
	    state_schema_version(), "driver", proc_conf->database.driver);
	if (status == NULL)
		fatalx("json_pack");
	return status;
}

static void
state_shutdown(void)
{
	audit_close();
	state_close();
	helper_exit(0);
}

int
main(int argc, char **argv)
{
	helper_main(argc, argv, &state_helper);
}
