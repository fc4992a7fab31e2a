/*
 * WebSocket frame codec (RFC 6455), independent of any connection.
 *
 * ws_parse takes whole frames off an input evbuffer, one per call, and
 * checks them against the protocol: masking by role, reserved bits,
 * opcodes, control frame rules, fragmentation order, the frame and
 * message size caps, UTF-8 of text messages (incrementally, frame by
 * frame, so a bad sequence fails as soon as it is seen) and close frame
 * payloads.  A frame is taken only when all of it is in the buffer, but
 * its header is checked as soon as it is there, so an oversized frame
 * fails before its payload is read.  The payload is moved (evbuffer
 * chains, not copied) into the frame's own evbuffer and unmasked in
 * place: the input must therefore be ordinary writable evbuffer memory
 * (what a bufferevent reads), not evbuffer_add_reference segments.
 *
 * On a protocol error ws_parse returns -1 with the close code to send
 * in parser->error (1002, 1007 or 1009); the parser stays failed.
 *
 * ws_write_frame and ws_write_close serialize; the payload is moved
 * into the output and masked in place when a key is given (client
 * role, towards R workers; the server role sends unmasked frames).
 */

#ifndef WS_FRAME_H
#define WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#define WS_OP_CONT		0x0
#define WS_OP_TEXT		0x1
#define WS_OP_BINARY		0x2
#define WS_OP_CLOSE		0x8
#define WS_OP_PING		0x9
#define WS_OP_PONG		0xa

#define WS_CLOSE_NORMAL		1000
#define WS_CLOSE_GOING_AWAY	1001
#define WS_CLOSE_PROTOCOL	1002
#define WS_CLOSE_UNSUPPORTED	1003
#define WS_CLOSE_NO_STATUS	1005	/* never sent: close without a code */
#define WS_CLOSE_ABNORMAL	1006	/* never sent: connection lost */
#define WS_CLOSE_INVALID_DATA	1007
#define WS_CLOSE_POLICY		1008
#define WS_CLOSE_TOO_BIG	1009
#define WS_CLOSE_INTERNAL	1011
#define WS_CLOSE_TRY_AGAIN	1013

#define WS_MESSAGE_MAX_DEFAULT	((uint64_t)128 * 1024 * 1024)
#define WS_CONTROL_MAX		125
#define WS_CLOSE_REASON_MAX	123
#define WS_HEADER_MAX		14
#define WS_ACCEPT_LEN		28	/* without the NUL */

enum ws_role {
	WS_ROLE_SERVER,		/* peer is a client: its frames are masked */
	WS_ROLE_CLIENT		/* peer is a server: its frames are not */
};

/* An incremental UTF-8 check: zero it to start. */
struct ws_utf8 {
	uint8_t		 need;		/* continuation bytes still due */
	uint8_t		 lo;		/* range of the next one */
	uint8_t		 hi;
};

struct ws_parser {
	enum ws_role	 role;
	uint64_t	 max_frame;	/* payload bytes of one frame */
	uint64_t	 max_message;	/* payload bytes of one message */
	int		 rsv_allowed;	/* RSV bits an extension uses: 0x70 */
	int		 error;		/* close code once failed, else 0 */

	/* the data message in progress, if any */
	int		 msg_opcode;	/* WS_OP_TEXT/BINARY, 0 if none */
	uint64_t	 msg_len;	/* payload bytes so far */
	struct ws_utf8	 utf8;		/* text messages */
};

struct ws_frame {
	int		 opcode;	/* as sent: WS_OP_CONT for continuations */
	int		 msg_opcode;	/* data frames: TEXT/BINARY of the message */
	int		 fin;
	int		 rsv;		/* the RSV bits (0x70), when allowed */
	struct evbuffer	*payload;	/* unmasked, owned by the frame */
	int		 close_code;	/* close frames: code, 1005 if none */
};

void	 ws_parser_init(struct ws_parser *, enum ws_role, uint64_t);
void	 ws_parser_reset(struct ws_parser *);
int	 ws_parse(struct ws_parser *, struct evbuffer *, struct ws_frame *);
void	 ws_frame_free(struct ws_frame *);

int	 ws_write_frame(struct evbuffer *, int, int, struct evbuffer *,
	    const unsigned char *);
int	 ws_write_close(struct evbuffer *, int, const char *,
	    const unsigned char *);
void	 ws_mask_key(unsigned char [4]);

int	 ws_accept_key(const char *, char [WS_ACCEPT_LEN + 1]);
int	 ws_is_control(int);
int	 ws_is_known_opcode(int);
int	 ws_close_code_valid(int);
int	 ws_utf8_feed(struct ws_utf8 *, const unsigned char *, size_t);
int	 ws_utf8_valid(const unsigned char *, size_t);

#endif /* WS_FRAME_H */
