/*
 * byproxy: the unprivileged HTTP process.  byd starts it, hands it the
 * listening sockets, and after the privilege drop and chroot it builds
 * the router and server.  It accepts only once byd says MSG_GO, so no
 * request arrives before bystate and byspawn are ready too.
 */

#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "byproxy.h"

static struct {
	int			 fd[2];		/* by enum listen_kind */
	struct http_router	*router;
	struct http_server	*srv;
	int			 management;	/* management_bind set */
} proxy = { .fd = { -1, -1 } };

static void	 proxy_listen_fd(enum listen_kind, int);
static json_t	*proxy_start(void);
static void	 proxy_go(void);
static void	 proxy_reload(const struct config *);
static void	 proxy_drain(void);
static void	 proxy_shutdown(void);
static void	 proxy_pong(struct msgchan *, struct msg *);

static void	 proxy_state_result(struct msgchan *, struct msg *);

static void	 proxy_bundle_fd(struct msgchan *, struct msg *);
static void	 proxy_bundle_result(struct msgchan *, struct msg *);
static void	 proxy_logs_data(struct msgchan *, struct msg *);
static void	 proxy_logs_end(struct msgchan *, struct msg *);
static void	 proxy_worker_exit(struct msgchan *, struct msg *);
static void	 proxy_build_done(struct msgchan *, struct msg *);

static const struct msg_handler proxy_spawn_handlers[] = {
	{ MSG_PONG, proxy_pong },
	{ MSG_BUNDLE_FD, proxy_bundle_fd },
	{ MSG_BUNDLE_RESULT, proxy_bundle_result },
	{ MSG_SPAWN_RESULT, proxy_state_result },
	{ MSG_LOGS_DATA, proxy_logs_data },
	{ MSG_LOGS_END, proxy_logs_end },
	{ MSG_WORKER_EXITED, proxy_worker_exit },
	{ MSG_BUILD_DONE, proxy_build_done },
	{ 0, NULL }
};

static const struct msg_handler proxy_state_handlers[] = {
	{ MSG_PONG, proxy_pong },
	{ MSG_STATE_RESULT, proxy_state_result },
	{ 0, NULL }
};

static const struct helper proxy_helper = {
	.id = PROC_PROXY,
	.drop_privs = 1,
	.chroot = 1,
	.listen_fd = proxy_listen_fd,
	.start = proxy_start,
	.go = proxy_go,
	.reload = proxy_reload,
	.drain = proxy_drain,
	.shutdown = proxy_shutdown,
	.handlers = {
		[PROC_STATE] = proxy_state_handlers,
		[PROC_SPAWN] = proxy_spawn_handlers,
	},
};

int
main(int argc, char **argv)
{
	helper_main(argc, argv, &proxy_helper);
}

/* Still root: just keep the sockets; nothing is accepted before GO. */
static void
proxy_listen_fd(enum listen_kind kind, int fd)
{
	if (kind != LISTEN_MAIN && kind != LISTEN_MANAGEMENT)
		fatalx("unknown listener kind %d", kind);
	if (proxy.fd[kind] != -1)
		fatalx("listener %d sent twice", kind);
	proxy.fd[kind] = fd;
}

static int
proxy_ping(enum proc_id peer, uint32_t reqid)
{
	return proc_send(peer, MSG_PING, reqid, -1, NULL, 0);
}

static int
proxy_send_state(uint32_t type, uint32_t reqid, const char *s)
{
	return proc_send(PROC_STATE, type, reqid, -1, s, strlen(s));
}

static int
proxy_send_spawn(uint32_t type, uint32_t reqid, const char *s)
{
	return proc_send(PROC_SPAWN, type, reqid, -1, s, strlen(s));
}

static int
external_https(const struct config *conf)
{
	const char	*u = conf->server.external_url;

	return u != NULL && strncmp(u, "https://", 8) == 0;
}

/*
 * After the privilege drop and chroot: build everything.  From here on
 * the process opens no files.
 */
static json_t *
proxy_start(void)
{
	unsigned int	 health;

	if (proxy.fd[LISTEN_MAIN] == -1)
		fatalx("no main listener from byd");
	proxy.management = proc_conf->server.management_bind != NULL &&
	    proc_conf->server.management_bind[0] != '\0';
	if (proxy.management && proxy.fd[LISTEN_MANAGEMENT] == -1)
		fatalx("management_bind set but no management listener");

	if ((proxy.router = http_router_new()) == NULL)
		fatal("router");
	/* health moves off the main listener when there is a management one */
	health = proxy.management ? HTTP_LISTEN_MGMT : HTTP_LISTEN_MAIN;
	if (proxy_health_init(proxy.router, health, proxy_ping) == -1 ||
	    http_router_group(proxy.router, "/api/v1/", http_api_headers) == -1 ||
	    api_routes_init(proxy.router) == -1 ||
	    proxy_app_routes(proxy.router) == -1)
		fatalx("routes");
	proxy_app_init(proc_base);
	api_init(proxy_send_state, proxy_send_spawn);
	if ((proxy.srv = http_server_new(proc_base, proxy.router)) == NULL)
		fatal("http server");
	http_server_set_hsts(proxy.srv, external_https(proc_conf));

	return json_pack("{s:b}", "management", proxy.management);
}

