#ifndef BY_UUID_H
#define BY_UUID_H

#include <stddef.h>

#define UUID_LEN	37		/* 36 characters and the NUL */

/* A random (version 4) UUID from getrandom(2), lowercase text. */
void	 uuid_v4(char *, size_t);

#endif /* BY_UUID_H */
