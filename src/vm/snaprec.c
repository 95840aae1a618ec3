/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM snapshot records in the config's section tail (see snaprec.h). */
#include "vm/snaprec.h"
#include "vm/internal.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Keys of a record that are not config keys: ours and Proxmox's. */
static const char *const meta_keys[] = {"snaptime", "fsfreeze", "parent", "vmstate",
                                        "snapstate", "runningmachine", "runningcpu", NULL};

int vm_snap_name_check(const char *name, struct berr *err)
{
    int r = validate_name(name, "snapshot", err);
    if (r < 0)
        return r;
    if (strlen(name) > VM_SNAP_NAME_MAX)
        return berr_set(err, ENAMETOOLONG, "snapshot name '%s' is longer than %d characters",
                        name, VM_SNAP_NAME_MAX);
    /* [PENDING] is Proxmox's section of pending changes, "current" its
     * name for the present state in snapshot trees */
    if (strcasecmp(name, "PENDING") == 0 || strcmp(name, "current") == 0)
        return berr_set(err, EINVAL, "snapshot name '%s' is reserved", name);
    return 0;
}

void vm_snap_info_free(struct vm_snap_info *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].config);
    free(v);
}

/* One section of the tail: [start, end) in the text, body from `body`. */
struct sect {
    char name[64];
    bool snap;
    size_t start, body, end;
};

/* A "[NAME]" header line?  Sets the name (snap: a valid snapshot name). */
static bool header(const char *line, size_t len, struct sect *s)
{
    size_t b = 0;
    while (b < len && (line[b] == ' ' || line[b] == '\t'))
        b++;
    if (b >= len || line[b] != '[')
        return false;
    const char *name = line + b + 1, *close = memchr(name, ']', len - b - 1);
    if (!close)
        return false;
    size_t nl = (size_t)(close - name);
    snprintf(s->name, sizeof s->name, "%.*s", (int)nl, name);
    s->snap = nl < sizeof s->name && vm_snap_name_check(s->name, NULL) == 0;
    return true;
}

/* The sections of `text` in order (text before the first header belongs
 * to none). */
static int split(const char *text, struct sect **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t len = text ? strlen(text) : 0, cap = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        struct sect s = {0};
        if (header(line, ll, &s)) {
            if (*n)
                (*out)[*n - 1].end = pos;
            if (*n == cap) {
                cap = cap ? cap * 2 : 8;
                struct sect *v = realloc(*out, cap * sizeof(*v));
                if (!v) {
                    free(*out);
                    *out = NULL;
                    return -ENOMEM;
                }
                *out = v;
            }
            s.start = pos;
            s.body = pos + ll + (nl ? 1 : 0);
            (*out)[(*n)++] = s;
        }
        pos += ll + (nl ? 1 : 0);
    }
    if (*n)
        (*out)[*n - 1].end = len;
    return 0;
}

/* Fill a record from a section's body: meta keys read, the rest kept. */
static int read_record(const char *text, const struct sect *s, struct vm_snap_info *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof o->name, "%s", s->name);
    struct sbuf cfg = {0};
    for (size_t pos = s->body; pos < s->end;) {
        const char *line = text + pos, *nl = memchr(line, '\n', s->end - pos);
        size_t ll = nl ? (size_t)(nl - line) : s->end - pos;
        pos += ll + (nl ? 1 : 0);
        size_t b = 0;
        while (b < ll && isspace((unsigned char)line[b]))
            b++;
        if (b == ll)
            continue;
        const char *colon = memchr(line + b, ':', ll - b);
        char key[32] = "";
        if (colon && (size_t)(colon - line - b) < sizeof key)
            snprintf(key, sizeof key, "%.*s", (int)(colon - line - b), line + b);
        if (key[0] && vm_lookup(key, meta_keys) >= 0) {
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            if (strcmp(key, "snaptime") == 0)
                o->time = strtoll(v, NULL, 10);
            else if (strcmp(key, "fsfreeze") == 0)
                o->frozen = *v == '1';
            continue;
        }
        sbuf_printf(&cfg, "%.*s\n", (int)(ll - b), line + b);
    }
    o->config = sbuf_steal(&cfg);
    sbuf_free(&cfg);
    return o->config ? 0 : -ENOMEM;
}

