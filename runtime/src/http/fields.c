/*
 * fields.c - reading the fields of a request's JSON body: a missing or
 * ill-typed field answers 400 with a JSON error that names it, so a
 * handler checks one result and returns.
 */
#include "http.h"

/* The field, or NULL after a 400 naming what is wrong. */
static json_t *
field_of(const json_t *obj, const char *field, zc_res *res)
{
	json_t *v;

	if (!json_is_object(obj)) {
		zc_res_error(res, 400, "request body must be a JSON object");
		return NULL;
	}
	v = json_object_get(obj, field);
	if (v == NULL)
		zc_res_error(res, 400, "missing field \"%s\"", field);
	return v;
}

zc_err
zc_json_string(const json_t *obj, const char *field, const char **out,
	       zc_res *res)
{
	json_t *v = field_of(obj, field, res);

	if (v == NULL)
		return ZC_ERR_INVALID;
	if (!json_is_string(v)) {
		zc_res_error(res, 400, "field \"%s\" must be a string", field);
		return ZC_ERR_INVALID;
	}
	*out = json_string_value(v);
	return ZC_OK;
}

zc_err
zc_json_value(const json_t *obj, const char *field, json_t **out, zc_res *res)
{
	json_t *v = field_of(obj, field, res);

	if (v == NULL)
		return ZC_ERR_INVALID;
	*out = v;
	return ZC_OK;
}

zc_err
zc_json_money(const json_t *obj, const char *field, int64_t *cents, zc_res *res)
{
	json_t *v = field_of(obj, field, res);

	if (v == NULL)
		return ZC_ERR_INVALID;
	if (!json_is_number(v)) {
		zc_res_error(res, 400, "field \"%s\" must be a number", field);
		return ZC_ERR_INVALID;
	}
	if (zc_money_from_json(v, cents) != ZC_OK) {
		zc_res_error(res, 400,
			     "field \"%s\" must have at most two decimals and "
			     "be within +/-9999999999999.99",
			     field);
		return ZC_ERR_INVALID;
	}
	return ZC_OK;
}
