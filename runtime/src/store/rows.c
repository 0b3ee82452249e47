/*
 * rows.c - the statement API handlers call (zc_tx_exec, zc_tx_query) and
 * its results: the types string checked against the SQL's $N, parameters
 * collected from the varargs, rows held as text so both backends answer
 * the same way.
 */
#include "backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The start of a statement for a log line: one line, at most 120
 * characters (never its parameters, which are bound apart). */
void
zc__sql_excerpt(char *out, size_t size, const char *sql)
{
	size_t i, j = 0;

	for (i = 0; sql[i] != '\0' && j + 4 < size && j < 120; i++) {
		char ch = (unsigned char)sql[i] < ' ' ? ' ' : sql[i];
		if (ch == ' ' && (j == 0 || out[j - 1] == ' '))
			continue;
		out[j++] = ch;
	}
	if (sql[i] != '\0')
		out[j++] = '.', out[j++] = '.', out[j++] = '.';
	out[j] = '\0';
}

/*
 * Every cell is an offset into one text buffer (NUL-terminated there), or
 * NO_CELL for SQL NULL: offsets stay valid while the buffer grows.
 */
#define NO_CELL SIZE_MAX

struct zc_rows {
	size_t ncols, ncells, capcells;
	size_t *cells;
	char *text;
	size_t len, cap;
};

zc_rows *
zc__rows_new(size_t ncols)
{
	zc_rows *r = calloc(1, sizeof(*r));

	if (r != NULL)
		r->ncols = ncols;
	return r;
}

int
zc__rows_push(zc_rows *r, const char *s, size_t len)
{
	if (r->ncells == r->capcells) {
		size_t n = r->capcells > 0 ? r->capcells * 2 : 16;
		size_t *c = realloc(r->cells, n * sizeof(*c));
		if (c == NULL)
			return -1;
		r->cells = c;
		r->capcells = n;
	}
	if (s == NULL) {
		r->cells[r->ncells++] = NO_CELL;
		return 0;
	}
	if (len + 1 > r->cap - r->len) {
		size_t n = r->cap > 0 ? r->cap * 2 : 256;
		char *t;
		while (n - r->len < len + 1)
			n *= 2;
		if ((t = realloc(r->text, n)) == NULL)
			return -1;
		r->text = t;
		r->cap = n;
	}
	memcpy(r->text + r->len, s, len);
	r->text[r->len + len] = '\0';
	r->cells[r->ncells++] = r->len;
	r->len += len + 1;
	return 0;
}

size_t
zc_rows_count(const zc_rows *rows)
{
	if (rows == NULL || rows->ncols == 0)
		return 0;
	return rows->ncells / rows->ncols;
}

const char *
zc_rows_text(const zc_rows *rows, size_t row, int col)
{
	size_t off;

	if (rows == NULL || col < 0 || (size_t)col >= rows->ncols ||
	    row >= zc_rows_count(rows))
		return NULL;
	off = rows->cells[row * rows->ncols + (size_t)col];
	return off == NO_CELL ? NULL : rows->text + off;
}

zc_err
zc_rows_int64(const zc_rows *rows, size_t row, int col, int64_t *out)
{
	const char *s = zc_rows_text(rows, row, col);
	char *end;
	long long v;

	if (s == NULL || out == NULL)
		return ZC_ERR_INVALID;
	/* strtoll would skip spaces and take "+": the text must be exact */
	if (!(*s == '-' || (*s >= '0' && *s <= '9')))
		return ZC_ERR_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return ZC_ERR_INVALID;
	*out = (int64_t)v;
	return ZC_OK;
}

void
zc_rows_free(zc_rows *rows)
{
	if (rows == NULL)
		return;
	free(rows->cells);
	free(rows->text);
	free(rows);
}

static bool
ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '$' ||
	       (unsigned char)c >= 0x80;
}

/* Past a PostgreSQL dollar-quoted string starting at p ("$tag$...$tag$"),
 * or p itself when p does not start one. */
static const char *
skip_dollar_quote(const char *p)
{
	const char *t = p + 1, *close;
	size_t taglen;

	if (*t >= '0' && *t <= '9')
		return p; /* $1: a parameter, not a tag */
	while (*t != '$') {
		if (*t == '\0' || !ident_char(*t) || *t == '$')
			return p;
		t++;
	}
	taglen = (size_t)(t - p) + 1; /* "$tag$" */
	for (close = t + 1; (close = strchr(close, '$')) != NULL; close++)
		if (strncmp(close, p, taglen) == 0)
			return close + taglen;
	return p + strlen(p); /* unterminated: nothing more to scan */
}

