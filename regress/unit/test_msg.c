/*
 * Message layer: framing, partial reads and writes, fd passing, and the
 * rejection of oversize, truncated and lying messages.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "log.h"
#include "msg.h"
#include "proc.h"

static int	 sp[2];
static struct msgchan a, b;

static void
setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	fd_nonblock_cloexec(sp[0]);
	fd_nonblock_cloexec(sp[1]);
	msgchan_init(&a, sp[0], PROC_PROXY, "a");
	msgchan_init(&b, sp[1], PROC_STATE, "b");
}

static void
teardown(void)
{
	msgchan_clear(&a);
	msgchan_clear(&b);
}

/* Read until one message or failure. */
static int
get_one(struct msgchan *c, struct msg *m)
{
	int	 r, tries = 0;

	while ((r = msg_get(c, m)) == 0 && tries++ < 1000) {
		if (msg_read(c) == 0)
			return 0;
	}
	return r;
}

static int
open_fds(void)
{
	int	 n = 0, fd;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

START_TEST(t_roundtrip)
{
	struct msg	 m;
	const char	*s = "hello";

	ck_assert_int_eq(msg_compose(&a, MSG_PING, 42, -1, s, 5), 0);
	ck_assert_int_eq(msg_flush(&a), 0);
	ck_assert_int_eq(get_one(&b, &m), 1);
	ck_assert_uint_eq(m.hdr.type, MSG_PING);
	ck_assert_uint_eq(m.hdr.peerid, 42);
	ck_assert_uint_eq(m.hdr.pid, (uint32_t)getpid());
	ck_assert_uint_eq(m.datalen, 5);
	ck_assert_str_eq(m.data, "hello");
	ck_assert_int_eq(m.fd, -1);
	msg_free(&m);
}
END_TEST

START_TEST(t_empty_payload)
{
	struct msg	 m;

	ck_assert_int_eq(msg_compose(&a, MSG_GO, 0, -1, NULL, 0), 0);
	ck_assert_int_eq(msg_flush(&a), 0);
	ck_assert_int_eq(get_one(&b, &m), 1);
	ck_assert_uint_eq(m.datalen, 0);
	ck_assert_str_eq(m.data, "");
	msg_free(&m);
}
END_TEST

START_TEST(t_many_in_order)
{
	struct msg	 m;
	uint32_t	 i;
	char		 buf[32];

	for (i = 1; i <= 500; i++) {
		snprintf(buf, sizeof(buf), "m%u", i);
		ck_assert_int_eq(msg_compose_str(&a, MSG_PING, i, buf), 0);
	}
	ck_assert_int_eq(msg_flush_all(&a), 0);
	for (i = 1; i <= 500; i++) {
		ck_assert_int_eq(get_one(&b, &m), 1);
		snprintf(buf, sizeof(buf), "m%u", i);
		ck_assert_uint_eq(m.hdr.peerid, i);
		ck_assert_str_eq(m.data, buf);
		msg_free(&m);
	}
}
END_TEST

/* A payload bigger than the socket buffer goes out in pieces. */
START_TEST(t_partial_write_and_read)
{
	struct msg	 m;
	size_t		 len = MSG_MAX_LEN - MSG_HDR_LEN, i;
	unsigned char	*big = malloc(len);
	int		 sz = 4096, r, rounds = 0;

	for (i = 0; i < len; i++)
		big[i] = (unsigned char)(i * 7);
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	ck_assert_int_eq(msg_compose(&a, MSG_CONFIG, 7, -1, big, len), 0);
	/* first flush cannot send it all */
	ck_assert_int_eq(msg_flush(&a), 1);
	ck_assert_uint_lt(a.outlen, len + MSG_HDR_LEN);
	for (;;) {
		r = msg_flush(&a);
		msg_read(&b);
		if ((r = msg_get(&b, &m)) == 1)
			break;
		ck_assert_int_eq(r, 0);
		ck_assert_int_lt(++rounds, 100000);
	}
	ck_assert_int_gt(rounds, 1);
	ck_assert_uint_eq(m.datalen, len);
	ck_assert_int_eq(memcmp(m.data, big, len), 0);
	msg_free(&m);
	free(big);
}
END_TEST

START_TEST(t_fd_passing)
{
	struct msg	 m;
	struct stat	 st1, st2;
	int		 p[2];
	char		 c = 0;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(fstat(p[1], &st1), 0);
	/* one without, one with, one without: the fd lands on the middle */
	msg_compose_str(&a, MSG_PING, 1, "x");
	msg_compose(&a, MSG_PEER_FD, 2, p[1], "y", 1);
	msg_compose_str(&a, MSG_PING, 3, "z");
	ck_assert_int_eq(msg_flush_all(&a), 0);
	/* the sender's copy is closed once sent */
	ck_assert_int_eq(fcntl(p[1], F_GETFD), -1);
	ck_assert_int_eq(get_one(&b, &m), 1);
	ck_assert_int_eq(m.fd, -1);
	msg_free(&m);
	ck_assert_int_eq(get_one(&b, &m), 1);
	ck_assert_uint_eq(m.hdr.peerid, 2);
	ck_assert_int_ne(m.fd, -1);
	ck_assert_int_eq(fstat(m.fd, &st2), 0);
	ck_assert_uint_eq(st1.st_ino, st2.st_ino);
	ck_assert_int_eq(write(m.fd, "!", 1), 1);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, '!');
	msg_free(&m);
	ck_assert_int_eq(get_one(&b, &m), 1);
	ck_assert_int_eq(m.fd, -1);
	msg_free(&m);
	close(p[0]);
}
END_TEST

