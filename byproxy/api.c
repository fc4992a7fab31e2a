/*
 * The REST API's side in byproxy: read and check request bodies, hash
 * the bearer token, ask bystate (MSG_STATE_CALL) and render its answer.
 * byproxy never sees SQL and never decides who may do what with an app;
 * it only refuses what is malformed before it reaches bystate.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sha2.h>

#include <bsd/string.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "byproxy.h"

struct api_pending {
	TAILQ_ENTRY(api_pending) entry;
	uint32_t		 reqid;
	uint64_t		 handle;
	struct http_server	*srv;
	api_done_fn		 done;
	api_internal_fn		 idone;		/* internal: no request */
	int			 internal;
	void			*arg;
};

static TAILQ_HEAD(, api_pending) pending = TAILQ_HEAD_INITIALIZER(pending);
static api_send_fn	 send_fn;		/* to bystate */
static api_send_fn	 spawn_send_fn;		/* to byspawn */

void
api_init(api_send_fn state, api_send_fn spawn)
{
	send_fn = state;
	spawn_send_fn = spawn;
}

/*
 * What bystate needs to authenticate: the SHA-256 of the bearer token.
 * "pat" says whether it looks like a personal access token.
 */
static json_t *
api_auth(struct http_request *req)
{
	const char	*h, *tok;
	char		 hex[SHA256_DIGEST_STRING_LENGTH];

	if ((h = http_header_get(req, "Authorization")) == NULL)
		return json_null();
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return json_pack("{s:b}", "invalid", 1);
	for (tok = h + 7; *tok == ' '; tok++)
		;
	SHA256Data((const uint8_t *)tok, strlen(tok), hex);
	return json_pack("{s:s s:b}", "bearer_sha256", hex, "pat",
	    strncmp(tok, "by_", 3) == 0);
}

static int	 api_call_via(api_send_fn, uint32_t, struct http_request *,
		    const char *, json_t *, api_done_fn, void *);

int
api_call(struct http_request *req, const char *op, json_t *args,
    api_done_fn done, void *arg)
{
	return api_call_via(send_fn, MSG_STATE_CALL, req, op, args, done, arg);
}

/*
 * Ask byspawn (worker control); call only after bystate allowed it.
 * The answer has bystate's shape and arrives through api_result.
 */
int
api_call_spawn(struct http_request *req, const char *op, json_t *args,
    api_done_fn done, void *arg)
{
	return api_call_via(spawn_send_fn, MSG_SPAWN_CALL, req, op, args, done,
	    arg);
}

static int
api_call_via(api_send_fn fn, uint32_t type, struct http_request *req,
    const char *op, json_t *args, api_done_fn done, void *arg)
{
	struct api_pending	*p;
	json_t			*call;
	char			*s, remote[64];
	uint32_t		 reqid = msg_reqid();

	/* the client behind trusted proxies: the audit's source_ip */
	realip_str(req, remote, sizeof(remote));
	call = json_pack("{s:s s:o s:o s:s}", "op", op, "auth", api_auth(req),
	    "args", args != NULL ? args : json_object(), "remote", remote);
	if (call == NULL || (s = json_dumps(call, JSON_COMPACT)) == NULL) {
		json_decref(call);
		return http_error(req, 500, "internal_error",
		    "internal server error");
	}
	json_decref(call);
	if (fn(type, reqid, s) == -1) {
		free(s);
		return http_error(req, 503, "service_unavailable",
		    "state service unavailable");
	}
	free(s);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("calloc");
	p->reqid = reqid;
	p->handle = http_request_handle(req);
	p->srv = http_request_server(req);
	p->done = done;
	p->arg = arg;
	TAILQ_INSERT_TAIL(&pending, p, entry);
	return 0;
}

/*
 * A call byproxy makes on its own behalf (sessions, app resolution,
 * worker control): no client, no bearer.  bystate accepts only its
 * API_PROXY ops this way.  done gets the answer (NULL when the call
 * could not be sent); -1 when it could not be sent (done not called).
 */
