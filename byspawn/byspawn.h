/*
 * byspawn: the only process that starts programs.  It stays root so it
 * can put workers into their own uid, cgroup and bubblewrap sandbox.
 */

#ifndef BYSPAWN_H
#define BYSPAWN_H

#include "config.h"
#include "msg.h"
#include "proc.h"

/* spawn_preflight.c */
int	 preflight_bwrap(const char *bwrap_path, char *version, size_t len,
	    char *err, size_t errlen);
int	 spawn_run_capture(char *const argv[], char *out, size_t outlen,
	    int *status);

#endif /* BYSPAWN_H */
