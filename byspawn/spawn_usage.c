/*
 * Resource use of a worker, from its cgroup counters: they cover every
 * process and thread of the sandbox, which /proc sums would miss.
 */

#include <sys/types.h>

#include <string.h>

#include "byspawn.h"

static void
usage_memory(const struct worker *w, struct worker_usage *u)
{
	const char	*dir = w->cg.dir[CG_MEMORY];

	/* v2 names first; only one of the two exists */
	if (cgroup_read_key(dir, "memory.current", NULL,
	    &u->memory_bytes) == 0 ||
	    cgroup_read_key(dir, "memory.usage_in_bytes", NULL,
	    &u->memory_bytes) == 0)
		u->have_memory = 1;
}

static void
usage_cpu(const struct worker *w, struct worker_usage *u)
{
	uint64_t	 ns;

	/* a v2 group counts CPU time even without the cpu controller */
	if (cgroup_read_key(w->cg.dir[CG_GROUP], "cpu.stat", "usage_usec",
	    &u->cpu_usec) == 0 ||
	    cgroup_read_key(w->cg.dir[CG_CPU], "cpu.stat", "usage_usec",
	    &u->cpu_usec) == 0)
		u->have_cpu = 1;
	else if (cgroup_read_key(w->cg.dir[CG_CPUACCT], "cpuacct.usage",
	    NULL, &ns) == 0) {
		u->cpu_usec = ns / 1000;
		u->have_cpu = 1;
	}
	if (cgroup_read_key(w->cg.dir[CG_CPU], "cpu.stat", "nr_throttled",
	    &u->nr_throttled) == 0)
		u->have_throttle = 1;
}

static void
usage_pids(const struct worker *w, struct worker_usage *u)
{
	const char	*dir = w->cg.dir[CG_PIDS];

	if (cgroup_read_key(dir, "pids.current", NULL, &u->pids) == 0)
		u->have_pids = 1;
	cgroup_read_key(dir, "pids.events", "max", &u->pids_refused);
}

/* Zeroes with have_* 0 for what cannot be measured (or after exit). */
void
worker_usage(const struct worker *w, struct worker_usage *u)
{
	memset(u, 0, sizeof(*u));
	if (w->state == WORKER_EXITED)
		return;
	usage_memory(w, u);
	usage_cpu(w, u);
	usage_pids(w, u);
	u->oom_kills = cgroup_oom_kills(w);
}