int
api_call_internal(enum proc_id to, const char *op, json_t *args,
    api_internal_fn done, void *arg)
{
	struct api_pending	*p;
	json_t			*call;
	char			*s;
	uint32_t		 reqid = msg_reqid();
	int			 rv;

	call = json_pack("{s:s s:n s:o s:s}", "op", op, "auth",
	    "args", args != NULL ? args : json_object(), "remote", "");
	if (call == NULL || (s = json_dumps(call, JSON_COMPACT)) == NULL) {
		json_decref(call);
		return -1;
	}
	json_decref(call);
	rv = to == PROC_SPAWN ? spawn_send_fn(MSG_SPAWN_CALL, reqid, s) :
	    send_fn(MSG_STATE_CALL, reqid, s);
	free(s);
	if (rv == -1)
		return -1;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("calloc");
	p->reqid = reqid;
	p->internal = 1;
	p->idone = done;
	p->arg = arg;
	TAILQ_INSERT_TAIL(&pending, p, entry);
	return 0;
}

/* Render a bystate answer as the HTTP response. */
void
api_reply(struct http_request *req, json_t *res)
{
	json_t		*hdrs, *v, *data;
	const char	*k, *err;
	int		 status;

	status = (int)json_integer_value(json_object_get(res, "status"));
	if (status < 100 || status > 599)
		status = 500;
	hdrs = json_object_get(res, "headers");
	json_object_foreach(hdrs, k, v)
		if (json_is_string(v))
			http_add_header(req, k, json_string_value(v));
	if ((err = json_string_value(json_object_get(res, "error"))) != NULL) {
		http_error(req, status, err, json_string_value(
		    json_object_get(res, "message")) ?: "");
		return;
	}
	data = json_object_get(res, "data");
	if (status == 204 || data == NULL || json_is_null(data)) {
		http_reply(req, status, NULL, NULL, 0);
		return;
	}
	http_reply_json(req, status, json_incref(data));
}

void
api_result(uint32_t reqid, const char *text, size_t len)
{
	struct api_pending	*p;
	struct http_request	*req;
	json_t			*res;
	json_error_t		 jerr;

	TAILQ_FOREACH(p, &pending, entry)
		if (p->reqid == reqid)
			break;
	if (p == NULL) {
		log_warnx("state result for unknown request %u", reqid);
		return;
	}
	TAILQ_REMOVE(&pending, p, entry);
	if (p->internal) {
		if ((res = json_loadb(text, len, 0, &jerr)) == NULL)
			log_warnx("bad internal result: %s", jerr.text);
		if (p->idone != NULL)
			p->idone(res, p->arg);
		json_decref(res);
		free(p);
		return;
	}
	/* the client may have left while bystate worked */
	req = http_request_lookup(p->srv, p->handle);
	if (req != NULL) {
		if ((res = json_loadb(text, len, 0, &jerr)) == NULL) {
			log_warnx("bad state result: %s", jerr.text);
			http_error(req, 500, "internal_error",
			    "internal server error");
		} else {
			if (p->done != NULL)
				p->done(req, res, p->arg);
			else
				api_reply(req, res);
			json_decref(res);
		}
	}
	free(p);
}

/*
 * The body of a JSON API request: NULL (and the error answered) when it
 * is not one JSON object.  An empty body counts as {} when empty_ok.
 */
json_t *
api_body(struct http_request *req, int empty_ok)
{
	json_t		*j;
	json_error_t	 jerr;
	size_t		 len = evbuffer_get_length(req->body);
	const char	*data;

	if (len == 0 && empty_ok)
		return json_object();
	data = (const char *)evbuffer_pullup(req->body, -1);
	j = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		http_error(req, 400, "bad_request", "invalid JSON body");
		return NULL;
	}
	return j;
}

/* An op whose args are the path parameters and the JSON body. */
void
api_forward(struct http_request *req, const char *op, json_t *args)
{
	api_call(req, op, args, NULL, NULL);
}