/* Insertion sort by time: stable, so records of the same second keep
 * their order in the file (which is creation order: records are appended). */
static void sort_by_time(struct vm_snap_info *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct vm_snap_info x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1].time > x.time; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

int snaprec_parse(const char *sections, struct vm_snap_info **out, size_t *n, struct berr *err)
{
    *out = NULL;
    *n = 0;
    struct sect *s;
    size_t ns;
    if (split(sections, &s, &ns) < 0)
        return berr_set(err, ENOMEM, "out of memory");
    struct vm_snap_info *v = calloc(ns + 1, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; v && i < ns; i++) {
        if (!s[i].snap)
            continue;
        if (read_record(sections, &s[i], &v[k]) < 0) {
            vm_snap_info_free(v, k);
            v = NULL;
            break;
        }
        k++;
    }
    free(s);
    if (!v)
        return berr_set(err, ENOMEM, "out of memory");
    sort_by_time(v, k);
    *out = v;
    *n = k;
    return 0;
}

int snaprec_find(const char *sections, const char *name, struct vm_snap_info *out,
                 struct berr *err)
{
    struct sect *s;
    size_t ns;
    if (split(sections, &s, &ns) < 0)
        return berr_set(err, ENOMEM, "out of memory");
    int r = -ENOENT;
    for (size_t i = 0; i < ns && r == -ENOENT; i++)
        if (s[i].snap && strcmp(s[i].name, name) == 0)
            r = read_record(sections, &s[i], out) < 0 ? berr_set(err, ENOMEM, "out of memory")
                                                        : 0;
    free(s);
    if (r == -ENOENT)
        berr_set(err, ENOENT, "no snapshot '%s'", name);
    return r;
}

/* *out = the text, or NULL if it is only blank lines. */
static int finish(struct sbuf *b, char **out, struct berr *err)
{
    while (b->len && b->s && isspace((unsigned char)b->s[b->len - 1]))
        b->s[--b->len] = '\0';
    if (b->oom) {
        sbuf_free(b);
        return berr_set(err, ENOMEM, "out of memory");
    }
    if (b->len == 0) {
        sbuf_free(b);
        *out = NULL;
        return 0;
    }
    sbuf_add(b, "\n");
    *out = sbuf_steal(b);
    sbuf_free(b);
    return *out ? 0 : berr_set(err, ENOMEM, "out of memory");
}

int snaprec_append(const char *sections, const struct vm_snap_info *s, char **out,
                   struct berr *err)
{
    struct sbuf b = {0};
    if (sections && *sections) {
        sbuf_add(&b, sections);
        while (b.len && b.s && isspace((unsigned char)b.s[b.len - 1]))
            b.s[--b.len] = '\0';
        sbuf_add(&b, "\n\n"); /* a blank line between sections, as Proxmox writes */
    }
    sbuf_printf(&b, "[%s]\n%s", s->name, s->config ? s->config : "");
    if (b.len && b.s && b.s[b.len - 1] != '\n')
        sbuf_add(&b, "\n");
    sbuf_printf(&b, "fsfreeze: %d\nsnaptime: %lld\n", s->frozen ? 1 : 0, (long long)s->time);
    return finish(&b, out, err);
}

int snaprec_remove(const char *sections, const char *name, char **out, struct berr *err)
{
    struct sect *s;
    size_t ns;
    if (split(sections, &s, &ns) < 0)
        return berr_set(err, ENOMEM, "out of memory");
    size_t i = 0;
    while (i < ns && !(s[i].snap && strcmp(s[i].name, name) == 0))
        i++;
    if (i == ns) {
        free(s);
        return berr_set(err, ENOENT, "no snapshot '%s'", name);
    }
    struct sbuf b = {0};
    sbuf_printf(&b, "%.*s", (int)s[i].start, sections);
    sbuf_add(&b, sections + s[i].end);
    free(s);
    return finish(&b, out, err);
}
