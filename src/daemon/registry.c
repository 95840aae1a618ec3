/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool registry: <state>/pools.json remembers which pools berthd had
 * (name -> vdev paths) and where exported pools lived, so that a restart
 * (clean or after SIGKILL) re-imports them.  It is rewritten atomically after
 * every change of the set of pools.  Format:
 *
 *   {"version": 1,
 *    "pools":    {"tank": {"vdevs": ["/srv/tank.img"]}},
 *    "exported": {"old":  {"vdevs": ["/srv/old.img"]}}}
 */
#include "common/log.h"
#include "common/util.h"
#include "daemon/berthd.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REGISTRY_MAX (4 << 20)

/* Extract up to 8 vdev paths of an entry; false if malformed. */
static bool entry_vdevs(json_t *v, const char **out, size_t *n)
{
    json_t *arr = json_object_get(v, "vdevs");
    *n = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > BS_POOL_MAX_DEVICES)
        return false;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s || s[0] != '/')
            return false;
        out[(*n)++] = s;
    }
    return true;
}

static void import_one(struct berthd *d, const char *name, const char *const *vdevs, size_t n)
{
    struct berr err = {0};
    bs_pool *p = NULL;
    int r = bs_pool_import(vdevs, n, name, &p, &err);
    if (r < 0) {
        blog_err("pool %s: cannot import from %s: %s (listed as UNAVAIL)", name, vdevs[0],
                 err.msg);
        pooltab_add(&d->pools, name, NULL, vdevs, n, err.msg[0] ? err.msg : strerror(-r),
                    NULL);
        return;
    }
    if (pooltab_add(&d->pools, name, p, vdevs, n, NULL, &err) < 0) {
        blog_err("pool %s: %s", name, err.msg);
        bs_pool_close(p);
        return;
    }
    blog_info("pool %s imported from %s", name, vdevs[0]);
}

static void move_aside(const char *path, const char *why)
{
    char bad[PATH_MAX + 64];
    snprintf(bad, sizeof(bad), "%s.corrupt-%ld", path, (long)time(NULL));
    if (rename(path, bad) == 0)
        blog_err("%s: %s; moved to %s, starting with no pools", path, why, bad);
    else
        blog_err("%s: %s; starting with no pools", path, why);
}

void registry_load(struct berthd *d)
{
    struct berr err = {0};
    char *text = NULL;
    size_t len = 0;
    int r = read_file_all(d->pools_json, REGISTRY_MAX, &text, &len, &err);
    if (r == -ENOENT)
        return;
    if (r < 0) {
        blog_err("cannot read %s: %s; starting with no pools", d->pools_json, err.msg);
        return;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    json_t *pools = json_object_get(root, "pools");
    json_t *exported = json_object_get(root, "exported");
    if (!json_is_object(root) || !json_is_object(pools) ||
        (exported && !json_is_object(exported))) {
        move_aside(d->pools_json, root ? "unexpected content" : je.text);
        json_decref(root);
        return;
    }
    const char *name;
    json_t *v;
    const char *vdevs[BS_POOL_MAX_DEVICES];
    size_t n;
    json_object_foreach(exported, name, v) {
        if (validate_name(name, "pool", NULL) == 0 && entry_vdevs(v, vdevs, &n))
            pooltab_remember_exported(&d->pools, name, vdevs, n);
    }
    json_object_foreach(pools, name, v) {
        if (validate_name(name, "pool", &err) < 0 || !entry_vdevs(v, vdevs, &n)) {
            blog_err("%s: skipping malformed entry '%.64s'", d->pools_json, name);
            continue;
        }
        import_one(d, name, vdevs, n);
        /* the scrub schedule (scrubsched.c) is berthd's own pool setting */
        json_int_t every = json_integer_value(json_object_get(v, "scrub_every"));
        json_int_t last = json_integer_value(json_object_get(v, "last_scrub"));
        struct pool_entry *e = pooltab_find(&d->pools, name);
        if (e && every > 0 && every <= 3650LL * 86400) {
            atomic_store(&e->scrub_every, (uint64_t)every);
            atomic_store(&e->last_scrub, last > 0 ? (int64_t)last : (int64_t)time(NULL));
        }
        /* a scrub the last run did not finish goes on where it was */
        json_t *sp = json_object_get(v, "scrub_in_progress");
        if (e && e->pool && json_is_object(sp)) {
            struct bs_scrub_pos pos = {
                .id = (uint64_t)json_integer_value(json_object_get(sp, "id")),
                .part = (int)json_integer_value(json_object_get(sp, "part")),
                .blk = (uint64_t)json_integer_value(json_object_get(sp, "blk")),
            };
            struct berr serr = {0};
            if (bs_pool_scrub_resume(e->pool, &pos, &serr) < 0) {
                blog_warn("pool %s: cannot resume its scrub: %s", name, serr.msg);
            } else {
                blog_info("pool %s: scrub resumed where it was", name);
                if (json_is_true(json_object_get(sp, "paused")))
                    (void)bs_pool_scrub(e->pool, BS_SCRUB_PAUSE, NULL);
            }
        }
    }
    json_decref(root);
}

static json_t *entries(struct pool_entry *e)
{
    json_t *o = json_object();
    for (; o && e; e = e->next) {
        json_t *arr = json_array();
        for (size_t i = 0; i < e->nvdevs; i++)
            json_array_append_new(arr, json_string(e->vdevs[i]));
        json_t *ent = json_pack("{s:o}", "vdevs", arr);
        if (ent && atomic_load(&e->scrub_saved))
            json_object_set_new(ent, "scrub_in_progress",
                                json_pack("{s:I,s:i,s:I,s:b}", "id",
                                          (json_int_t)atomic_load(&e->scrub_pos_id), "part",
                                          atomic_load(&e->scrub_pos_part), "blk",
                                          (json_int_t)atomic_load(&e->scrub_pos_blk), "paused",
                                          atomic_load(&e->scrub_saved) == 2));
        if (ent && atomic_load(&e->scrub_every)) {
            json_object_set_new(ent, "scrub_every", json_integer((json_int_t)atomic_load(&e->scrub_every)));
            json_object_set_new(ent, "last_scrub", json_integer(atomic_load(&e->last_scrub)));
        }
        json_object_set_new(o, e->name, ent);
    }
    return o;
}

static void registry_save_locked(void *opaque);

void registry_save(void *opaque)
{
    /* API calls and the scrub scheduler save from their own threads; the
     * temporary file of write_file_atomic is one per process */
    static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&save_lock);
    registry_save_locked(opaque);
    pthread_mutex_unlock(&save_lock);
}

static void registry_save_locked(void *opaque)
{
    struct berthd *d = opaque;
    json_t *root = json_pack("{s:i,s:o,s:o}", "version", 1, "pools", entries(d->pools.head),
                             "exported", entries(d->pools.exported));
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    struct berr err = {0};
    if (!text) {
        blog_err("cannot save %s: out of memory", d->pools_json);
        return;
    }
    size_t len = strlen(text);
    text[len] = '\n';
    if (write_file_atomic(d->pools_json, text, len + 1, 0600, &err) < 0)
        blog_err("cannot save %s: %s", d->pools_json, err.msg);
    free(text);
}

void registry_close_all(struct berthd *d)
{
    pooltab_wrlock(&d->pools);
    for (struct pool_entry *e = d->pools.head; e; e = e->next) {
        if (!e->pool)
            continue;
        blog_info("pool %s: closing", e->name);
        bs_pool_close(e->pool);
        e->pool = NULL;
    }
    pooltab_unlock(&d->pools);
}
