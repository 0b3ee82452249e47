/*
 * error.c - the one error enum explained: text for logs, and the status a
 * handler should answer when a downstream call failed.
 */
#include "core.h"

const char *
zc_strerror(zc_err err)
{
	/* A switch, not a table, so the compiler flags a missing case. */
	switch (err) {
	case ZC_OK:
		return "success";
	case ZC_ERR_NOMEM:
		return "out of memory";
	case ZC_ERR_INVALID:
		return "invalid argument or configuration";
	case ZC_ERR_DNS:
		return "downstream name did not resolve";
	case ZC_ERR_REFUSED:
		return "downstream refused the connection";
	case ZC_ERR_TIMEOUT:
		return "downstream call timed out";
	case ZC_ERR_TRANSPORT:
		return "downstream connection failed or reply was truncated";
	case ZC_ERR_HTTP:
		return "downstream replied with an error status";
	case ZC_ERR_BAD_REPLY:
		return "downstream reply is not valid JSON";
	case ZC_ERR_TOO_LARGE:
		return "body exceeds its size limit";
	case ZC_ERR_BREAKER_OPEN:
		return "circuit breaker is open";
	case ZC_ERR_BULKHEAD_FULL:
		return "too many concurrent downstream calls";
	case ZC_ERR_QUEUE_FULL:
		return "outbound queue is full";
	case ZC_ERR_DEADLINE:
		return "request deadline passed";
	case ZC_ERR_STORE:
		return "store unavailable or statement failed";
	case ZC_ERR_CONFLICT:
		return "store transaction conflicted with a concurrent one";
	}
	/* Out-of-range values (a cast int) still get text, never NULL. */
	return "unknown error";
}

int
zc_err_http_status(zc_err err)
{
	switch (err) {
	case ZC_ERR_TIMEOUT:
	case ZC_ERR_DEADLINE:
		return 504;
	case ZC_ERR_BREAKER_OPEN:
	case ZC_ERR_BULKHEAD_FULL:
	case ZC_ERR_QUEUE_FULL:
	case ZC_ERR_STORE:
	case ZC_ERR_CONFLICT:
		/* We shed the call ourselves: the downstream may be fine, so
		 * tell our caller to come back later, not that a peer broke. */
		return 503;
	default:
		return 502;
	}
}
