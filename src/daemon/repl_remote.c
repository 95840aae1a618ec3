/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A replication target on another host, reached through a command prefix
 * that runs the berth CLI there (`--remote 'ssh backup berth'`): the same
 * cycle as for a local target (docs/REPLICATION.md), with each step one
 * command:
 *
 *   list      REMOTE --json snapshot list POOL/VOL
 *   receive   REMOTE recv -s -F POOL/VOL        (the stream on its stdin)
 *   resume    REMOTE recv --token POOL/VOL       (then send -t)
 *   prune     REMOTE snapshot destroy POOL/VOL@SNAP
 *
 * Names are validated (letters, digits, _ - . / @) and single-quoted anyway.
 * A command's output is read whole (at most REMOTE_OUT_MAX bytes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "daemon/repl.h"

#define REMOTE_OUT_MAX (4u << 20)

/* Run `REMOTE ARGS` (stderr with stdout); *out malloc'd, NUL-terminated.
 * Returns the exit status (>= 0) or -errno. */
static int run(const struct repl_cfg *c, const char *args, char **out, struct berr *err)
{
    size_t len = strlen(c->remote) + strlen(args) + 16;
    _cleanup_free_ char *cmd = malloc(len);
    char *buf = malloc(REMOTE_OUT_MAX + 1);
    if (!cmd || !buf) {
        free(buf);
        return berr_set(err, ENOMEM, "out of memory");
    }
    snprintf(cmd, len, "%s %s 2>&1", c->remote, args);
    FILE *f = popen(cmd, "r");
    if (!f) {
        free(buf);
        return berr_errno(err, errno, "cannot run the remote command");
    }
    size_t n = 0, got;
    while (n < REMOTE_OUT_MAX && (got = fread(buf + n, 1, REMOTE_OUT_MAX - n, f)) > 0)
        n += got;
    buf[n] = '\0';
    int st = pclose(f);
    *out = buf;
    if (st < 0)
        return berr_errno(err, errno, "remote command");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The first line of a command's output, for messages. */
static const char *first_line(char *s)
{
    s[strcspn(s, "\n")] = '\0';
    return s;
}

int repl_remote_list(const struct repl_cfg *c, struct bs_snap_props **v, size_t *n,
                     struct berr *err)
{
    *v = NULL;
    *n = 0;
    char args[256];
    snprintf(args, sizeof(args), "--json snapshot list '%s/%s'", c->dst_pool, c->dst_vol);
    _cleanup_free_ char *out = NULL;
    int st = run(c, args, &out, err);
    if (st < 0)
        return st;
    if (st != 0) {
        /* a target volume that does not exist yet has no snapshots */
        if (strstr(out, "no volume"))
            return 0;
        return berr_set(err, EIO, "remote snapshot list exited with %d: %s", st, first_line(out));
    }
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    json_t *arr = j ? json_object_get(j, "snapshots") : NULL;
    if (!json_is_array(arr)) {
        json_decref(j);
        return berr_set(err, EIO, "remote snapshot list: unexpected output: %s", first_line(out));
    }
    size_t cnt = json_array_size(arr);
    struct bs_snap_props *p = calloc(cnt ? cnt : 1, sizeof(*p));
    if (!p) {
        json_decref(j);
        return berr_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++) {
        json_t *s = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(s, "name"));
        const char *guid = json_string_value(json_object_get(s, "guid"));
        json_t *holds = json_object_get(s, "holds");
        snprintf(p[i].name, sizeof(p[i].name), "%s", name ? name : "");
        p[i].guid = guid ? strtoull(guid, NULL, 10) : 0;
        p[i].creation = (uint64_t)json_integer_value(json_object_get(s, "creation"));
        p[i].nholds = json_is_array(holds) ? (uint32_t)json_array_size(holds)
                      : json_is_string(holds) && *json_string_value(holds) ? 1u
                                                                           : 0u;
    }
    json_decref(j);
    *v = p;
    *n = cnt;
    return 0;
}

int repl_remote_destroy(const struct repl_cfg *c, const char *snap, struct berr *err)
{
    char args[256];
    snprintf(args, sizeof(args), "snapshot destroy '%s/%s@%s'", c->dst_pool, c->dst_vol, snap);
    _cleanup_free_ char *out = NULL;
    int st = run(c, args, &out, err);
    if (st < 0)
        return st;
    if (st != 0)
        return berr_set(err, EBUSY, "remote destroy of %s: %s", snap, first_line(out));
    return 0;
}

int repl_remote_token(const struct repl_cfg *c, char *buf, size_t len, struct berr *err)
{
    char args[256];
    snprintf(args, sizeof(args), "recv --token '%s/%s'", c->dst_pool, c->dst_vol);
    _cleanup_free_ char *out = NULL;
    int st = run(c, args, &out, err);
    if (st < 0)
        return st;
    if (st != 0 || !*out)
        return -ENOENT; /* no interrupted receive there */
    snprintf(buf, len, "%s", first_line(out));
    return 0;
}

int repl_remote_abort(const struct repl_cfg *c, struct berr *err)
{
    char args[256];
    snprintf(args, sizeof(args), "recv -A '%s/%s'", c->dst_pool, c->dst_vol);
    _cleanup_free_ char *out = NULL;
    int st = run(c, args, &out, err);
    return st < 0 ? st : 0;
}

void repl_remote_recv_cmd(const struct repl_cfg *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s recv -s -F '%s/%s'", c->remote, c->dst_pool, c->dst_vol);
}
