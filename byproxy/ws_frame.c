/*
 * WebSocket frame codec (RFC 6455): see ws_frame.h.
 */

#include <sys/types.h>

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sha1.h>
#include <event2/buffer.h>

#include "ws_frame.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN	24	/* base64 of 16 bytes */

typedef int	(*ws_chunk_fn)(unsigned char *, size_t, size_t, void *);

static int	ws_fail(struct ws_parser *, int);
static int	ws_foreach(struct evbuffer *, ws_chunk_fn, void *);
static int	ws_unmask_chunk(unsigned char *, size_t, size_t, void *);
static int	ws_utf8_chunk(unsigned char *, size_t, size_t, void *);
static int	ws_check_close(struct ws_frame *);
static void	ws_base64(const unsigned char *, size_t, char *);

void
ws_parser_init(struct ws_parser *p, enum ws_role role, uint64_t max_message)
{
	memset(p, 0, sizeof(*p));
	p->role = role;
	if (max_message == 0)
		max_message = WS_MESSAGE_MAX_DEFAULT;
	p->max_message = max_message;
	p->max_frame = max_message;
}

/* Forget a failure and any message in progress; the limits stay. */
void
ws_parser_reset(struct ws_parser *p)
{
	p->error = 0;
	p->msg_opcode = 0;
	p->msg_len = 0;
	memset(&p->utf8, 0, sizeof(p->utf8));
}

int
ws_is_control(int opcode)
{
	return (opcode & 0x8) != 0;
}

int
ws_is_known_opcode(int opcode)
{
	switch (opcode) {
	case WS_OP_CONT:
	case WS_OP_TEXT:
	case WS_OP_BINARY:
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		return 1;
	default:
		return 0;
	}
}

/*
 * Codes a close frame may carry on the wire: the defined ones (1004 is
 * reserved, 1005 and 1006 are for local use, 1015 is TLS), 1012-1014
 * as registered with IANA, and 3000-4999 for libraries and applications.
 */
int
ws_close_code_valid(int code)
{
	if (code >= 1000 && code <= 1003)
		return 1;
	if (code >= 1007 && code <= 1014)
		return 1;
	return code >= 3000 && code <= 4999;
}

/*
 * Feed bytes to an incremental UTF-8 check; -1 at the first byte that
 * cannot continue a valid sequence (overlong forms, surrogates, code
 * points past U+10FFFF, stray continuation bytes).  A complete text has
 * st->need == 0 at its end.
 */
int
ws_utf8_feed(struct ws_utf8 *st, const unsigned char *s, size_t len)
{
	size_t		 i;
	unsigned char	 c;

	for (i = 0; i < len; i++) {
		c = s[i];
		if (st->need == 0) {
			if (c < 0x80)
				continue;
			st->lo = 0x80;
			st->hi = 0xbf;
			if (c >= 0xc2 && c <= 0xdf)
				st->need = 1;
			else if (c >= 0xe0 && c <= 0xef) {
				st->need = 2;
				if (c == 0xe0)
					st->lo = 0xa0;	/* overlong */
				else if (c == 0xed)
					st->hi = 0x9f;	/* surrogates */
			} else if (c >= 0xf0 && c <= 0xf4) {
				st->need = 3;
				if (c == 0xf0)
					st->lo = 0x90;	/* overlong */
				else if (c == 0xf4)
					st->hi = 0x8f;	/* > U+10FFFF */
			} else
				return -1;
			continue;
		}
		if (c < st->lo || c > st->hi)
			return -1;
		st->need--;
		st->lo = 0x80;
		st->hi = 0xbf;
	}
	return 0;
}

int
ws_utf8_valid(const unsigned char *s, size_t len)
{
	struct ws_utf8	 st;

	memset(&st, 0, sizeof(st));
	return ws_utf8_feed(&st, s, len) == 0 && st.need == 0;
}

static int
ws_fail(struct ws_parser *p, int code)
{
	p->error = code;
	return -1;
}

