/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers of src/vm (see internal.h): string buffer, string vector,
 * property-string splitting, typo suggestions, bool/int parsing. */
#include "vm/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void sbuf_reserve(struct sbuf *b, size_t extra)
{
    if (b->oom)
        return;
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *n = realloc(b->s, cap);
    if (!n) {
        b->oom = true;
        return;
    }
    b->s = n;
    b->cap = cap;
}

void sbuf_add(struct sbuf *b, const char *str)
{
    size_t l = strlen(str);
    sbuf_reserve(b, l);
    if (b->oom)
        return;
    memcpy(b->s + b->len, str, l + 1);
    b->len += l;
}

void sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->oom = true;
        return;
    }
    sbuf_reserve(b, (size_t)n);
    if (b->oom)
        return;
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

void sbuf_add_qemu(struct sbuf *b, const char *str)
{
    for (const char *p = str; *p; p++) {
        char c[3] = {*p, 0, 0};
        if (*p == ',')
            c[1] = ',';
        sbuf_add(b, c);
    }
}

char *sbuf_steal(struct sbuf *b)
{
    if (b->oom) {
        sbuf_free(b);
        return NULL;
    }
    if (!b->s)
        return strdup("");
    char *s = b->s;
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

void sbuf_free(struct sbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

void strv_take(struct strv *sv, char *s)
{
    if (!s)
        sv->oom = true;
    if (sv->oom) {
        free(s);
        return;
    }
    if (sv->n + 2 > sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 32;
        char **n = realloc(sv->v, cap * sizeof(*n));
        if (!n) {
            sv->oom = true;
            free(s);
            return;
        }
        sv->v = n;
        sv->cap = cap;
    }
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
}

void strv_add(struct strv *sv, const char *s)
{
    strv_take(sv, strdup(s));
}

void strv_addf(struct strv *sv, const char *fmt, ...)
{
    struct sbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    strv_take(sv, sbuf_steal(&b));
}

void strv_free_all(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

int props_split(const char *s, const char *what, struct props *p, struct berr *err)
{
    memset(p, 0, sizeof(*p));
    if (!*s)
        return berr_set(err, EINVAL, "%s: empty value", what);
    p->buf = strdup(s);
    size_t items = 1;
    for (const char *q = s; *q; q++)
        items += *q == ',';
    p->v = calloc(items, sizeof(*p->v));
    if (!p->buf || !p->v) {
        props_free(p);
        return berr_set(err, ENOMEM, "out of memory");
    }
    char *cur = p->buf;
    for (size_t i = 0; i < items; i++) {
        char *comma = strchr(cur, ',');
        if (comma)
            *comma = '\0';
        if (!*cur) {
            props_free(p);
            return berr_set(err, EINVAL, "%s: empty option in '%s'", what, s);
        }
        char *eq = strchr(cur, '=');
        if (eq) {
            *eq = '\0';
            p->v[i].key = cur;
            p->v[i].val = eq + 1;
            for (size_t j = 0; j < i; j++)
                if (p->v[j].key && strcmp(p->v[j].key, cur) == 0) {
                    berr_set(err, EINVAL, "%s: option '%s' given twice", what, cur);
                    props_free(p);
                    return -EINVAL;
                }
        } else {
            p->v[i].val = cur;
        }
        p->n++;
        cur = comma ? comma + 1 : NULL;
    }
    return 0;
}

void props_free(struct props *p)
{
    free(p->v);
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

/* Optimal string alignment distance (Levenshtein + adjacent transposition),
 * case-insensitive; words longer than 64 are never close. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *vm_suggest(const char *word, const char *const *cands)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX, wl = strlen(word);
    for (const char *const *c = cands; *c; c++) {
        size_t d = edit_distance(word, *c);
        if (d < bestd) {
            bestd = d;
            best = *c;
        }
    }
    size_t limit = wl <= 3 ? 1 : wl <= 6 ? 2 : 3;
    if (bestd <= limit)
        return best;
    /* an abbreviation: "fstrim" for "fstrim_cloned_disks" */
    if (wl >= 3)
        for (const char *const *c = cands; *c; c++)
            if (strncasecmp(*c, word, wl) == 0)
                return *c;
    return NULL;
}

int vm_err_unknown(struct berr *err, const char *key, const char *what, const char *word,
                   const char *const *cands)
{
    const char *s = vm_suggest(word, cands);
    if (s)
        return berr_set(err, EINVAL, "%s: unknown %s '%s' (did you mean '%s'?)", key, what, word, s);
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; cands[i] && used < sizeof(list) - 8; i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", cands[i]);
    return berr_set(err, EINVAL, "%s: unknown %s '%s' (valid: %s)", key, what, word, list);
}

int vm_lookup(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return i;
    return -1;
}

int vm_parse_bool(const char *key, const char *opt, const char *s, int *out, struct berr *err)
{
    static const char *const t[] = {"1", "on", "yes", "true", NULL};
    static const char *const f[] = {"0", "off", "no", "false", NULL};
    for (int i = 0; t[i]; i++) {
        if (strcasecmp(s, t[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, f[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    if (opt)
        return berr_set(err, EINVAL, "%s: %s must be 0 or 1, not '%s'", key, opt, s);
    return berr_set(err, EINVAL, "%s: must be 0 or 1, not '%s'", key, s);
}

int vm_parse_int(const char *key, const char *opt, const char *s, long min, long max, long *out,
                 struct berr *err)
{
    const char *what = opt ? opt : "value";
    if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1]))
        goto bad;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            goto bad;
        if (v > (max + 9) / 10 + 1)
            goto range;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        goto range;
    *out = v;
    return 0;
bad:
    if (opt)
        return berr_set(err, EINVAL, "%s: %s must be a number, not '%s'", key, what, s);
    return berr_set(err, EINVAL, "%s: must be a number, not '%s'", key, s);
range:
    if (opt)
        return berr_set(err, ERANGE, "%s: %s '%s' out of range %ld..%ld", key, what, s, min, max);
    return berr_set(err, ERANGE, "%s: '%s' out of range %ld..%ld", key, s, min, max);
}

bool vm_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}
