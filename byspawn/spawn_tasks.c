/*
 * Tasks: the record of work byspawn does for a deploy (unpacking, the
 * dependency build) or a refresh, with its log, kept in memory for the
 * reference's GET /api/v1/tasks/{id} and .../logs.  Tasks are lost on
 * restart, as in the reference; the newest TASKS_MAX are kept.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "log.h"
#include "uuid.h"
#include "byspawn.h"

#define TASKS_MAX	1000
#define TASK_LINES_MAX	50000
#define TASK_LINES_PAGE	1000	/* lines per answer, each < 1 KiB */

struct task {
	TAILQ_ENTRY(task)	 entry;
	char			 id[UUID_LEN];
	char			 app_id[MSG_ID_LEN];
	char			 bundle_id[MSG_ID_LEN];	/* a deploy's */
	char			 created_at[32];
	enum task_state		 state;
	json_t			*lines;		/* array of strings */
};

static TAILQ_HEAD(, task) tasks = TAILQ_HEAD_INITIALIZER(tasks);
static size_t		 ntasks;

static void
task_free(struct task *t)
{
	TAILQ_REMOVE(&tasks, t, entry);
	json_decref(t->lines);
	free(t);
	ntasks--;
}

struct task *
task_new(const char *app_id)
{
	struct task	*t, *old;
	struct tm	 tm;
	time_t		 now = time(NULL);

	/* a running task is held by its build: the oldest ended one goes */
	if (ntasks >= TASKS_MAX) {
		TAILQ_FOREACH(old, &tasks, entry)
			if (old->state != TASK_RUNNING)
				break;
		if (old != NULL)
			task_free(old);
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("calloc");
	uuid_v4(t->id, sizeof(t->id));
	strlcpy(t->app_id, app_id, sizeof(t->app_id));
	gmtime_r(&now, &tm);
	strftime(t->created_at, sizeof(t->created_at), "%Y-%m-%dT%H:%M:%SZ",
	    &tm);
	t->state = TASK_RUNNING;
	t->lines = json_array();
	TAILQ_INSERT_TAIL(&tasks, t, entry);
	ntasks++;
	return t;
}

const char *
task_id(const struct task *t)
{
	return t->id;
}

struct task *
task_find(const char *id)
{
	struct task	*t;

	TAILQ_FOREACH(t, &tasks, entry)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

void
task_set_bundle(struct task *t, const char *bundle_id)
{
	strlcpy(t->bundle_id, bundle_id, sizeof(t->bundle_id));
}

/* An upload given up after its unpack: its task ends too. */
void
task_fail_bundle(const char *bundle_id, const char *why)
{
	struct task	*t;

	TAILQ_FOREACH(t, &tasks, entry)
		if (t->state == TASK_RUNNING &&
		    strcmp(t->bundle_id, bundle_id) == 0) {
			task_log(t, "%s", why);
			task_done(t, 0);
		}
}

void
task_log(struct task *t, const char *fmt, ...)
{
	va_list	 ap;
	char	 line[1024];

	if (json_array_size(t->lines) >= TASK_LINES_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	json_array_append_new(t->lines, json_string(line));
}

void
task_done(struct task *t, int ok)
{
	t->state = ok ? TASK_COMPLETED : TASK_FAILED;
}

static const char *
task_state_name(enum task_state s)
{
	switch (s) {
	case TASK_RUNNING:
		return "running";
	case TASK_COMPLETED:
		return "completed";
	case TASK_FAILED:
		return "failed";
	}
	return "?";
}

/*
 * For spawn_api.c: {id, app_id, status, created_at, nlines, lines?},
 * lines from line "from" on (at most TASK_LINES_PAGE), or NULL.
 */
json_t *
task_to_json(const char *id, int with_lines, size_t from)
{
	struct task	*t;
	json_t		*o, *lines;
	size_t		 i, n;

	if (id == NULL || (t = task_find(id)) == NULL)
		return NULL;
	n = json_array_size(t->lines);
	o = json_pack("{s:s s:s s:s s:s s:I}", "id", t->id, "app_id",
	    t->app_id, "status", task_state_name(t->state), "created_at",
	    t->created_at, "nlines", (json_int_t)n);
	if (!with_lines)
		return o;
	/* a page at a time: any answer fits one message */
	lines = json_array();
	for (i = from; i < n && i < from + TASK_LINES_PAGE; i++)
		json_array_append(lines, json_array_get(t->lines, i));
	json_object_set_new(o, "lines", lines);
	return o;
}

void
tasks_free(void)
{
	while (!TAILQ_EMPTY(&tasks))
		task_free(TAILQ_FIRST(&tasks));
}