/* Call fn on each contiguous piece of b, in place, with its offset. */
static int
ws_foreach(struct evbuffer *b, ws_chunk_fn fn, void *arg)
{
	struct evbuffer_ptr	 pos;
	struct evbuffer_iovec	 v[8];
	size_t			 total, off = 0, step, n;
	int			 i, nv;

	total = evbuffer_get_length(b);
	if (total == 0)
		return 0;
	if (evbuffer_ptr_set(b, &pos, 0, EVBUFFER_PTR_SET) == -1)
		return -1;
	while (off < total) {
		nv = evbuffer_peek(b, total - off, &pos, v, 8);
		if (nv <= 0)
			return -1;
		if (nv > 8)
			nv = 8;
		step = 0;
		for (i = 0; i < nv && off + step < total; i++) {
			n = v[i].iov_len;
			if (n > total - off - step)
				n = total - off - step;
			if (fn(v[i].iov_base, n, off + step, arg) == -1)
				return -1;
			step += n;
		}
		if (step == 0)
			return -1;
		off += step;
		if (off < total &&
		    evbuffer_ptr_set(b, &pos, step, EVBUFFER_PTR_ADD) == -1)
			return -1;
	}
	return 0;
}

static int
ws_unmask_chunk(unsigned char *s, size_t len, size_t off, void *arg)
{
	const unsigned char	*key = arg;
	unsigned char		 k[4];
	uint32_t		 w, kw;
	size_t			 i = 0;

	for (; i < len && ((uintptr_t)(s + i) & 3) != 0; i++)
		s[i] ^= key[(off + i) & 3];
	/* four bytes at a time, with the key turned to this phase */
	for (w = 0; w < 4; w++)
		k[w] = key[(off + i + w) & 3];
	memcpy(&kw, k, 4);
	for (; i + 4 <= len; i += 4) {
		memcpy(&w, s + i, 4);
		w ^= kw;
		memcpy(s + i, &w, 4);
	}
	for (; i < len; i++)
		s[i] ^= key[(off + i) & 3];
	return 0;
}

static int
ws_utf8_chunk(unsigned char *s, size_t len, size_t off, void *arg)
{
	return ws_utf8_feed(arg, s, len);
}

/* A close payload: empty, or a valid code and a UTF-8 reason. */
static int
ws_check_close(struct ws_frame *f)
{
	unsigned char	 b[WS_CONTROL_MAX];
	size_t		 len;
	int		 code;

	len = evbuffer_get_length(f->payload);
	if (len == 0) {
		f->close_code = WS_CLOSE_NO_STATUS;
		return 0;
	}
	if (len == 1 || len > sizeof(b))
		return WS_CLOSE_PROTOCOL;
	if (evbuffer_copyout(f->payload, b, len) != (ev_ssize_t)len)
		return WS_CLOSE_INTERNAL;
	code = b[0] << 8 | b[1];
	if (!ws_close_code_valid(code))
		return WS_CLOSE_PROTOCOL;
	if (!ws_utf8_valid(b + 2, len - 2))
		return WS_CLOSE_INVALID_DATA;
	f->close_code = code;
	return 0;
}

/*
 * Take one frame off in: 1 with a frame in *f (free it with
 * ws_frame_free), 0 if more input is needed, -1 on a protocol error
 * with the close code in p->error.  *f holds no payload unless 1.
 */
