/*
 * byproxy WebSocket frame codec: RFC 6455 examples, every protocol
 * error and its close code, caps, UTF-8, round trips and input split
 * at every byte.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "ws_frame.h"

#define MAXREC		64

struct rec {
	int		 opcode;
	int		 msg_opcode;
	int		 fin;
	int		 close_code;
	size_t		 len;
	uint32_t	 hash;
};

struct run {
	struct rec	 r[MAXREC];
	int		 n;
	int		 rc;		/* last ws_parse result */
	int		 error;		/* close code after a failure */
	size_t		 left;		/* bytes not taken */
};

static const unsigned char	 key1[4] = { 0x37, 0xfa, 0x21, 0x3d };

static uint32_t
hashbuf(struct evbuffer *b)
{
	unsigned char	*p;
	size_t		 i, len;
	uint32_t	 h = 2166136261u;

	len = evbuffer_get_length(b);
	p = evbuffer_pullup(b, -1);
	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void
drain(struct ws_parser *p, struct evbuffer *in, struct run *run)
{
	struct ws_frame	 f;

	while ((run->rc = ws_parse(p, in, &f)) == 1) {
		ck_assert_ptr_nonnull(f.payload);
		ck_assert_int_lt(run->n, MAXREC);
		run->r[run->n].opcode = f.opcode;
		run->r[run->n].msg_opcode = f.msg_opcode;
		run->r[run->n].fin = f.fin;
		run->r[run->n].close_code = f.close_code;
		run->r[run->n].len = evbuffer_get_length(f.payload);
		run->r[run->n].hash = hashbuf(f.payload);
		run->n++;
		ws_frame_free(&f);
	}
	ck_assert_ptr_null(f.payload);
	run->error = p->error;
	run->left = evbuffer_get_length(in);
}

/* Parse bytes fed in pieces of at most step bytes (0: all at once). */
static void
parse_bytes(enum ws_role role, uint64_t cap, const unsigned char *s,
    size_t len, size_t step, struct run *run)
{
	struct ws_parser	 p;
	struct evbuffer		*in;
	size_t			 off = 0, n;

	memset(run, 0, sizeof(*run));
	ws_parser_init(&p, role, cap);
	ck_assert_ptr_nonnull(in = evbuffer_new());
	if (step == 0)
		step = len ? len : 1;
	do {
		n = len - off < step ? len - off : step;
		evbuffer_add(in, s + off, n);
		off += n;
		drain(&p, in, run);
	} while (off < len && run->rc != -1);
	evbuffer_free(in);
}

/* Parse at once; the result of the whole input, or 0 if it all parsed. */
static int
errcode(enum ws_role role, uint64_t cap, const unsigned char *s, size_t len)
{
	struct run	 run;

	parse_bytes(role, cap, s, len, 0, &run);
	if (run.rc == -1) {
		ck_assert_int_ne(run.error, 0);
		return run.error;
	}
	ck_assert_uint_eq(run.left, 0);
	return 0;
}

static void
check_payload(struct evbuffer *b, const void *want, size_t len)
{
	ck_assert_uint_eq(evbuffer_get_length(b), len);
	if (len > 0)
		ck_assert_mem_eq(evbuffer_pullup(b, -1), want, len);
}

/* ---- accept key ---------------------------------------------------- */

START_TEST(t_accept_key)
{
	char	 out[WS_ACCEPT_LEN + 1];

	ck_assert_int_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ck_assert_int_eq(ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out), 0);
	ck_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
	ck_assert_int_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out), -1);
	ck_assert_int_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==x", out), -1);
	ck_assert_int_eq(ws_accept_key("dGhlIHNhbXBsZSBub25j*Q==", out), -1);
	ck_assert_int_eq(ws_accept_key("", out), -1);
	ck_assert_int_eq(ws_accept_key(NULL, out), -1);
}
END_TEST

/* ---- RFC 6455 5.7 examples ----------------------------------------- */