static void
proxy_go(void)
{
	int	 kind;

	for (kind = LISTEN_MAIN; kind <= LISTEN_MANAGEMENT; kind++) {
		if (proxy.fd[kind] == -1)
			continue;
		if (http_server_listen(proxy.srv, proxy.fd[kind],
		    kind == LISTEN_MAIN ? HTTP_LISTEN_MAIN :
		    HTTP_LISTEN_MGMT) == -1)
			fatalx("cannot accept on the %s listener",
			    kind == LISTEN_MAIN ? "main" : "management");
		proxy.fd[kind] = -1;
	}
	log_info("serving HTTP%s", proxy.management ?
	    " (health on the management listener)" : "");
}

static void
proxy_reload(const struct config *old)
{
	const char	*a = old->server.management_bind;
	const char	*b = proc_conf->server.management_bind;

	http_server_set_hsts(proxy.srv, external_https(proc_conf));
	if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
		log_warnx("management_bind changes need a restart");
}

static void
proxy_drain(void)
{
	proxy_set_draining(1);
}

static void
proxy_done(void *arg)
{
	log_debug("all connections closed");
	helper_exit(0);
}

static void
proxy_shutdown(void)
{
	proxy_set_draining(1);
	proxy_app_shutdown();
	if (proxy.srv == NULL)
		helper_exit(0);
	log_info("shutting down: %zu connection(s) open",
	    http_server_nconns(proxy.srv));
	http_server_shutdown(proxy.srv, proxy_done, NULL);
}

static void
proxy_pong(struct msgchan *c, struct msg *m)
{
	struct msg_int	 v;

	if (m->datalen != sizeof(v))
		fatalx("bad pong from %s", c->name);
	memcpy(&v, m->data, sizeof(v));
	proxy_health_pong((enum proc_id)c->peer, m->hdr.peerid, v.value == 1);
}

static void
proxy_state_result(struct msgchan *c, struct msg *m)
{
	api_result(m->hdr.peerid, m->data, m->datalen);
}

static void
proxy_bundle_fd(struct msgchan *c, struct msg *m)
{
	struct msg_bundle_result	 r;
	int				 fd = m->fd;

	if (m->datalen != sizeof(r))
		fatalx("bad bundle fd message from %s", c->name);
	memcpy(&r, m->data, sizeof(r));
	r.message[sizeof(r.message) - 1] = '\0';
	m->fd = -1;		/* ours now */
	api_bundle_fd(m->hdr.peerid, &r, fd);
}

static void
proxy_bundle_result(struct msgchan *c, struct msg *m)
{
	struct msg_bundle_result	 r;

	if (m->datalen != sizeof(r))
		fatalx("bad bundle result from %s", c->name);
	memcpy(&r, m->data, sizeof(r));
	r.message[sizeof(r.message) - 1] = '\0';
	api_bundle_result(m->hdr.peerid, &r);
}

static void
proxy_logs_data(struct msgchan *c, struct msg *m)
{
	api_logs_data(m->hdr.peerid, m->data, m->datalen);
}

static void
proxy_logs_end(struct msgchan *c, struct msg *m)
{
	struct msg_bundle_result	 r;

	if (m->datalen != sizeof(r))
		fatalx("bad logs end from %s", c->name);
	memcpy(&r, m->data, sizeof(r));
	r.message[sizeof(r.message) - 1] = '\0';
	api_logs_end(m->hdr.peerid, &r);
}

static void
proxy_worker_exit(struct msgchan *c, struct msg *m)
{
	struct msg_worker	 w;

	if (m->datalen != sizeof(w))
		fatalx("%s: bad worker_exited message", c->name);
	memcpy(&w, m->data, sizeof(w));
	w.worker_id[sizeof(w.worker_id) - 1] = '\0';
	proxy_worker_exited(w.worker_id, w.stopped);
}

/*
 * A build activated a bundle (learn the app anew: its old workers
 * drain), or a refresh or rollback changed the library of the active
 * bundle (every worker of the app drains; new sessions get new ones).
 */
static void
proxy_build_done(struct msgchan *c, struct msg *m)
{
	json_t		*j;
	json_error_t	 jerr;
	const char	*app, *kind;

	if ((j = json_loadb(m->data, m->datalen, 0, &jerr)) == NULL)
		fatalx("%s: bad build_done message: %s", c->name, jerr.text);
	app = json_string_value(json_object_get(j, "app_id"));
	kind = json_string_value(json_object_get(j, "kind"));
	if (app != NULL && kind != NULL && strcmp(kind, "refresh") == 0)
		proxy_app_renew(app);
	else if (app != NULL)
		proxy_app_changed(app);
	json_decref(j);
}
