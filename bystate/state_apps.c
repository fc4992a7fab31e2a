/*
 * Control-plane ops: apps.
 */

#include "bystate.h"

const struct api_op api_app_ops[] = {
	{ NULL,		0,		NULL }
};