int
zc__sql_max_param(const char *sql)
{
	const char *p = sql;
	int max = 0;

	while (*p != '\0') {
		if (*p == '\'' || *p == '"' || *p == '`') {
			char q = *p++;
			/* a doubled quote is one quote inside the literal */
			for (; *p != '\0'; p++)
				if (*p == q) {
					if (p[1] != q)
						break;
					p++;
				}
			if (*p != '\0')
				p++;
		} else if (p[0] == '-' && p[1] == '-') {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			int depth = 1; /* PostgreSQL nests them */
			for (p += 2; *p != '\0' && depth > 0; p++) {
				if (p[0] == '/' && p[1] == '*')
					depth++, p++;
				else if (p[0] == '*' && p[1] == '/')
					depth--, p++;
			}
		} else if (*p == '$' && (p == sql || !ident_char(p[-1]))) {
			const char *e = skip_dollar_quote(p);
			long n = 0;
			if (e != p) {
				p = e;
				continue;
			}
			for (p++; *p >= '0' && *p <= '9'; p++)
				if ((n = n * 10 + (*p - '0')) >
				    ZC_STORE_MAX_PARAMS)
					return -1;
			if (p[-1] == '$')
				continue; /* a lone $ */
			if (n == 0)
				return -1;
			if (n > max)
				max = (int)n;
		} else if (ident_char(*p)) {
			while (ident_char(*p))
				p++; /* a name, which may hold '$' */
		} else {
			p++;
		}
	}
	return max;
}

/* The types string checked against sql and the values taken from ap. */
static zc_err
collect(const char *sql, const char *types, va_list ap, struct zc_param *pv,
	int *np)
{
	int n, max, i;

	if (types == NULL)
		types = "";
	n = (int)strnlen(types, ZC_STORE_MAX_PARAMS + 1);
	if (n > ZC_STORE_MAX_PARAMS) {
		zc_error("store: more than %d parameters", ZC_STORE_MAX_PARAMS);
		return ZC_ERR_INVALID;
	}
	max = zc__sql_max_param(sql);
	if (max < 0 || max != n) {
		char ex[128];
		zc__sql_excerpt(ex, sizeof(ex), sql);
		if (max < 0)
			zc_error("store: $0 or a parameter over $%d in \"%s\"",
				 ZC_STORE_MAX_PARAMS, ex);
		else if (max == 0)
			zc_error("store: types \"%s\" has %d letters but the "
				 "statement has no $N parameter: \"%s\"",
				 types, n, ex);
		else
			zc_error("store: types \"%s\" has %d letters but the "
				 "statement's highest parameter is $%d: \"%s\"",
				 types, n, max, ex);
		return ZC_ERR_INVALID;
	}
	for (i = 0; i < n; i++) {
		pv[i].type = types[i];
		pv[i].s = NULL;
		switch (types[i]) {
		case 's':
			pv[i].s = va_arg(ap, const char *);
			break;
		case 'i':
			pv[i].i = va_arg(ap, int);
			break;
		case 'I':
			pv[i].i = va_arg(ap, int64_t);
			break;
		default:
			zc_error("store: bad type letter '%c' for $%d (want s, "
				 "i or I)",
				 types[i], i + 1);
			return ZC_ERR_INVALID;
		}
		if (types[i] != 's')
			snprintf(pv[i].text, sizeof(pv[i].text), "%lld",
				 (long long)pv[i].i);
	}
	*np = n;
	return ZC_OK;
}

static zc_err
vrun(zc_tx *tx, zc_rows **rows, const char *sql, const char *types, va_list ap)
{
	struct zc_param pv[ZC_STORE_MAX_PARAMS];
	struct zc_conn *c;
	long long changes = 0;
	zc_err err;
	int n = 0;

	if (rows != NULL)
		*rows = NULL;
	if (tx == NULL || !tx->active || sql == NULL) {
		zc_error("store: statement outside a transaction");
		return ZC_ERR_INVALID;
	}
	tx->changes = 0;
	if (tx->aborted)
		/* the transaction will roll back: nothing more runs in it */
		return tx->conflict ? ZC_ERR_CONFLICT : ZC_ERR_STORE;
	c = tx->conn;
	/* A statement that cannot run as written aborts the transaction
	 * too: committing the rest would keep half of what was meant. */
	if ((err = collect(sql, types, ap, pv, &n)) != ZC_OK) {
		tx->aborted = true;
		return err;
	}
	err = c->be->exec(c, sql, pv, n, rows, &changes);
	if (err != ZC_OK) {
		tx->aborted = true;
		tx->conflict = err == ZC_ERR_CONFLICT;
		return err;
	}
	tx->changes = changes;
	return ZC_OK;
}

zc_err
zc_tx_exec(zc_tx *tx, const char *sql, const char *types, ...)
{
	va_list ap;
	zc_err err;

	va_start(ap, types);
	err = vrun(tx, NULL, sql, types, ap);
	va_end(ap);
	return err;
}

zc_err
zc_tx_query(zc_tx *tx, zc_rows **rows, const char *sql, const char *types, ...)
{
	va_list ap;
	zc_err err;

	if (rows == NULL)
		return ZC_ERR_INVALID;
	va_start(ap, types);
	err = vrun(tx, rows, sql, types, ap);
	va_end(ap);
	return err;
}

long long
zc_tx_changes(const zc_tx *tx)
{
	return tx != NULL ? tx->changes : 0;
}
