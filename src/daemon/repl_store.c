/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replication jobs as JSON: the configuration parser shared by the API and
 * the state file, the rendering of a job, and <state>/replications.json,
 * rewritten atomically (write_file_atomic) after every change so that jobs
 * and their history survive restarts.  Format:
 *
 *   {"version": 1,
 *    "replications": [{"name": "vm1", "source": "tank/vm1",
 *                      "target": "backup/vm1", "target_cmd": null,
 *                      "every": "15m", "keep": "1h:24,1d:7,1w:4",
 *                      "keep_target": "1h:24,1d:7,1w:4", "prefix": "repl_",
 *                      "raw": false,
 *                      "created": 1795688100, "last_success": ..., ...}]}
 */
#include "common/log.h"
#include "common/util.h"
#include "daemon/repl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_MAX (16 << 20)

/* "POOL/VOL" into two validated names. */
static int split_vol(const char *field, const char *s, char *pool, char *vol, struct berr *err)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    if (!slash || (size_t)(slash - s) >= 64 || strlen(slash + 1) >= 64)
        return berr_set(err, EINVAL, "field '%s': expected POOL/VOLUME, got '%.128s'", field,
                        s ? s : "");
    memcpy(pool, s, (size_t)(slash - s));
    pool[slash - s] = '\0';
    snprintf(vol, 64, "%s", slash + 1);
    if (validate_name(pool, "pool", err) < 0 || validate_name(vol, "volume", err) < 0)
        return berr_wrap(err, "field '%s'", field);
    return 0;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int repl_cfg_from_json(json_t *o, struct repl_cfg *c, struct berr *err)
{
    memset(c, 0, sizeof(*c));
    const char *name = str(o, "name"), *target = str(o, "target");
    const char *cmd = str(o, "target_cmd"), *every = str(o, "every"), *keep = str(o, "keep");
    const char *keep_t = str(o, "keep_target"), *prefix = str(o, "prefix");
    const char *remote = str(o, "remote");
    int r = validate_name(name, "replication", err);
    if (r < 0)
        return r;
    snprintf(c->name, sizeof(c->name), "%s", name);
    if (split_vol("source", str(o, "source"), c->src_pool, c->src_vol, err) < 0)
        return -EINVAL;
    if (!target == !cmd)
        return berr_set(err, EINVAL, "give exactly one of 'target' (POOL/VOLUME) and "
                        "'target_cmd' (a shell command reading the stream)");
    if (target) {
        if (split_vol("target", target, c->dst_pool, c->dst_vol, err) < 0)
            return -EINVAL;
        if (!remote && strcmp(c->src_pool, c->dst_pool) == 0 &&
            strcmp(c->src_vol, c->dst_vol) == 0)
            return berr_set(err, EINVAL, "the target is the source (%s)", target);
        if (remote) {
            if (!*remote || strlen(remote) >= sizeof(c->remote))
                return berr_set(err, EINVAL, "field 'remote': 1 to %d characters",
                                REPL_CMD_MAX - 1);
            snprintf(c->remote, sizeof(c->remote), "%s", remote);
        }
    } else {
        if (remote)
            return berr_set(err, EINVAL, "'remote' goes with 'target' (the volume on the "
                            "remote host), not with 'target_cmd'");
        if (!*cmd || strlen(cmd) >= sizeof(c->target_cmd))
            return berr_set(err, EINVAL, "field 'target_cmd': 1 to %d characters",
                            REPL_CMD_MAX - 1);
        snprintf(c->target_cmd, sizeof(c->target_cmd), "%s", cmd);
    }
    if (!every || repl_parse_duration(every, &c->every, err) < 0)
        return every ? berr_wrap(err, "field 'every'")
                     : berr_set(err, EINVAL, "missing required field 'every'");
    if (!keep || repl_parse_grid(keep, &c->keep, err) < 0)
        return keep ? berr_wrap(err, "field 'keep'")
                    : berr_set(err, EINVAL, "missing required field 'keep'");
    c->keep_target = c->keep;
    if (keep_t && repl_parse_grid(keep_t, &c->keep_target, err) < 0)
        return berr_wrap(err, "field 'keep_target'");
    if (repl_validate_prefix(prefix ? prefix : "repl_", err) < 0)
        return berr_wrap(err, "field 'prefix'");
    snprintf(c->prefix, sizeof(c->prefix), "%s", prefix ? prefix : "repl_");
    json_t *raw = json_object_get(o, "raw");
    if (raw && !json_is_boolean(raw) && !json_is_null(raw))
        return berr_set(err, EINVAL, "field 'raw': expected true or false");
    c->raw = json_is_true(raw);
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t t)
{
    return t ? json_integer(t) : json_null();
}

