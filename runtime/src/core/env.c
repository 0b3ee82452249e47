/*
 * env.c - settings a function reads from the environment, parsed the one
 * way the runtime parses its own: a bad value is an error that names the
 * variable, never a silent default.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

zc_err
zc_env_bool(const char *name, bool dflt, bool *out)
{
	static const char *const yes[] = {"1", "true", "on", "yes"};
	static const char *const no[] = {"0", "false", "off", "no"};
	const char *v = name != NULL ? getenv(name) : NULL;
	size_t i;

	if (name == NULL || out == NULL)
		return ZC_ERR_INVALID;
	if (v == NULL || *v == '\0') {
		*out = dflt;
		return ZC_OK;
	}
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return ZC_OK;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return ZC_OK;
		}
	}
	zc_error("%s=\"%.64s\": expected 1/true/on/yes or 0/false/off/no", name,
		 v);
	return ZC_ERR_INVALID;
}

zc_err
zc_env_choice(const char *name, const char *const *choices, int dflt, int *out)
{
	const char *v = name != NULL ? getenv(name) : NULL;
	char list[256];
	size_t len = 0;
	int i;

	if (name == NULL || choices == NULL || out == NULL)
		return ZC_ERR_INVALID;
	if (v == NULL || *v == '\0') {
		*out = dflt;
		return ZC_OK;
	}
	for (i = 0; choices[i] != NULL; i++)
		if (strcmp(v, choices[i]) == 0) {
			*out = i;
			return ZC_OK;
		}
	list[0] = '\0';
	for (i = 0; choices[i] != NULL && len < sizeof(list) - 1; i++) {
		size_t n = strlen(choices[i]);
		const char *sep = choices[i + 1] == NULL ? "" : " or ";
		if (len + n + strlen(sep) >= sizeof(list))
			break;
		memcpy(list + len, choices[i], n);
		len += n;
		memcpy(list + len, sep, strlen(sep) + 1);
		len += strlen(sep);
	}
	zc_error("%s=\"%.64s\": expected %s", name, v, list);
	return ZC_ERR_INVALID;
}
