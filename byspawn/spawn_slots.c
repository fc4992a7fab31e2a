/*
 * Worker slots: a host uid from [process] worker_uid_range_* and a
 * localhost port from port_range_*.  A slot is held from spawn until the
 * worker's cgroup is empty, so no two live workers ever share one.  The
 * search starts after the last slot handed out, so a slot just released
 * (whose port a client may still be talking to) is reused last.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/sys/tree.h>

#include "byspawn.h"
#include "log.h"

struct slot {
	RB_ENTRY(slot)	 entry;
	int		 value;
};

static int	slot_cmp(struct slot *, struct slot *);

static int
slot_cmp(struct slot *a, struct slot *b)
{
	return a->value < b->value ? -1 : a->value > b->value;
}

RB_HEAD(slot_tree, slot);
RB_PROTOTYPE(slot_tree, slot, entry, slot_cmp);
RB_GENERATE(slot_tree, slot, entry, slot_cmp);

struct slot_pool {
	struct slot_tree held;
	int		 last;		/* last handed out, 0 none */
};

static struct slot_pool	 uids = { RB_INITIALIZER(&uids.held), 0 };
static struct slot_pool	 ports = { RB_INITIALIZER(&ports.held), 0 };

static int
pool_held(struct slot_pool *p, int v)
{
	struct slot	 key;

	key.value = v;
	return RB_FIND(slot_tree, &p->held, &key) != NULL;
}

static void
pool_take(struct slot_pool *p, int v)
{
	struct slot	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal("calloc");
	s->value = v;
	RB_INSERT(slot_tree, &p->held, s);
	p->last = v;
}

static void
pool_release(struct slot_pool *p, int v)
{
	struct slot	 key, *s;

	key.value = v;
	if ((s = RB_FIND(slot_tree, &p->held, &key)) == NULL)
		return;
	RB_REMOVE(slot_tree, &p->held, s);
	free(s);
}

/* First value of lo..hi after p->last that is free and passes ok(). */
static int
pool_alloc(struct slot_pool *p, int lo, int hi, int (*ok)(int), int *out)
{
	long	 n = (long)hi - lo + 1, i;
	int	 v, start;

	start = (p->last >= lo && p->last < hi) ? p->last + 1 : lo;
	for (i = 0; i < n; i++) {
		v = (int)(lo + ((long)start - lo + i) % n);
		if (pool_held(p, v) || (ok != NULL && !ok(v)))
			continue;
		pool_take(p, v);
		*out = v;
		return 0;
	}
	return -1;
}

/*
 * Is 127.0.0.1:port free?  With SO_REUSEADDR, as httpuv binds, so that
 * connections in TIME_WAIT from earlier probes do not count.
 */
int
slot_port_bindable(int port)
{
	struct sockaddr_in	 sin;
	int			 fd, on = 1, r;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	r = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return r == 0;
}

int
slot_uid_alloc(int *uid, char *err, size_t errlen)
{
	if (pool_alloc(&uids, proc_conf->process.worker_uid_range_start,
	    proc_conf->process.worker_uid_range_end, NULL, uid) == -1) {
		snprintf(err, errlen, "no free worker uid in %d-%d",
		    proc_conf->process.worker_uid_range_start,
		    proc_conf->process.worker_uid_range_end);
		return -1;
	}
	return 0;
}

int
slot_port_alloc(int *port, char *err, size_t errlen)
{
	if (pool_alloc(&ports, proc_conf->process.port_range_start,
	    proc_conf->process.port_range_end, slot_port_bindable,
	    port) == -1) {
		snprintf(err, errlen, "no free port in %d-%d",
		    proc_conf->process.port_range_start,
		    proc_conf->process.port_range_end);
		return -1;
	}
	return 0;
}

void
slot_uid_release(int uid)
{
	pool_release(&uids, uid);
}

void
slot_port_release(int port)
{
	pool_release(&ports, port);
}

int
slot_uid_held(int uid)
{
	return pool_held(&uids, uid);
}

int
slot_port_held(int port)
{
	return pool_held(&ports, port);
}

static void
pool_free(struct slot_pool *p)
{
	struct slot	*s, *next;

	RB_FOREACH_SAFE(s, slot_tree, &p->held, next) {
		RB_REMOVE(slot_tree, &p->held, s);
		free(s);
	}
	p->last = 0;
}

void
slots_free(void)
{
	pool_free(&uids);
	pool_free(&ports);
}

static int
worker_uid(long uid)
{
	return uid >= proc_conf->process.worker_uid_range_start &&
	    uid <= proc_conf->process.worker_uid_range_end;
}

/* A live process whose real, effective or saved uid is a worker's? */
static int
runs_as_worker(const char *pid)
{
	char	 path[64], line[256], state;
	FILE	*f;
	long	 r, e, s;
	int	 found = 0;

	snprintf(path, sizeof(path), "/proc/%s/status", pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		/* a zombie is dead already; only its parent can reap it */
		if (sscanf(line, "State: %c", &state) == 1 && state == 'Z')
			break;
		if (sscanf(line, "Uid: %ld %ld %ld", &r, &e, &s) != 3)
			continue;
		found = worker_uid(r) || worker_uid(e) || worker_uid(s);
		break;
	}
	fclose(f);
	return found;
}

static int
kill_worker_uids(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]) ||
		    !runs_as_worker(de->d_name))
			continue;
		if (kill((pid_t)atol(de->d_name), SIGKILL) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * At start-up no worker of ours runs yet, so any process with a worker
 * uid is a leftover (or an intruder): a new worker given that uid could
 * signal or ptrace it.  Repeat while some are found, as one may have
 * forked in between.
 */
void
slots_kill_strays(void)
{
	int	 i, n, total = 0;

	if (geteuid() != 0)
		return;
	for (i = 0; i < 10 && (n = kill_worker_uids()) > 0; i++) {
		total += n;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	if (total > 0)
		log_warnx("slots: killed %d process%s left running as a worker "
		    "uid (%d-%d)", total, total == 1 ? "" : "es",
		    proc_conf->process.worker_uid_range_start,
		    proc_conf->process.worker_uid_range_end);
}