json_t *repl_job_json(const struct repl_job *j, int64_t now)
{
    const struct repl_cfg *c = &j->cfg;
    const struct repl_state *s = &j->st;
    char src[160], dst[160], every[32], keep[256], keep_t[256];
    snprintf(src, sizeof(src), "%s/%s", c->src_pool, c->src_vol);
    snprintf(dst, sizeof(dst), "%s/%s", c->dst_pool, c->dst_vol);
    json_t *o = json_pack(
        "{s:s,s:s,s:o,s:o,s:s,s:s,s:s,s:s,s:I}", "name", c->name, "source", src, "target",
        str_or_null(c->target_cmd[0] ? NULL : dst), "target_cmd", str_or_null(c->target_cmd),
        "every", repl_format_duration(c->every, every, sizeof(every)), "keep",
        repl_format_grid(&c->keep, keep, sizeof(keep)), "keep_target",
        repl_format_grid(&c->keep_target, keep_t, sizeof(keep_t)), "prefix", c->prefix,
        "created", (json_int_t)s->created);
    if (!o)
        return NULL;
    json_object_set_new(o, "remote", str_or_null(c->remote));
    json_object_set_new(o, "raw", json_boolean(c->raw));
    json_object_set_new(o, "last_run", time_or_null(s->last_run));
    json_object_set_new(o, "last_success", time_or_null(s->last_success));
    json_object_set_new(o, "last_error", str_or_null(s->last_error));
    json_object_set_new(o, "last_error_time", time_or_null(s->last_error_time));
    json_object_set_new(o, "prune_error", str_or_null(s->prune_error));
    json_object_set_new(o, "failures", json_integer(s->failures));
    json_object_set_new(o, "runs", json_integer((json_int_t)s->runs));
    json_object_set_new(o, "bytes_sent_last", json_integer((json_int_t)s->bytes_last));
    json_object_set_new(o, "bytes_sent_total", json_integer((json_int_t)s->bytes_total));
    json_object_set_new(o, "snapshots_pruned", json_integer((json_int_t)s->pruned_total));
    json_object_set_new(o, "newest_target_snapshot", str_or_null(s->newest_target));
    json_object_set_new(o, "newest_target_time", time_or_null(s->newest_target_time));
    json_object_set_new(o, "remote_base", str_or_null(s->remote_base));
    json_object_set_new(o, "inflight", str_or_null(s->inflight));
    json_object_set_new(o, "inflight_from", str_or_null(s->inflight_from));
    if (now) {
        const char *state = s->running ? "running" : s->failures ? "failing"
                                                   : s->last_success ? "ok" : "new";
        json_object_set_new(o, "every_seconds", json_integer((json_int_t)c->every));
        json_object_set_new(o, "state", json_string(state));
        json_object_set_new(o, "next_run", time_or_null(s->running ? 0 : s->next_run));
        json_object_set_new(o, "lag", s->newest_target_time
                                          ? json_integer(now - s->newest_target_time)
                                          : json_null());
    }
    return o;
}

static int64_t jint(json_t *o, const char *key)
{
    return json_is_integer(json_object_get(o, key))
               ? (int64_t)json_integer_value(json_object_get(o, key))
               : 0;
}

static void jstr(json_t *o, const char *key, char *out, size_t len)
{
    const char *s = str(o, key);
    snprintf(out, len, "%s", s ? s : "");
}

void repl_state_from_json(json_t *o, struct repl_state *st)
{
    memset(st, 0, sizeof(*st));
    st->created = jint(o, "created");
    st->last_run = jint(o, "last_run");
    st->last_success = jint(o, "last_success");
    st->last_error_time = jint(o, "last_error_time");
    st->failures = (unsigned)jint(o, "failures");
    st->runs = (uint64_t)jint(o, "runs");
    st->bytes_last = (uint64_t)jint(o, "bytes_sent_last");
    st->bytes_total = (uint64_t)jint(o, "bytes_sent_total");
    st->pruned_total = (uint64_t)jint(o, "snapshots_pruned");
    st->newest_target_time = jint(o, "newest_target_time");
    jstr(o, "last_error", st->last_error, sizeof(st->last_error));
    jstr(o, "prune_error", st->prune_error, sizeof(st->prune_error));
    jstr(o, "newest_target_snapshot", st->newest_target, sizeof(st->newest_target));
    jstr(o, "remote_base", st->remote_base, sizeof(st->remote_base));
    jstr(o, "inflight", st->inflight, sizeof(st->inflight));
    jstr(o, "inflight_from", st->inflight_from, sizeof(st->inflight_from));
}

void repl_store_save(struct repl_mgr *m)
{
    json_t *arr = json_array();
    for (struct repl_job *j = m->jobs; arr && j; j = j->next)
        json_array_append_new(arr, repl_job_json(j, 0));
    json_t *root = arr ? json_pack("{s:i,s:o}", "version", 1, "replications", arr) : NULL;
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text) {
        blog_err("cannot save %s: out of memory", m->path);
        return;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* the NUL's byte becomes the newline */
    struct berr err = {0};
    pthread_mutex_lock(&m->save_lock);
    if (write_file_atomic(m->path, text, len + 1, 0600, &err) < 0)
        blog_err("cannot save %s: %s", m->path, err.msg);
    pthread_mutex_unlock(&m->save_lock);
    free(text);
}

void repl_store_load(struct repl_mgr *m, void (*add)(struct repl_mgr *m, struct repl_job *j))
{
    struct berr err = {0};
    char *text = NULL;
    size_t len = 0;
    int r = read_file_all(m->path, STORE_MAX, &text, &len, &err);
    if (r == -ENOENT)
        return;
    if (r < 0) {
        blog_err("cannot read %s: %s; starting with no replications", m->path, err.msg);
        return;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    json_t *arr = json_object_get(root, "replications");
    if (!json_is_array(arr)) {
        char bad[PATH_MAX + 64];
        snprintf(bad, sizeof(bad), "%s.corrupt-%ld", m->path, (long)time(NULL));
        bool moved = rename(m->path, bad) == 0;
        blog_err("%s: %s; %s%s, starting with no replications", m->path,
                 root ? "unexpected content" : je.text, moved ? "moved to " : "",
                 moved ? bad : "");
        json_decref(root);
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        struct repl_job *j = calloc(1, sizeof(*j));
        if (!j || repl_cfg_from_json(v, &j->cfg, &err) < 0) {
            blog_err("%s: skipping entry %zu: %s", m->path, i, j ? err.msg : "out of memory");
            free(j);
            continue;
        }
        repl_state_from_json(v, &j->st);
        add(m, j);
    }
    json_decref(root);
}
