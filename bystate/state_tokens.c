/*
 * Control-plane ops: tokens.
 */

#include "bystate.h"

const struct api_op api_token_ops[] = {
	{ NULL,		0,		NULL }
};
