/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the files of src/vm and nothing else: a growable string
 * buffer, a growable NULL-terminated string vector, Proxmox "property string"
 * splitting ("a,b=c,d=e") and the "did you mean" suggestion. */
#ifndef BERTH_VM_INTERNAL_H
#define BERTH_VM_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Growable string.  On allocation failure `oom` is set and further appends
 * are ignored; the caller checks it once at the end. */
struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
};
void sbuf_add(struct sbuf *b, const char *str);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap);
/* Append str with QEMU option escaping (',' doubled). */
void sbuf_add_qemu(struct sbuf *b, const char *str);
/* Take the string (never NULL unless oom; "" for an empty buffer). */
char *sbuf_steal(struct sbuf *b);
void sbuf_free(struct sbuf *b);

/* Growable NULL-terminated vector of owned strings; same oom rule. */
struct strv {
    char **v;
    size_t n, cap;
    bool oom;
};
void strv_add(struct strv *sv, const char *s);
void strv_take(struct strv *sv, char *s); /* takes ownership; NULL counts as oom */
void strv_addf(struct strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strv_free_all(char **v);

/* One "key=value" item of a property string; key is NULL for a bare item. */
struct prop {
    char *key;
    char *val;
};
struct props {
    struct prop *v;
    size_t n;
    char *buf;
};
/* Split a property string.  Rejects empty items and repeated keys with a
 * message prefixed by `what` (the config key). */
int props_split(const char *s, const char *what, struct props *p, struct berr *err);
void props_free(struct props *p);

/* The candidate closest to `word` by edit distance if it is close enough to
 * be a typo, else NULL.  `cands` is NULL-terminated. */
const char *vm_suggest(const char *word, const char *const *cands);
/* "KEY: unknown option 'OPT' (did you mean 'X'?)" / "(valid: a, b, c)" */
int vm_err_unknown(struct berr *err, const char *key, const char *what, const char *word,
                   const char *const *cands);
/* Index of s in a NULL-terminated list or -1. */
int vm_lookup(const char *s, const char *const *list);

/* Booleans as Proxmox accepts them: 1/0, on/off, yes/no, true/false. */
int vm_parse_bool(const char *key, const char *opt, const char *s, int *out, struct berr *err);
/* Decimal integer in [min,max] with a message naming key/option. */
int vm_parse_int(const char *key, const char *opt, const char *s, long min, long max, long *out,
                 struct berr *err);
/* Printable single-line text without control characters. */
bool vm_text_ok(const char *s);

#endif