int
ws_parse(struct ws_parser *p, struct evbuffer *in, struct ws_frame *f)
{
	unsigned char	 h[WS_HEADER_MAX], key[4];
	size_t		 avail, n, hlen;
	uint64_t	 len;
	int		 opcode, fin, rsv, masked, text, code, i;

	memset(f, 0, sizeof(*f));
	if (p->error)
		return -1;
	if ((avail = evbuffer_get_length(in)) == 0)
		return 0;
	n = avail < sizeof(h) ? avail : sizeof(h);
	if (evbuffer_copyout(in, h, n) != (ev_ssize_t)n)
		return ws_fail(p, WS_CLOSE_INTERNAL);

	fin = (h[0] & 0x80) != 0;
	rsv = h[0] & 0x70;
	opcode = h[0] & 0x0f;
	if (rsv & ~p->rsv_allowed)
		return ws_fail(p, WS_CLOSE_PROTOCOL);
	if (!ws_is_known_opcode(opcode))
		return ws_fail(p, WS_CLOSE_PROTOCOL);
	if (ws_is_control(opcode)) {
		if (!fin)
			return ws_fail(p, WS_CLOSE_PROTOCOL);
	} else if (opcode == WS_OP_CONT) {
		if (p->msg_opcode == 0)
			return ws_fail(p, WS_CLOSE_PROTOCOL);
	} else if (p->msg_opcode != 0)
		return ws_fail(p, WS_CLOSE_PROTOCOL);
	if (n < 2)
		return 0;

	masked = (h[1] & 0x80) != 0;
	if (masked != (p->role == WS_ROLE_SERVER))
		return ws_fail(p, WS_CLOSE_PROTOCOL);
	len = h[1] & 0x7f;
	if (ws_is_control(opcode) && len > WS_CONTROL_MAX)
		return ws_fail(p, WS_CLOSE_PROTOCOL);
	hlen = 2;
	if (len == 126)
		hlen += 2;
	else if (len == 127)
		hlen += 8;
	if (n < hlen)
		return 0;
	if (len == 126)
		len = (uint64_t)h[2] << 8 | h[3];
	else if (len == 127) {
		if (h[2] & 0x80)
			return ws_fail(p, WS_CLOSE_PROTOCOL);
		len = 0;
		for (i = 2; i < 10; i++)
			len = len << 8 | h[i];
	}
	/* caps checked on the header alone, before the payload is read */
	if (len > p->max_frame || len > INT_MAX)
		return ws_fail(p, WS_CLOSE_TOO_BIG);
	if (!ws_is_control(opcode) && len > p->max_message - p->msg_len)
		return ws_fail(p, WS_CLOSE_TOO_BIG);
	if (masked) {
		if (n < hlen + 4)
			return 0;
		memcpy(key, h + hlen, 4);
		hlen += 4;
	}
	if (avail - hlen < len)
		return 0;

	if ((f->payload = evbuffer_new()) == NULL)
		return ws_fail(p, WS_CLOSE_INTERNAL);
	if (evbuffer_drain(in, hlen) == -1 ||
	    (len > 0 && evbuffer_remove_buffer(in, f->payload, len) !=
	    (int)len)) {
		code = WS_CLOSE_INTERNAL;
		goto fail;
	}
	if (masked && ws_foreach(f->payload, ws_unmask_chunk, key) == -1) {
		code = WS_CLOSE_INTERNAL;
		goto fail;
	}
	f->opcode = opcode;
	f->fin = fin;
	f->rsv = rsv;

	if (opcode == WS_OP_CLOSE) {
		if ((code = ws_check_close(f)) != 0)
			goto fail;
		return 1;
	}
	if (ws_is_control(opcode))
		return 1;

	if (opcode != WS_OP_CONT) {
		p->msg_opcode = opcode;
		p->msg_len = 0;
		memset(&p->utf8, 0, sizeof(p->utf8));
	}
	p->msg_len += len;
	f->msg_opcode = p->msg_opcode;
	text = p->msg_opcode == WS_OP_TEXT;
	/* with an extension's RSV bit set the payload is not plain text */
	if (text && rsv == 0 &&
	    (ws_foreach(f->payload, ws_utf8_chunk, &p->utf8) == -1 ||
	    (fin && p->utf8.need != 0))) {
		code = WS_CLOSE_INVALID_DATA;
		goto fail;
	}
	if (fin) {
		p->msg_opcode = 0;
		p->msg_len = 0;
	}
	return 1;

 fail:
	ws_frame_free(f);
	return ws_fail(p, code);
}

void
ws_frame_free(struct ws_frame *f)
{
	if (f->payload != NULL)
		evbuffer_free(f->payload);
	f->payload = NULL;
}

/*
 * Append one frame to out, moving payload (may be NULL) into it and
 * masking it in place first if mask is given.  -1 for an unknown
 * opcode, a fragmented or oversized control frame, or no memory.
 */
int
ws_write_frame(struct evbuffer *out, int opcode, int fin,
    struct evbuffer *payload, const unsigned char *mask)
{
	unsigned char	 h[WS_HEADER_MAX];
	uint64_t	 len;
	size_t		 hlen;
	int		 i, mbit;