START_TEST(t_no_fd_leak)
{
	struct msg	 m;
	int		 before, i, p[2];

	before = open_fds();
	for (i = 0; i < 50; i++) {
		ck_assert_int_eq(pipe(p), 0);
		close(p[0]);
		msg_compose(&a, MSG_PEER_FD, 0, p[1], NULL, 0);
		msg_flush_all(&a);
		ck_assert_int_eq(get_one(&b, &m), 1);
		msg_free(&m);
	}
	ck_assert_int_eq(open_fds(), before);
}
END_TEST

START_TEST(t_oversize_compose)
{
	static char	 big[MSG_MAX_LEN];
	int		 p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(msg_compose(&a, MSG_PING, 0, p[1], big,
	    sizeof(big)), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	/* the fd was consumed, not leaked */
	ck_assert_int_eq(fcntl(p[1], F_GETFD), -1);
	ck_assert_uint_eq(a.outlen, 0);
	close(p[0]);
}
END_TEST

static void
raw_send(const void *buf, size_t len)
{
	ck_assert_int_eq(write(sp[0], buf, len), (ssize_t)len);
}

START_TEST(t_oversize_header_rejected)
{
	struct msg_hdr	 h = { MSG_PING, MSG_MAX_LEN + 1, 0, 0, 0 };
	struct msg	 m;

	raw_send(&h, sizeof(h));
	ck_assert_int_eq(get_one(&b, &m), -1);
	ck_assert_int_eq(errno, EBADMSG);
	/* and stays broken */
	ck_assert_int_eq(msg_get(&b, &m), -1);
}
END_TEST

START_TEST(t_short_length_rejected)
{
	struct msg_hdr	 h = { MSG_PING, 3, 0, 0, 0 };
	struct msg	 m;

	raw_send(&h, sizeof(h));
	ck_assert_int_eq(get_one(&b, &m), -1);
}
END_TEST

START_TEST(t_unknown_flags_rejected)
{
	struct msg_hdr	 h = { MSG_PING, sizeof(h), 0, 0, 0x80 };
	struct msg	 m;

	raw_send(&h, sizeof(h));
	ck_assert_int_eq(get_one(&b, &m), -1);
}
END_TEST

START_TEST(t_fd_flag_without_fd_rejected)
{
	struct msg_hdr	 h = { MSG_PING, sizeof(h), 0, 0, MSG_F_FD };
	struct msg	 m;

	raw_send(&h, sizeof(h));
	ck_assert_int_eq(get_one(&b, &m), -1);
}
END_TEST

START_TEST(t_truncated_message)
{
	struct msg_hdr	 h = { MSG_PING, sizeof(h) + 100, 0, 0, 0 };
	struct msg	 m;
	char		 part[10] = "abc";

	raw_send(&h, sizeof(h));
	raw_send(part, sizeof(part));
	close(sp[0]);
	a.fd = -1;
	/* incomplete until EOF; blocking receive reports the truncation */
	ck_assert_int_eq(msg_recv_blocking(&b, &m), -1);
	ck_assert_int_eq(errno, EBADMSG);
}
END_TEST

START_TEST(t_header_split_across_reads)
{
	struct msg_hdr	 h = { MSG_PONG, sizeof(h) + 2, 9, 1, 0 };
	struct msg	 m;

	raw_send(&h, 7);
	msg_read(&b);
	ck_assert_int_eq(msg_get(&b, &m), 0);
	raw_send((char *)&h + 7, sizeof(h) - 7);
	raw_send("ok", 2);
	ck_assert_int_eq(get_one(&b, &m), 1);
	ck_assert_uint_eq(m.hdr.peerid, 9);
	ck_assert_str_eq(m.data, "ok");
	msg_free(&m);
}
END_TEST

START_TEST(t_eof_clean)
{
	struct msg	 m;

	close(sp[0]);
	a.fd = -1;
	ck_assert_int_eq(msg_recv_blocking(&b, &m), 0);
}
END_TEST

START_TEST(t_reqid_nonzero_unique)
{
	uint32_t	 x = msg_reqid(), y = msg_reqid();

	ck_assert_uint_ne(x, 0);
	ck_assert_uint_ne(x, y);
}
END_TEST

/* ---- libevent glue ------------------------------------------------------ */

static int	 got;
static int	 closed_called;

static void
ev_dispatch(struct msgchan *c, struct msg *m, void *arg)
{
	struct event_base *base = arg;

	got++;
	if (m->hdr.type == MSG_PING)
		msgchan_send(c, MSG_PONG, m->hdr.peerid, -1, "p", 1);
	if (got == 2)
		event_base_loopexit(base, NULL);
}

static void
ev_closed(struct msgchan *c, void *arg)
{
	closed_called++;
	event_base_loopexit(arg, NULL);
}

START_TEST(t_event_pingpong)
{
	struct event_base *base = event_base_new();
	struct msg	 m;

	got = closed_called = 0;
	msgchan_event_start(&b, base, ev_dispatch, ev_closed, base);
	msg_compose(&a, MSG_PING, 5, -1, NULL, 0);
	msg_compose(&a, MSG_GO, 6, -1, NULL, 0);
	msg_flush_all(&a);
	event_base_dispatch(base);
	ck_assert_int_eq(got, 2);
	/* the pong went out through the write event */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(get_one(&a, &m), 1);
	ck_assert_uint_eq(m.hdr.type, MSG_PONG);
	ck_assert_uint_eq(m.hdr.peerid, 5);
	msg_free(&m);
	/* EOF reaches the closed callback */
	close(sp[0]);
	a.fd = -1;
	event_base_dispatch(base);
	ck_assert_int_eq(closed_called, 1);
	msgchan_clear(&b);
	msgchan_init(&b, -1, 0, "b");
	event_base_free(base);
}
END_TEST

static Suite *
msg_suite(void)
{
	Suite	*s = suite_create("msg");
	TCase	*tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_roundtrip);
	tcase_add_test(tc, t_empty_payload);
	tcase_add_test(tc, t_many_in_order);
	tcase_add_test(tc, t_partial_write_and_read);
	tcase_add_test(tc, t_fd_passing);
	tcase_add_test(tc, t_no_fd_leak);
	tcase_add_test(tc, t_oversize_compose);
	tcase_add_test(tc, t_oversize_header_rejected);
	tcase_add_test(tc, t_short_length_rejected);
	tcase_add_test(tc, t_unknown_flags_rejected);
	tcase_add_test(tc, t_fd_flag_without_fd_rejected);
	tcase_add_test(tc, t_truncated_message);
	tcase_add_test(tc, t_header_split_across_reads);
	tcase_add_test(tc, t_eof_clean);
	tcase_add_test(tc, t_reqid_nonzero_unique);
	tcase_add_test(tc, t_event_pingpong);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(msg_suite());
	int	 failed;

	log_setlevel(LOG_LVL_ERROR);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
