/*
 * Fuzz the message framing: arbitrary bytes arriving on a channel must
 * either frame into messages or be rejected, never crash or leak.
 */

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "msg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msgchan	 c;
	struct msg	 m;
	int		 r;

	msgchan_init(&c, -1, 0, "fuzz");
	evbuffer_add(c.rbuf, data, size);
	while ((r = msg_get(&c, &m)) == 1) {
		if (m.datalen != m.hdr.len - MSG_HDR_LEN)
			__builtin_trap();
		msg_free(&m);
	}
	msgchan_clear(&c);
	return 0;
}