	len = payload != NULL ? evbuffer_get_length(payload) : 0;
	if (!ws_is_known_opcode(opcode))
		return -1;
	if (ws_is_control(opcode) && (!fin || len > WS_CONTROL_MAX))
		return -1;
	h[0] = (fin ? 0x80 : 0) | opcode;
	mbit = mask != NULL ? 0x80 : 0;
	if (len < 126) {
		h[1] = mbit | len;
		hlen = 2;
	} else if (len <= 0xffff) {
		h[1] = mbit | 126;
		h[2] = len >> 8;
		h[3] = len & 0xff;
		hlen = 4;
	} else {
		h[1] = mbit | 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (len >> (56 - 8 * i)) & 0xff;
		hlen = 10;
	}
	if (mask != NULL) {
		memcpy(h + hlen, mask, 4);
		hlen += 4;
		if (len > 0 && ws_foreach(payload, ws_unmask_chunk,
		    (void *)(uintptr_t)mask) == -1)
			return -1;
	}
	if (evbuffer_add(out, h, hlen) == -1)
		return -1;
	if (len > 0 && evbuffer_add_buffer(out, payload) == -1)
		return -1;
	return 0;
}

/*
 * Append a close frame: code 0 sends none (and no reason); otherwise
 * the code must be one that may be sent, and the reason (may be NULL)
 * is cut to 123 bytes at a character boundary.
 */
int
ws_write_close(struct evbuffer *out, int code, const char *reason,
    const unsigned char *mask)
{
	struct evbuffer	*b;
	unsigned char	 c[2];
	size_t		 rlen;
	int		 rc = -1;

	if (code != 0 && !ws_close_code_valid(code))
		return -1;
	if ((b = evbuffer_new()) == NULL)
		return -1;
	if (code != 0) {
		rlen = reason != NULL ? strlen(reason) : 0;
		if (rlen > WS_CLOSE_REASON_MAX) {
			rlen = WS_CLOSE_REASON_MAX;
			while (rlen > 0 &&
			    ((unsigned char)reason[rlen] & 0xc0) == 0x80)
				rlen--;
		}
		c[0] = code >> 8;
		c[1] = code & 0xff;
		if (evbuffer_add(b, c, 2) == -1 ||
		    (rlen > 0 && evbuffer_add(b, reason, rlen) == -1))
			goto done;
	}
	rc = ws_write_frame(out, WS_OP_CLOSE, 1, b, mask);
 done:
	evbuffer_free(b);
	return rc;
}

/* A fresh masking key for a client-role frame. */
void
ws_mask_key(unsigned char key[4])
{
	arc4random_buf(key, 4);
}

static void
ws_base64(const unsigned char *s, size_t len, char *out)
{
	static const char	 tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t		 v;
	size_t			 i;

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 0x3f];
		*out++ = tab[(v >> 6) & 0x3f];
		*out++ = tab[v & 0x3f];
	}
	if (len - i == 1) {
		v = (uint32_t)s[i] << 16;
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 0x3f];
		*out++ = '=';
		*out++ = '=';
	} else if (len - i == 2) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 0x3f];
		*out++ = tab[(v >> 6) & 0x3f];
		*out++ = '=';
	}
	*out = '\0';
}

/*
 * Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key +
 * GUID)).  -1 unless the key is the base64 of 16 bytes (RFC 6455 4.2.1).
 */
int
ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	SHA1_CTX	 ctx;
	uint8_t		 md[SHA1_DIGEST_LENGTH];
	size_t		 i;
	char		 c;

	out[0] = '\0';
	if (key == NULL || strlen(key) != WS_KEY_LEN ||
	    key[22] != '=' || key[23] != '=')
		return -1;
	for (i = 0; i < 22; i++) {
		c = key[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return -1;
	}
	SHA1Init(&ctx);
	SHA1Update(&ctx, (const uint8_t *)key, WS_KEY_LEN);
	SHA1Update(&ctx, (const uint8_t *)WS_GUID, sizeof(WS_GUID) - 1);
	SHA1Final(md, &ctx);
	ws_base64(md, sizeof(md), out);
	return 0;
}
