/*
 * libFuzzer target for the configuration parser: any bytes as a config
 * file with an empty environment.  Whatever is accepted must survive
 * the JSON round trip unchanged.  A leading '!' lifts the refusal of
 * features not built yet, so their validation is fuzzed too.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "config_keys.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *
no_env(const char *name, void *arg)
{
	return NULL;
}

static void
roundtrip(const struct config *c)
{
	struct config	*back;
	json_t		*j;
	char		 err[512];

	if ((j = config_to_json(c)) == NULL)
		abort();
	if ((back = config_from_json(j, err, sizeof(err))) == NULL)
		abort();
	if (!config_equal(c, back))
		abort();
	config_free(back);
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*c;
	char		*text, err[1024];
	int64_t		 ms;
	uint64_t	 bytes;

	config_unbuilt_ok = size > 0 && data[0] == '!';
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	c = config_load_string(text, "fuzz.toml", no_env, NULL, err,
	    sizeof(err));
	if (c != NULL) {
		roundtrip(c);
		config_free(c);
	} else if (err[0] == '\0')
		abort();		/* every failure must say why */
	(void)config_parse_duration(text, &ms);
	(void)config_parse_size(text, &bytes);
	free(text);
	return 0;
}