static const unsigned char hello_unmasked[] = {
	0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
static const unsigned char hello_masked[] = {
	0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
static const unsigned char hello_frag[] = {
	0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f };
static const unsigned char ping_unmasked[] = {
	0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
static const unsigned char pong_masked[] = {
	0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };

static int
parse_one(struct ws_parser *p, const unsigned char *s, size_t len,
    struct ws_frame *f)
{
	struct evbuffer	*in;
	int		 rc;

	ck_assert_ptr_nonnull(in = evbuffer_new());
	evbuffer_add(in, s, len);
	rc = ws_parse(p, in, f);
	if (rc == 1)
		ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
	return rc;
}

START_TEST(t_rfc_examples)
{
	struct ws_parser	 p;
	struct ws_frame		 f;
	struct evbuffer		*in, *out, *pl;
	unsigned char		*big;
	size_t			 i;

	ws_parser_init(&p, WS_ROLE_CLIENT, 0);
	ck_assert_int_eq(parse_one(&p, hello_unmasked,
	    sizeof(hello_unmasked), &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_TEXT);
	ck_assert_int_eq(f.msg_opcode, WS_OP_TEXT);
	ck_assert_int_eq(f.fin, 1);
	check_payload(f.payload, "Hello", 5);
	ws_frame_free(&f);

	ws_parser_init(&p, WS_ROLE_SERVER, 0);
	ck_assert_int_eq(parse_one(&p, hello_masked,
	    sizeof(hello_masked), &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_TEXT);
	check_payload(f.payload, "Hello", 5);
	ws_frame_free(&f);

	/* fragmented: a text start and its continuation */
	ws_parser_init(&p, WS_ROLE_CLIENT, 0);
	ck_assert_ptr_nonnull(in = evbuffer_new());
	evbuffer_add(in, hello_frag, sizeof(hello_frag));
	ck_assert_int_eq(ws_parse(&p, in, &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_TEXT);
	ck_assert_int_eq(f.fin, 0);
	check_payload(f.payload, "Hel", 3);
	ws_frame_free(&f);
	ck_assert_int_eq(ws_parse(&p, in, &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_CONT);
	ck_assert_int_eq(f.msg_opcode, WS_OP_TEXT);
	ck_assert_int_eq(f.fin, 1);
	check_payload(f.payload, "lo", 2);
	ws_frame_free(&f);
	ck_assert_int_eq(ws_parse(&p, in, &f), 0);
	evbuffer_free(in);

	ws_parser_init(&p, WS_ROLE_CLIENT, 0);
	ck_assert_int_eq(parse_one(&p, ping_unmasked,
	    sizeof(ping_unmasked), &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_PING);
	check_payload(f.payload, "Hello", 5);
	ws_frame_free(&f);

	ws_parser_init(&p, WS_ROLE_SERVER, 0);
	ck_assert_int_eq(parse_one(&p, pong_masked,
	    sizeof(pong_masked), &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_PONG);
	check_payload(f.payload, "Hello", 5);
	ws_frame_free(&f);

	/* 256 bytes: 16-bit length; 64 KiB: 64-bit length */
	ck_assert_ptr_nonnull(big = malloc(65536 + 10));
	big[0] = 0x82;
	big[1] = 0x7e;
	big[2] = 0x01;
	big[3] = 0x00;
	for (i = 0; i < 256; i++)
		big[4 + i] = i;
	ws_parser_init(&p, WS_ROLE_CLIENT, 0);
	ck_assert_int_eq(parse_one(&p, big, 4 + 256, &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_BINARY);
	check_payload(f.payload, big + 4, 256);
	ws_frame_free(&f);

	memset(big, 0, 10);
	big[0] = 0x82;
	big[1] = 0x7f;
	big[7] = 0x01;
	for (i = 0; i < 65536; i++)
		big[10 + i] = i * 7;
	ck_assert_int_eq(parse_one(&p, big, 10 + 65536, &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_BINARY);
	check_payload(f.payload, big + 10, 65536);
	ws_frame_free(&f);

	/* the writer produces the same bytes */
	ck_assert_ptr_nonnull(out = evbuffer_new());
	ck_assert_ptr_nonnull(pl = evbuffer_new());
	evbuffer_add(pl, "Hello", 5);
	ck_assert_int_eq(ws_write_frame(out, WS_OP_TEXT, 1, pl, NULL), 0);
	ck_assert_uint_eq(evbuffer_get_length(pl), 0);
	check_payload(out, hello_unmasked, sizeof(hello_unmasked));
	evbuffer_drain(out, -1);
	evbuffer_add(pl, "Hello", 5);
	ck_assert_int_eq(ws_write_frame(out, WS_OP_TEXT, 1, pl, key1), 0);
	check_payload(out, hello_masked, sizeof(hello_masked));
	evbuffer_drain(out, -1);
	evbuffer_add(pl, "Hel", 3);
	ck_assert_int_eq(ws_write_frame(out, WS_OP_TEXT, 0, pl, NULL), 0);
	evbuffer_add(pl, "lo", 2);
	ck_assert_int_eq(ws_write_frame(out, WS_OP_CONT, 1, pl, NULL), 0);
	check_payload(out, hello_frag, sizeof(hello_frag));
	evbuffer_drain(out, -1);
	evbuffer_add(pl, big + 10, 65536);
	ck_assert_int_eq(ws_write_frame(out, WS_OP_BINARY, 1, pl, NULL), 0);
	check_payload(out, big, 65536 + 10);
	evbuffer_free(pl);
	evbuffer_free(out);
	free(big);
}
END_TEST

/* ---- split at every byte ------------------------------------------- */

static void
same_run(const struct run *a, const struct run *b)
{
	int	 i;

	ck_assert_int_eq(a->n, b->n);
	ck_assert_int_eq(a->rc, b->rc);
	ck_assert_int_eq(a->error, b->error);
	for (i = 0; i < a->n; i++) {
		ck_assert_int_eq(a->r[i].opcode, b->r[i].opcode);
		ck_assert_int_eq(a->r[i].msg_opcode, b->r[i].msg_opcode);
		ck_assert_int_eq(a->r[i].fin, b->r[i].fin);
		ck_assert_int_eq(a->r[i].close_code, b->r[i].close_code);
		ck_assert_uint_eq(a->r[i].len, b->r[i].len);
		ck_assert_uint_eq(a->r[i].hash, b->r[i].hash);
	}
}

/* A masked stream of every kind of frame, written with the codec. */
static size_t
build_stream(unsigned char **sp, int bad)
{
	struct evbuffer	*out, *pl;
	unsigned char	 k[4] = { 0xa1, 0x02, 0xc3, 0x54 };
	char		 big[300];
	size_t		 len;

	ck_assert_ptr_nonnull(out = evbuffer_new());
	ck_assert_ptr_nonnull(pl = evbuffer_new());
	evbuffer_add(out, hello_masked, sizeof(hello_masked));
	evbuffer_add(pl, "ping", 4);
	ws_write_frame(out, WS_OP_PING, 1, pl, k);
	evbuffer_add(pl, "caf\xc3", 4);
	ws_write_frame(out, WS_OP_TEXT, 0, pl, k);
	ws_write_frame(out, WS_OP_PONG, 1, NULL, k);
	evbuffer_add(pl, "\xa9 \xe2\x82", 4);
	ws_write_frame(out, WS_OP_CONT, 0, pl, k);
	ws_write_frame(out, WS_OP_CONT, 0, NULL, k);
	evbuffer_add(pl, "\xac", 1);
	ws_write_frame(out, WS_OP_CONT, 1, pl, k);
	memset(big, 'b', sizeof(big));
	evbuffer_add(pl, big, sizeof(big));
	ws_write_frame(out, WS_OP_BINARY, 1, pl, k);
	if (bad) {
		evbuffer_add(pl, "ok\xed\xa0\x80", 5);
		ws_write_frame(out, WS_OP_TEXT, 1, pl, k);
	}
	ws_write_close(out, 1001, "bye", k);
	len = evbuffer_get_length(out);
	ck_assert_ptr_nonnull(*sp = malloc(len));
	evbuffer_remove(out, *sp, len);
	evbuffer_free(pl);
	evbuffer_free(out);
	return len;
}

START_TEST(t_split_every_byte)
{
	struct run	*whole, *part;
	struct ws_parser p;
	struct evbuffer	*in;
	unsigned char	*s;
	size_t		 len, cut;
	int		 bad;

	ck_assert_ptr_nonnull(whole = calloc(1, sizeof(*whole)));
	ck_assert_ptr_nonnull(part = calloc(1, sizeof(*part)));
	for (bad = 0; bad <= 1; bad++) {
		len = build_stream(&s, bad);
		parse_bytes(WS_ROLE_SERVER, 0, s, len, 0, whole);
		if (bad) {
			ck_assert_int_eq(whole->rc, -1);
			ck_assert_int_eq(whole->error, WS_CLOSE_INVALID_DATA);
			ck_assert_int_eq(whole->n, 8);
		} else {
			ck_assert_int_eq(whole->rc, 0);
			ck_assert_int_eq(whole->n, 9);
			ck_assert_int_eq(whole->r[8].opcode, WS_OP_CLOSE);
			ck_assert_int_eq(whole->r[8].close_code, 1001);
			ck_assert_uint_eq(whole->left, 0);
		}
		/* one byte at a time */
		parse_bytes(WS_ROLE_SERVER, 0, s, len, 1, part);
		same_run(whole, part);
		/* two pieces, cut at every byte */
		for (cut = 0; cut <= len; cut++) {
			memset(part, 0, sizeof(*part));
			ws_parser_init(&p, WS_ROLE_SERVER, 0);
			ck_assert_ptr_nonnull(in = evbuffer_new());
			evbuffer_add(in, s, cut);
			drain(&p, in, part);
			if (part->rc != -1) {
				evbuffer_add(in, s + cut, len - cut);
				drain(&p, in, part);
			}
			same_run(whole, part);
			evbuffer_free(in);
		}
		free(s);
	}
	free(whole);
	free(part);
}
END_TEST

/* ---- protocol errors ----------------------------------------------- */

#define K	0x01, 0x02, 0x03, 0x04
#define ERR(role, code, ...) do {					\
	const unsigned char b_[] = { __VA_ARGS__ };			\
	ck_assert_int_eq(errcode(role, 0, b_, sizeof(b_)), code);	\
} while (0)
#define S	WS_ROLE_SERVER
#define C	WS_ROLE_CLIENT

START_TEST(t_protocol_errors)
{
	/* reserved bits without an extension */
	ERR(S, 1002, 0xc1, 0x80, K);
	ERR(S, 1002, 0xa1, 0x80, K);
	ERR(S, 1002, 0x91, 0x80, K);
	ERR(C, 1002, 0xc2, 0x00);
	/* unknown opcodes, data and control */
	ERR(S, 1002, 0x83, 0x80, K);
	ERR(S, 1002, 0x87, 0x80, K);
	ERR(S, 1002, 0x8b, 0x80, K);
	ERR(S, 1002, 0x8f, 0x80, K);
	/* masking by role */
	ERR(S, 1002, 0x81, 0x00);
	ERR(S, 1002, 0x89, 0x00);
	ERR(C, 1002, 0x81, 0x80, K);
	ERR(C, 1002, 0x8a, 0x80, K);
	/* control frames: > 125 bytes, 16/64-bit lengths, fragmented */
	ERR(S, 1002, 0x89, 0xfe, 0x00, 0x7e);
	ERR(S, 1002, 0x89, 0xff, 0, 0, 0, 0, 0, 0, 0, 5);
	ERR(C, 1002, 0x88, 0x7e, 0x00, 0x02);
	ERR(S, 1002, 0x09, 0x80, K);
	ERR(S, 1002, 0x08, 0x80, K);
	ERR(S, 1002, 0x0a, 0x80, K);
	/* continuation without a start; after a finished message */
	ERR(S, 1002, 0x80, 0x80, K);
	ERR(S, 1002, 0x00, 0x80, K);
	ERR(S, 1002, 0x81, 0x80, K, 0x80, 0x80, K);
	/* a new data frame inside a fragmented message */
	ERR(S, 1002, 0x01, 0x80, K, 0x81, 0x80, K);
	ERR(S, 1002, 0x02, 0x80, K, 0x02, 0x80, K);
	ERR(S, 1002, 0x01, 0x80, K, 0x89, 0x80, K, 0x82, 0x80, K);
	/* 64-bit length with the top bit set */
	ERR(S, 1002, 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, K);
	ERR(C, 1002, 0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff);
	/* errors are sticky */
	{
		const unsigned char b[] = { 0x80, 0x80, K };
		struct ws_parser p;
		struct ws_frame	 f;

		ws_parser_init(&p, S, 0);
		ck_assert_int_eq(parse_one(&p, b, sizeof(b), &f), -1);
		ck_assert_int_eq(p.error, 1002);
		ck_assert_int_eq(parse_one(&p, hello_masked,
		    sizeof(hello_masked), &f), -1);
		ck_assert_ptr_null(f.payload);
		ws_parser_reset(&p);
		ck_assert_int_eq(parse_one(&p, hello_masked,
		    sizeof(hello_masked), &f), 1);
		ws_frame_free(&f);
	}
}
END_TEST

START_TEST(t_allowed)
{
	/* non-minimal length encodings are allowed */
	ERR(S, 0, 0x82, 0xfe, 0x00, 0x02, K, 0xaa, 0xbb);
	ERR(S, 0, 0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 2, K, 0xaa, 0xbb);
	ERR(C, 0, 0x82, 0x7e, 0x00, 0x00);
	/* control frames inside a fragmented message; empty frames */
	ERR(S, 0, 0x01, 0x80, K, 0x89, 0x80, K, 0x8a, 0x80, K, 0x00, 0x80,
	    K, 0x80, 0x80, K);
	ERR(C, 0, 0x02, 0x00, 0x88, 0x00, 0x80, 0x00);
	/* a full 125-byte control frame */
	{
		unsigned char	 b[2 + 125];

		memset(b, 'x', sizeof(b));
		b[0] = 0x89;
		b[1] = 125;
		ck_assert_int_eq(errcode(C, 0, b, sizeof(b)), 0);
	}
}
END_TEST

START_TEST(t_close_payload)
{
	static const int bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016,
	    2000, 2999, 5000, 65535 };
	static const int good[] = { 1000, 1001, 1002, 1003, 1007, 1008,
	    1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999 };
	unsigned char	 b[10] = { 0x88, 0x82, K };
	struct run	 run;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b[6] = (bad[i] >> 8) ^ 0x01;
		b[7] = (bad[i] & 0xff) ^ 0x02;
		ck_assert_int_eq(errcode(S, 0, b, 8), 1002);
		ck_assert_int_eq(ws_close_code_valid(bad[i]), 0);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		b[6] = (good[i] >> 8) ^ 0x01;
		b[7] = (good[i] & 0xff) ^ 0x02;
		parse_bytes(S, 0, b, 8, 0, &run);
		ck_assert_int_eq(run.n, 1);
		ck_assert_int_eq(run.r[0].close_code, good[i]);
	}
	/* a one-byte payload */
	ERR(S, 1002, 0x88, 0x81, K, 0x03 ^ 0x01);
	ERR(C, 1002, 0x88, 0x01, 0x03);
	/* no code at all */
	parse_bytes(C, 0, (const unsigned char *)"\x88\x00", 2, 0, &run);
	ck_assert_int_eq(run.n, 1);
	ck_assert_int_eq(run.r[0].close_code, WS_CLOSE_NO_STATUS);
	/* reasons: UTF-8 or 1007 */
	ERR(C, 0, 0x88, 0x05, 0x03, 0xe8, 'b', 0xc3, 0xa9);
	ERR(C, 1007, 0x88, 0x04, 0x03, 0xe8, 'b', 0xc3);
	ERR(C, 1007, 0x88, 0x04, 0x03, 0xe8, 0xc0, 0xaf);
	ERR(C, 1007, 0x88, 0x05, 0x03, 0xe8, 0xed, 0xa0, 0x80);
}
END_TEST

/* ---- caps ---------------------------------------------------------- */

START_TEST(t_caps)
{
	struct ws_parser	 p;
	struct ws_frame		 f;
	struct evbuffer		*in, *pl;
	char			 buf[1001];
	unsigned char		 h[] = { 0x82, 0x7f, 0, 0, 0, 0, 0x08, 0, 0, 1 };

	ck_assert_ptr_nonnull(in = evbuffer_new());
	ck_assert_ptr_nonnull(pl = evbuffer_new());
	memset(buf, 'a', sizeof(buf));

	/* the default cap: 128 MiB + 1 fails on the header alone */
	ws_parser_init(&p, C, 0);
	ck_assert_uint_eq(p.max_message, 128u * 1024 * 1024);
	evbuffer_add(in, h, sizeof(h));
	ck_assert_int_eq(ws_parse(&p, in, &f), -1);
	ck_assert_int_eq(p.error, WS_CLOSE_TOO_BIG);
	evbuffer_drain(in, -1);
	/* exactly 128 MiB is fine: header accepted, payload awaited */
	ws_parser_init(&p, C, 0);
	h[9] = 0;
	evbuffer_add(in, h, sizeof(h));
	ck_assert_int_eq(ws_parse(&p, in, &f), 0);
	evbuffer_drain(in, -1);

	/* one frame over a 1000-byte cap */
	ws_parser_init(&p, C, 1000);
	evbuffer_add(pl, buf, 1001);
	ws_write_frame(in, WS_OP_BINARY, 1, pl, NULL);
	ck_assert_int_eq(ws_parse(&p, in, &f), -1);
	ck_assert_int_eq(p.error, WS_CLOSE_TOO_BIG);
	evbuffer_drain(in, -1);

	/* 600 + 400 fits, 600 + 401 does not; controls do not count */
	ws_parser_init(&p, S, 1000);
	evbuffer_add(pl, buf, 600);
	ws_write_frame(in, WS_OP_TEXT, 0, pl, key1);
	ws_write_frame(in, WS_OP_PING, 1, NULL, key1);
	evbuffer_add(pl, buf, 400);
	ws_write_frame(in, WS_OP_CONT, 1, pl, key1);
	evbuffer_add(pl, buf, 600);
	ws_write_frame(in, WS_OP_BINARY, 0, pl, key1);
	evbuffer_add(pl, buf, 100);
	ws_write_frame(in, WS_OP_PONG, 1, pl, key1);
	evbuffer_add(pl, buf, 300);
	ws_write_frame(in, WS_OP_CONT, 0, pl, key1);
	ws_write_frame(in, WS_OP_CONT, 0, NULL, key1);
	/* header of a 101-byte continuation only: fails without payload */
	evbuffer_add(in, "\x80\xe5", 2);
	evbuffer_add(in, key1, 4);
	for (;;) {
		int rc = ws_parse(&p, in, &f);

		ws_frame_free(&f);
		if (rc != 1) {
			ck_assert_int_eq(rc, -1);
			break;
		}
	}
	ck_assert_int_eq(p.error, WS_CLOSE_TOO_BIG);
	ck_assert_uint_eq(evbuffer_get_length(in), 6);
	evbuffer_free(in);
	evbuffer_free(pl);
}
END_TEST

/* ---- round trips --------------------------------------------------- */

START_TEST(t_round_trip)
{
	static const int	 ops[] = { WS_OP_TEXT, WS_OP_BINARY,
	    WS_OP_CONT, WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
	static const size_t	 sizes[] = { 0, 125, 126, 65535, 65536 };
	struct ws_parser	 p;
	struct ws_frame		 f;
	struct evbuffer		*out, *pl;
	unsigned char		*data;
	size_t			 i, j, k, len;
	int			 masked, op;

	ck_assert_ptr_nonnull(data = malloc(65536));
	for (i = 0; i < 65536; i++)
		data[i] = (i % 95) + 32;
	ck_assert_ptr_nonnull(out = evbuffer_new());
	ck_assert_ptr_nonnull(pl = evbuffer_new());
	for (masked = 0; masked <= 1; masked++)
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
	for (j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
		op = ops[i];
		len = sizes[j];
		if (ws_is_control(op) && len > WS_CONTROL_MAX) {
			evbuffer_add(pl, data, len);
			ck_assert_int_eq(ws_write_frame(out, op, 1, pl,
			    masked ? key1 : NULL), -1);
			evbuffer_drain(pl, -1);
			continue;
		}
		if (op == WS_OP_CLOSE && len == 1)
			continue;
		ws_parser_init(&p, masked ? S : C, 0);
		if (op == WS_OP_CONT) {
			/* a start to continue */
			evbuffer_add(pl, "s", 1);
			ck_assert_int_eq(ws_write_frame(out, WS_OP_BINARY, 0,
			    pl, masked ? key1 : NULL), 0);
			ck_assert_int_eq(ws_parse(&p, out, &f), 1);
			ws_frame_free(&f);
		}
		if (op == WS_OP_CLOSE && len >= 2) {
			evbuffer_add(pl, "\x03\xe8", 2);
			evbuffer_add(pl, data, len - 2);
		} else
			evbuffer_add(pl, data, len);
		k = evbuffer_get_length(pl);
		ck_assert_int_eq(ws_write_frame(out, op, 1, pl,
		    masked ? key1 : NULL), 0);
		ck_assert_uint_eq(evbuffer_get_length(pl), 0);
		ck_assert_uint_eq(evbuffer_get_length(out), k + 2 +
		    (k >= 126 ? (k > 65535 ? 8 : 2) : 0) + (masked ? 4 : 0));
		ck_assert_int_eq(ws_parse(&p, out, &f), 1);
		ck_assert_int_eq(f.opcode, op);
		ck_assert_int_eq(f.fin, 1);
		ck_assert_uint_eq(evbuffer_get_length(f.payload), k);
		if (op == WS_OP_CLOSE && len >= 2) {
			ck_assert_int_eq(f.close_code, 1000);
			ck_assert_mem_eq(evbuffer_pullup(f.payload, -1),
			    "\x03\xe8", 2);
			evbuffer_drain(f.payload, 2);
			check_payload(f.payload, data, len - 2);
		} else
			check_payload(f.payload, data, len);
		ws_frame_free(&f);
		ck_assert_uint_eq(evbuffer_get_length(out), 0);
	}
	/* fragmented frames, fin = 0, with a 64-bit length */
	ws_parser_init(&p, S, 0);
	for (i = 0; i < 3; i++) {
		evbuffer_add(pl, data, 65536);
		ck_assert_int_eq(ws_write_frame(out, i ? WS_OP_CONT :
		    WS_OP_TEXT, i == 2, pl, key1), 0);
		ck_assert_int_eq(ws_parse(&p, out, &f), 1);
		ck_assert_int_eq(f.fin, i == 2);
		ck_assert_int_eq(f.msg_opcode, WS_OP_TEXT);
		check_payload(f.payload, data, 65536);
		ws_frame_free(&f);
	}
	/* the writer refuses what the parser would */
	ck_assert_int_eq(ws_write_frame(out, WS_OP_PING, 0, NULL, NULL), -1);
	ck_assert_int_eq(ws_write_frame(out, 3, 1, NULL, NULL), -1);
	ck_assert_int_eq(ws_write_frame(out, 0xb, 1, NULL, NULL), -1);
	ck_assert_int_eq(ws_write_close(out, 1005, NULL, NULL), -1);
	ck_assert_int_eq(ws_write_close(out, 999, "x", NULL), -1);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	evbuffer_free(out);
	evbuffer_free(pl);
	free(data);
}
END_TEST

/* A payload in many small chains, masked and unmasked in place. */
START_TEST(t_chains)
{
	struct ws_parser	 p;
	struct ws_frame		 f;
	struct evbuffer		*out, *pl;
	unsigned char		 key[4], *data, *got;
	size_t			 i, off, n, len = (1 << 20) + 3;

	ck_assert_ptr_nonnull(data = malloc(len));
	for (i = 0; i < len; i++)
		data[i] = i * 31 + (i >> 9);
	ck_assert_ptr_nonnull(out = evbuffer_new());
	ck_assert_ptr_nonnull(pl = evbuffer_new());
	for (off = 0, n = 1; off < len; off += n, n = n % 4093 + 7) {
		if (n > len - off)
			n = len - off;
		evbuffer_add(pl, data + off, n);
		evbuffer_add_buffer(out, pl);	/* keep chains apart */
	}
	evbuffer_add_buffer(pl, out);
	ws_mask_key(key);
	ck_assert_int_eq(ws_write_frame(out, WS_OP_BINARY, 1, pl, key), 0);
	ws_parser_init(&p, S, 0);
	ck_assert_int_eq(ws_parse(&p, out, &f), 1);
	ck_assert_uint_eq(evbuffer_get_length(f.payload), len);
	ck_assert_ptr_nonnull(got = evbuffer_pullup(f.payload, -1));
	ck_assert_int_eq(memcmp(got, data, len), 0);
	ws_frame_free(&f);
	evbuffer_free(out);
	evbuffer_free(pl);
	free(data);
}
END_TEST

/* ---- UTF-8 --------------------------------------------------------- */

START_TEST(t_utf8)
{
	static const struct {
		const char	*s;
		int		 ok;
	} v[] = {
		{ "", 1 },
		{ "plain ascii", 1 },
		{ "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1 },
		{ "\xe2\x82\xac", 1 },			/* U+20AC */
		{ "\xef\xbf\xbf", 1 },			/* U+FFFF */
		{ "\xf0\x90\x80\x80", 1 },		/* U+10000 */
		{ "\xf4\x8f\xbf\xbf", 1 },		/* U+10FFFF */
		{ "\xed\x9f\xbf", 1 },			/* U+D7FF */
		{ "\xee\x80\x80", 1 },			/* U+E000 */
		{ "\xc0\xaf", 0 },			/* overlong / */
		{ "\xc1\xbf", 0 },
		{ "\xe0\x80\xaf", 0 },
		{ "\xe0\x9f\xbf", 0 },
		{ "\xf0\x80\x80\xaf", 0 },
		{ "\xf0\x8f\xbf\xbf", 0 },
		{ "\xed\xa0\x80", 0 },			/* U+D800 */
		{ "\xed\xbf\xbf", 0 },			/* U+DFFF */
		{ "\xf4\x90\x80\x80", 0 },		/* U+110000 */
		{ "\xf5\x80\x80\x80", 0 },
		{ "\xff", 0 },
		{ "\x80", 0 },				/* stray */
		{ "a\xbf", 0 },
		{ "\xe2\x82", 0 },			/* truncated */
		{ "\xe2\x82" "a", 0 },
		{ "\xf0\x90\x80", 0 },
	};
	struct ws_utf8	 st;
	size_t		 i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		ck_assert_msg(ws_utf8_valid((const unsigned char *)v[i].s,
		    strlen(v[i].s)) == v[i].ok, "utf8 vector %zu", i);
	/* with the NUL in the middle */
	ck_assert_int_eq(ws_utf8_valid((const unsigned char *)"a\0b", 3), 1);
	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(ws_utf8_feed(&st, (const unsigned char *)"\xf0", 1),
	    0);
	ck_assert_int_eq(st.need, 3);
	ck_assert_int_eq(ws_utf8_feed(&st, (const unsigned char *)"\x8f", 1),
	    -1);
}
END_TEST

START_TEST(t_utf8_frames)
{
	/* a character split across fragments, and a control between */
	ERR(C, 0, 0x01, 0x01, 0xe2, 0x89, 0x00, 0x80, 0x02, 0x82, 0xac);
	ERR(C, 0, 0x01, 0x02, 'a', 0xf0, 0x00, 0x01, 0x90, 0x00, 0x00,
	    0x80, 0x02, 0x80, 0x80);
	/* truncated at the end of the message */
	ERR(C, 1007, 0x01, 0x01, 0xe2, 0x80, 0x01, 0x82);
	ERR(C, 1007, 0x81, 0x02, 'a', 0xc3);
	/* overlong / surrogate across the boundary */
	ERR(C, 1007, 0x01, 0x01, 0xe0, 0x80, 0x02, 0x80, 0xaf);
	ERR(C, 1007, 0x01, 0x01, 0xed, 0x80, 0x02, 0xa0, 0x80);
	/* binary is not checked */
	ERR(C, 0, 0x82, 0x02, 0xff, 0xfe);
	ERR(C, 0, 0x02, 0x01, 0xe2, 0x80, 0x01, 0x82);
	/* a bad fragment fails at once, before the message ends */
	{
		const unsigned char b[] = { 0x01, 0x02, 'a', 0xff };
		struct run	 run;

		parse_bytes(C, 0, b, sizeof(b), 0, &run);
		ck_assert_int_eq(run.rc, -1);
		ck_assert_int_eq(run.error, 1007);
		ck_assert_int_eq(run.n, 0);
	}
	/* a masked multi-byte text */
	ERR(S, 0, 0x81, 0x83, K, 0xe2 ^ 0x01, 0x82 ^ 0x02, 0xac ^ 0x03);
	ERR(S, 1007, 0x81, 0x82, K, 0xc0 ^ 0x01, 0xaf ^ 0x02);
}
END_TEST

START_TEST(t_write_close)
{
	struct ws_parser	 p;
	struct ws_frame		 f;
	struct evbuffer		*out;
	char			 reason[301];
	size_t			 i;

	ck_assert_ptr_nonnull(out = evbuffer_new());
	/* 2-byte characters cut at a boundary: 122 bytes of reason */
	for (i = 0; i < 150; i++)
		memcpy(reason + 2 * i, "\xc3\xa9", 2);
	reason[300] = '\0';
	ck_assert_int_eq(ws_write_close(out, 1009, reason, key1), 0);
	ck_assert_uint_eq(evbuffer_get_length(out), 2 + 4 + 2 + 122);
	ws_parser_init(&p, S, 0);
	ck_assert_int_eq(ws_parse(&p, out, &f), 1);
	ck_assert_int_eq(f.opcode, WS_OP_CLOSE);
	ck_assert_int_eq(f.close_code, 1009);
	ws_frame_free(&f);
	/* code 0: an empty close */
	ck_assert_int_eq(ws_write_close(out, 0, "ignored", NULL), 0);
	check_payload(out, "\x88\x00", 2);
	evbuffer_drain(out, -1);
	ck_assert_int_eq(ws_write_close(out, 4000, "x", NULL), 0);
	check_payload(out, "\x88\x03\x0f\xa0x", 5);
	evbuffer_free(out);
}
END_TEST

static Suite *
byproxy_ws_suite(void)
{
	Suite	*s = suite_create("byproxy_ws");
	TCase	*tc = tcase_create("codec");

	tcase_add_test(tc, t_accept_key);
	tcase_add_test(tc, t_rfc_examples);
	tcase_add_test(tc, t_split_every_byte);
	tcase_add_test(tc, t_protocol_errors);
	tcase_add_test(tc, t_allowed);
	tcase_add_test(tc, t_close_payload);
	tcase_add_test(tc, t_caps);
	tcase_add_test(tc, t_round_trip);
	tcase_add_test(tc, t_chains);
	tcase_add_test(tc, t_utf8);
	tcase_add_test(tc, t_utf8_frames);
	tcase_add_test(tc, t_write_close);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(byproxy_ws_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
