/*
 * Control-plane ops: tags.
 */

#include "bystate.h"

const struct api_op api_tag_ops[] = {
	{ NULL,		0,		NULL }
};
