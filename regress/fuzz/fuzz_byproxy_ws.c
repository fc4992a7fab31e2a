/*
 * libFuzzer target for the byproxy WebSocket frame parser.  The first
 * byte picks the feed size and the message cap; the rest is what a
 * browser sends, fed to a server-role parser until it fails or the
 * input runs out.  Each frame it returns is written again, masked, and
 * must parse back to the same frame in a second parser.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "ws_frame.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
same(struct ws_frame *a, struct ws_frame *b)
{
	size_t	 len;

	len = evbuffer_get_length(a->payload);
	if (a->opcode != b->opcode || a->fin != b->fin ||
	    a->msg_opcode != b->msg_opcode ||
	    a->close_code != b->close_code ||
	    len != evbuffer_get_length(b->payload))
		abort();
	if (len > 0 && memcmp(evbuffer_pullup(a->payload, -1),
	    evbuffer_pullup(b->payload, -1), len) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[4] = { 0x5a, 0xa5, 0x00, 0xff };
	struct ws_parser	 p, q;
	struct ws_frame		 f, g;
	struct evbuffer		*in, *echo, *copy;
	size_t			 off = 0, n, step;
	int			 rc;

	if (size < 1)
		return 0;
	step = (data[0] & 0x0f) + 1;
	if (data[0] & 0x80)
		step = size;
	ws_parser_init(&p, WS_ROLE_SERVER, data[0] & 0x40 ? 64 : 0);
	ws_parser_init(&q, WS_ROLE_SERVER, p.max_message);
	data++;
	size--;
	if ((in = evbuffer_new()) == NULL || (echo = evbuffer_new()) == NULL ||
	    (copy = evbuffer_new()) == NULL)
		abort();
	rc = 0;
	while (off < size && rc != -1) {
		n = size - off < step ? size - off : step;
		evbuffer_add(in, data + off, n);
		off += n;
		while ((rc = ws_parse(&p, in, &f)) == 1) {
			/* write it again and read it back */
			evbuffer_add(copy, evbuffer_pullup(f.payload, -1),
			    evbuffer_get_length(f.payload));
			if (ws_write_frame(echo, f.opcode, f.fin, copy,
			    key) == -1)
				abort();
			if (ws_parse(&q, echo, &g) != 1)
				abort();
			same(&f, &g);
			if (evbuffer_get_length(echo) != 0)
				abort();
			ws_frame_free(&g);
			ws_frame_free(&f);
		}
		if (rc == -1 && p.error != 1002 && p.error != 1007 &&
		    p.error != 1009)
			abort();
	}
	evbuffer_free(in);
	evbuffer_free(echo);
	evbuffer_free(copy);
	return 0;
}
