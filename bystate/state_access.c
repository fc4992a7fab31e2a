/*
 * Control-plane ops: access.
 */

#include "bystate.h"

const struct api_op api_access_ops[] = {
	{ NULL,		0,		NULL }
};
