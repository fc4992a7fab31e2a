/*
 * Random (version 4) UUIDs: the ids of apps, bundles, tokens, tags and
 * workers.
 */

#include <sys/types.h>
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>

#include "log.h"
#include "uuid.h"

void
uuid_v4(char *buf, size_t len)
{
	unsigned char	 b[16], *p = b;
	size_t		 left = sizeof(b);
	ssize_t		 n;

	while (left > 0) {
		if ((n = getrandom(p, left, 0)) == -1) {
			if (errno == EINTR)
				continue;
			fatal("getrandom");
		}
		p += n;
		left -= (size_t)n;
	}
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	snprintf(buf, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
	    b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
