/*
 * byctl: admin socket client.
 */

#ifndef BYCTL_H
#define BYCTL_H

#include <jansson.h>

#include "msg.h"
#include "proc.h"

struct command {
	const char	*name;		/* words, e.g. "log level" */
	int		 minargs;
	int		 maxargs;
	uint32_t	 type;		/* request message */
	void		(*print)(json_t *);
	const char	*help;
};

/* byctl_output.c */
void	 print_json(json_t *);
void	 print_status(json_t *);
void	 print_message(json_t *);
void	 print_loglevel(json_t *);

/* byctl_local.c: commands that need no running byd */
int	 local_command(int argc, char **argv, int json, int *rc);

#endif /* BYCTL_H */
