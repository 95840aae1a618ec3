/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pool endpoints: list, create, status, properties, export, destroy, trim,
 * sync, leak check and debug knobs.  Import lives in h_import.c. */
#include "api/handlers.h"
#include "common/log.h"

#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <time.h>

int h_pools_list(const struct api_call *c, json_t **out, struct berr *err)
{
    json_t *arr = json_array();
    if (!arr)
        return berr_set(err, ENOMEM, "out of memory");
    pooltab_rdlock(c->ctx->pools);
    for (struct pool_entry *e = c->ctx->pools->head; e; e = e->next)
        json_array_append_new(arr, render_pool(c->ctx, e));
    pooltab_unlock(c->ctx->pools);
    *out = json_pack("{s:o}", "pools", arr);
    return 0;
}

int h_pool_get(const struct api_call *c, json_t **out, struct berr *err)
{
    pooltab_rdlock(c->ctx->pools);
    struct pool_entry *e = pooltab_find(c->ctx->pools, c->pool);
    if (e)
        *out = render_pool(c->ctx, e);
    pooltab_unlock(c->ctx->pools);
    return e ? 0 : berr_set(err, ENOENT, "no such pool '%s'", c->pool);
}

/* Is s a layout keyword of a vdev spec (as opposed to a device path)? */
static bool spec_keyword(const char *s)
{
    return strcmp(s, "mirror") == 0 || strncmp(s, "raidz", 5) == 0;
}

int h_pool_create(const struct api_call *c, json_t **out, struct berr *err)
{
    const char *name = api_get_str(c->body, "name");
    json_t *jv = json_object_get(c->body, "vdevs");
    json_t *js = json_object_get(c->body, "spec");
    size_t nv = json_array_size(jv);
    /* {"layout": "mirror"|"raidzN", "vdevs": [...]} is the engine's spec
     * {"mirror", ...}; {"spec": ["mirror", A, B, "mirror", C, D]} is one
     * with several top-level vdevs; the pool table keeps the paths only */
    const char *spec[BS_POOL_MAX_DEVICES + BS_POOL_MAX_TOPS + 1];
    const char *paths[BS_POOL_MAX_DEVICES];
    const char *layout = api_get_str(c->body, "layout");
    size_t k = 0;
    if (!jv == !js)
        return berr_set(err, EINVAL, "%s", jv ? "fields 'vdevs' and 'spec' exclude each other"
                        : "missing required field 'vdevs' (or 'spec' for several top-level "
                          "vdevs)");
    if (js && layout)
        return berr_set(err, EINVAL, "fields 'spec' and 'layout' exclude each other (the "
                        "layouts are in the spec)");
    if (js) {
        size_t ns = json_array_size(js);
        nv = 0;
        for (size_t i = 0; i < ns && i < BS_POOL_MAX_DEVICES + BS_POOL_MAX_TOPS; i++) {
            spec[i] = json_string_value(json_array_get(js, i));
            if (!spec[i] || (!spec_keyword(spec[i]) && spec[i][0] != '/'))
                return berr_set(err, EINVAL, "field 'spec[%zu]': '%s' is neither mirror, "
                                "raidz1, raidz2, raidz3 nor an absolute device path", i,
                                spec[i] ? spec[i] : "");
            if (!spec_keyword(spec[i])) {
                if (nv == BS_POOL_MAX_DEVICES)
                    return berr_set(err, EINVAL, "field 'spec': more than %d devices",
                                    BS_POOL_MAX_DEVICES);
                paths[nv++] = spec[i];
            }
        }
        k = ns - nv; /* the keywords: bs_pool_create gets nv + k entries */
    } else if (layout && strcmp(layout, "single") != 0) {
        if (strcmp(layout, "mirror") != 0 && strcmp(layout, "raidz1") != 0 &&
            strcmp(layout, "raidz2") != 0 && strcmp(layout, "raidz3") != 0)
            return berr_set(err, EINVAL, "field 'layout': '%s' is not supported (single, "
                            "mirror, raidz1, raidz2, raidz3)", layout);
        spec[k++] = layout;
    }
    const char **vdevs = js ? paths : spec + k;
    for (size_t i = 0; !js && i < nv && i < BS_POOL_MAX_DEVICES; i++)
        vdevs[i] = json_string_value(json_array_get(jv, i));

    struct bs_pool_opts opts;
    bs_pool_opts_init(&opts);
    opts.ashift = (int)api_get_int(c->body, "ashift", opts.ashift);
    if (opts.ashift != 0 && opts.ashift < 9)
        return berr_set(err, ERANGE, "field 'ashift': %d is out of range (0 to detect, or 9..16)",
                        opts.ashift);
    opts.autotrim = api_get_bool(c->body, "autotrim", opts.autotrim);
    opts.force = api_get_bool(c->body, "force", false);
    const char *s = api_get_str(c->body, "compression");
    if (s && bs_compress_parse(s, &opts.compression, &opts.compress_level, err) < 0)
        return berr_wrap(err, "field 'compression'");
    s = api_get_str(c->body, "checksum");
    if (s && bs_checksum_parse(s, &opts.checksum, err) < 0)
        return berr_wrap(err, "field 'checksum'");
    s = api_get_str(c->body, "encryption");
    opts.encryption = s && (strcmp(s, "on") == 0 || strcmp(s, "aes-256-gcm") == 0);
    if (s && !opts.encryption && strcmp(s, "off") != 0)
        return berr_set(err, EINVAL, "field 'encryption': use on, aes-256-gcm or off");
    s = api_get_str(c->body, "keyformat");
    if (s && bs_keyformat_parse(s, &opts.keyformat, err) < 0)
        return berr_wrap(err, "field 'keyformat'");
    s = api_get_str(c->body, "keylocation");
    if (s)
        snprintf(opts.keylocation, sizeof(opts.keylocation), "%s", s);
    uint64_t size = (uint64_t)api_get_int(c->body, "size", 0);

    pooltab_wrlock(c->ctx->pools);
    struct pool_entry *old = pooltab_find(c->ctx->pools, name);
    if (old) {
        /* build the message before unlocking: the entry may go away after */
        if (!old->pool)
            berr_set(err, EEXIST, "pool '%s' is already known to berthd (UNAVAIL: %s); "
                     "export it first to forget it", name, old->error);
        else
            berr_set(err, EEXIST, "pool '%s' already exists", name);
        pooltab_unlock(c->ctx->pools);
        return -EEXIST;
    }
    bs_pool *p = NULL;
    int r = bs_pool_create(name, spec, nv + k, size, &opts, &p, err);
    if (r == 0) {
        r = pooltab_add(c->ctx->pools, name, p, vdevs, nv, NULL, err);
        if (r < 0) {
            bs_pool_close(p);
        } else {
            pooltab_forget_exported(c->ctx->pools, name);
            api_persist(c->ctx);
            blog_info("pool %s created on %s", name, vdevs[0]);
            *out = render_pool(c->ctx, pooltab_find(c->ctx->pools, name));
        }
    }
    pooltab_unlock(c->ctx->pools);
    return r;
}

int parse_scrub_schedule(const char *v, uint64_t *every, struct berr *err)
{
    static const struct { const char *name; uint64_t secs; } named[] = {
        {"off", 0}, {"none", 0}, {"daily", 86400}, {"weekly", 7 * 86400},
        {"monthly", 30 * 86400},
    };
    if (!v)
        return berr_set(err, EINVAL, "scrub-schedule needs a value");
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        if (strcmp(v, named[i].name) == 0) {
            *every = named[i].secs;
            return 0;
        }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    uint64_t unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
    if (end == v || errno || !unit || end[1] || n == 0 || n > 3650ULL * 86400 / unit)
        return berr_set(err, EINVAL,
                        "scrub-schedule '%s': use off, daily, weekly, monthly or a period such "
                        "as 12h, 14d", v);
    *every = n * unit;
    return 0;
}

int h_pool_patch(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    const char *key;
    json_t *val;
    bool persist = false;
    json_object_foreach(json_object_get(c->body, "properties"), key, val) {
        if (strcmp(key, "scrub-schedule") == 0 || strcmp(key, "scrub_schedule") == 0) {
            /* berthd's, not the engine's: kept in pools.json */
            uint64_t every;
            r = parse_scrub_schedule(json_string_value(val), &every, err);
            if (r < 0)
                break;
            atomic_store(&e->scrub_every, every);
            if (every && !atomic_load(&e->last_scrub))
                atomic_store(&e->last_scrub, (int64_t)time(NULL)); /* first one in `every` */
            persist = true;
            continue;
        }
        r = bs_pool_set_prop(e->pool, key, json_string_value(val), err);
        if (r < 0)
            break;
    }
    if (r == 0)
        *out = render_pool(c->ctx, e);
    pooltab_unlock(c->ctx->pools);
    if (persist && c->ctx->persist)
        c->ctx->persist(c->ctx->persist_opaque);
    return r;
}

/* Shared by export and destroy: find the pool under the write lock, refuse
 * while NBD clients are connected unless force, else disconnect them. */
static int take_pool(const struct api_call *c, bool force, const char *verb,
                     struct pool_entry **out, struct berr *err)
{
    struct pool_entry *e = pooltab_find(c->ctx->pools, c->pool);
    if (!e)
        return berr_set(err, ENOENT, "no such pool '%s'", c->pool);
    *out = e;
    if (!e->pool)
        return 0;
    char names[256];
    unsigned n = api_pool_conns(c->ctx, e->pool, names, sizeof(names));
    if ((n || atomic_load(&e->handles)) && !force)
        return berr_set(err, EBUSY, "pool %s is in use by %u NBD client%s (%s); use force to "
                        "disconnect them and %s it", e->name, n, n == 1 ? "" : "s",
                        n ? names : "closing", verb);
    return api_pool_kick(c->ctx, e, err);
}

static bool force_of(const struct api_call *c)
{
    return api_get_bool(c->query, "force", false) || api_get_bool(c->body, "force", false);
}

int h_pool_export(const struct api_call *c, json_t **out, struct berr *err)
{
    bool force = force_of(c);
    struct pool_entry *e;
    pooltab_wrlock(c->ctx->pools);
    int r = take_pool(c, force, "export", &e, err);
    if (r == 0) {
        if (e->pool)
            r = bs_pool_export(e->pool, force, err); /* frees the handle even on error */
        e->pool = NULL;
        pooltab_remember_exported(c->ctx->pools, e->name, (const char *const *)e->vdevs,
                                  e->nvdevs);
        pooltab_remove(c->ctx->pools, e);
        api_persist(c->ctx);
        if (r < 0)
            blog_err("pool %s: export: %s", c->pool, err->msg);
        else
            blog_info("pool %s exported", c->pool);
    }
    pooltab_unlock(c->ctx->pools);
    if (r == 0)
        *out = json_pack("{s:s,s:b}", "name", c->pool, "exported", 1);
    return r;
}

int h_pool_delete(const struct api_call *c, json_t **out, struct berr *err)
{
    bool force = force_of(c);
    struct pool_entry *e;
    pooltab_wrlock(c->ctx->pools);
    int r = take_pool(c, force, "destroy", &e, err);
    if (r == 0 && !e->pool) {
        r = berr_set(err, API_EUNAVAIL, "pool '%s' is UNAVAIL (%s): its labels cannot be "
                     "wiped; export it to make berthd forget it", e->name, e->error);
    } else if (r == 0) {
        r = bs_pool_destroy(e->pool, force, err); /* frees the handle */
        e->pool = NULL;
        pooltab_remove(c->ctx->pools, e);
        api_persist(c->ctx);
        if (r < 0)
            blog_err("pool %s: destroy: %s", c->pool, err->msg);
        else
            blog_info("pool %s destroyed", c->pool);
    }
    pooltab_unlock(c->ctx->pools);
    if (r == 0)
        *out = json_pack("{s:s,s:b}", "name", c->pool, "destroyed", 1);
    return r;
}

int h_pool_trim(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    uint64_t trimmed = 0;
    r = bs_pool_trim(e->pool, &trimmed, err);
    pooltab_unlock(c->ctx->pools);
    if (r == 0)
        *out = json_pack("{s:s,s:o}", "name", c->pool, "trimmed", json_u64(trimmed));
    return r;
}

int h_pool_sync(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    r = bs_pool_sync(e->pool, err);
    uint64_t txg = 0;
    if (r == 0) {
        struct bs_pool_stats *st = calloc(1, sizeof(*st));
        if (st && bs_pool_stats(e->pool, st) == 0)
            txg = st->txg;
        free(st);
    }
    pooltab_unlock(c->ctx->pools);
    if (r == 0)
        *out = json_pack("{s:s,s:o}", "name", c->pool, "txg", json_u64(txg));
    return r;
}

int h_pool_check(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    struct berr cerr = {0};
    r = bs_pool_check(e->pool, &cerr);
    pooltab_unlock(c->ctx->pools);
    if (r == 0) {
        *out = json_pack("{s:s,s:b}", "name", c->pool, "consistent", 1);
    } else if (r == -EILSEQ) {
        blog_err("pool %s: check found a problem: %s", c->pool, cerr.msg);
        *out = json_pack("{s:s,s:b,s:s}", "name", c->pool, "consistent", 0, "problem",
                         cerr.msg);
        r = 0;
    } else {
        *err = cerr;
    }
    return r;
}

int h_pool_debug(const struct api_call *c, json_t **out, struct berr *err)
{
    if (!c->ctx->test_mode)
        return berr_set(err, EPERM, "debug knobs are only available when berthd runs with --test");
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    const char *knob = api_get_str(c->body, "knob");
    r = bs_pool_debug(e->pool, knob, err);
    pooltab_unlock(c->ctx->pools);
    if (r == 0) {
        blog_warn("pool %s: debug knob %s", c->pool, knob);
        *out = json_pack("{s:s,s:s}", "name", c->pool, "knob", knob);
    }
    return r;
}

int h_pool_scrub(const struct api_call *c, json_t **out, struct berr *err)
{
    const char *action = api_get_str(c->body, "action");
    enum bs_scrub_cmd cmd = BS_SCRUB_START;
    if (action && strcmp(action, "pause") == 0)
        cmd = BS_SCRUB_PAUSE;
    else if (action && strcmp(action, "stop") == 0)
        cmd = BS_SCRUB_STOP;
    else if (action && strcmp(action, "start") != 0)
        return berr_set(err, EINVAL, "field 'action': '%s' is not start, pause or stop", action);
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    r = bs_pool_scrub(e->pool, cmd, err);
    pooltab_unlock(c->ctx->pools);
    if (r == 0)
        *out = json_pack("{s:s,s:s}", "name", c->pool, "action", action ? action : "start");
    return r;
}

/* A device change of the pool starts: the scrub scheduler leaves its
 * device list alone until device_change_end (pool_entry.dev_changing).
 * Returns the entry, referenced, or NULL. */
static struct pool_entry *device_change_begin(const struct api_call *c)
{
    pooltab_rdlock(c->ctx->pools);
    struct pool_entry *e = pooltab_find(c->ctx->pools, c->pool);
    if (e) {
        pool_entry_ref(e);
        atomic_fetch_add(&e->dev_changing, 1);
    }
    pooltab_unlock(c->ctx->pools);
    return e;
}

static void device_change_end(struct pool_entry *e)
{
    if (!e)
        return;
    atomic_fetch_sub(&e->dev_changing, 1);
    pool_entry_unref(e);
}

/* After replace/attach/detach: the pool's devices as they are now become
 * the ones berthd imports it from (pools.json). */
static void remember_devices(const struct api_call *c)
{
    struct bs_pool_stats *st = calloc(1, sizeof *st);
    char **paths = calloc(BS_POOL_MAX_LEAVES_SHOWN, sizeof *paths);
    size_t n = 0;
    pooltab_wrlock(c->ctx->pools);
    struct pool_entry *e = pooltab_find(c->ctx->pools, c->pool);
    if (st && paths && e && e->pool && bs_pool_stats(e->pool, st) == 0) {
        for (size_t i = 0; i < st->nvdevs && i < BS_POOL_MAX_LEAVES_SHOWN; i++)
            if (st->vdevs[i].path[0] == '/' && (paths[n] = strdup(st->vdevs[i].path)))
                n++;
    }
    if (e && n) {
        for (size_t i = 0; i < e->nvdevs; i++)
            free(e->vdevs[i]);
        free(e->vdevs);
        e->vdevs = paths;
        paths = NULL; /* the entry owns them */
        e->nvdevs = n;
    }
    pooltab_unlock(c->ctx->pools);
    if (!paths)
        api_persist(c->ctx);
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
    free(st);
}

/* Before replace/attach: the new device joins the devices berthd imports
 * the pool from, so that a berthd killed in the middle of the change finds
 * it at restart whichever tree the crash left in force (import ignores a
 * device that holds no label or one the tree in force does not name);
 * remember_devices then sets what the pool has. */
static int remember_new_device(const struct api_call *c, const char *nd, bool *added,
                               struct berr *err)
{
    int r = 0;
    *added = false;
    pooltab_wrlock(c->ctx->pools);
    struct pool_entry *e = pooltab_find(c->ctx->pools, c->pool);
    bool known = false;
    for (size_t i = 0; e && i < e->nvdevs; i++)
        known |= strcmp(e->vdevs[i], nd) == 0;
    if (e && e->pool && !known && nd[0] == '/' && e->nvdevs < BS_POOL_MAX_DEVICES) {
        const char *all[BS_POOL_MAX_DEVICES];
        for (size_t i = 0; i < e->nvdevs; i++)
            all[i] = e->vdevs[i];
        all[e->nvdevs] = nd;
        /* pooltab_set_vdevs copies before it frees the old list */
        if (pooltab_set_vdevs(e, all, e->nvdevs + 1) < 0)
            r = berr_set(err, ENOMEM, "out of memory");
        else
            *added = true;
    }
    pooltab_unlock(c->ctx->pools);
    if (r == 0 && e && !known)
        api_persist(c->ctx);
    return r;
}

/* After a replace/attach that failed: the new device leaves the list again
 * unless the pool has it (a failure after the switch).  `ran`: false when
 * the change never started (the pool could not be acquired): the device is
 * then no member whatever state the pool is in now. */
static void forget_new_device(const struct api_call *c, const char *nd, bool ran)
{
    struct bs_pool_stats *st = calloc(1, sizeof *st);
    bool changed = false;
    pooltab_wrlock(c->ctx->pools);
    struct pool_entry *e = pooltab_find(c->ctx->pools, c->pool);
    bool member = !e || (ran && (!st || !e->pool || bs_pool_stats(e->pool, st) < 0));
    for (size_t i = 0; ran && !member && i < st->nvdevs && i < BS_POOL_MAX_LEAVES_SHOWN; i++)
        member = strcmp(st->vdevs[i].path, nd) == 0;
    const char *keep[BS_POOL_MAX_DEVICES];
    size_t n = 0;
    for (size_t i = 0; !member && i < e->nvdevs && n < BS_POOL_MAX_DEVICES; i++)
        if (strcmp(e->vdevs[i], nd) != 0)
            keep[n++] = e->vdevs[i];
    if (!member && n && n < e->nvdevs)
        changed = pooltab_set_vdevs(e, keep, n) == 0;
    pooltab_unlock(c->ctx->pools);
    if (changed)
        api_persist(c->ctx);
    free(st);
}

/* Change a device of a pool: take a member of a mirror or raidz out of
 * service or bring it back (online, offline), replace it by a new device,
 * attach a new mirror member to it, detach it.  replace and attach start a
 * resilver (GET /pools/{pool}: scan). */
int h_pool_device(const struct api_call *c, json_t **out, struct berr *err)
{
    const char *dev = api_get_str(c->body, "device");
    const char *action = api_get_str(c->body, "action");
    const char *nd = api_get_str(c->body, "new_device");
    bool force = api_get_bool(c->body, "force", false);
    static const char *const actions[] = {"online", "offline", "replace", "attach", "detach"};
    int a = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(action, actions[i]) == 0)
            a = i;
    if (a < 0)
        return berr_set(err, EINVAL, "field 'action': '%s' is not online, offline, replace, "
                        "attach or detach", action);
    if ((a == 2 || a == 3) && !nd)
        return berr_set(err, EINVAL, "field 'new_device' is required for %s", action);
    if (a != 2 && a != 3 && nd)
        return berr_set(err, EINVAL, "field 'new_device' is only for replace and attach");
    struct pool_entry *e, *changing = a >= 2 ? device_change_begin(c) : NULL;
    bool added = false;
    int r = nd ? remember_new_device(c, nd, &added, err) : 0;
    if (r == 0)
        r = api_pool_acquire(c, &e, err);
    if (r < 0) {
        /* added to the list, then the pool could not be had (exported or
         * UNAVAIL meanwhile): nothing was done with the device, it leaves
         * the list again */
        if (added)
            forget_new_device(c, nd, false);
        device_change_end(changing);
        return r;
    }
    switch (a) {
    case 0: r = bs_pool_online(e->pool, dev, err); break;
    case 1: r = bs_pool_offline(e->pool, dev, err); break;
    case 2: r = bs_pool_replace(e->pool, dev, nd, force, err); break;
    case 3: r = bs_pool_attach(e->pool, dev, nd, force, err); break;
    default: r = bs_pool_detach(e->pool, dev, err); break;
    }
    pooltab_unlock(c->ctx->pools);
    if (r == 0 && a >= 2)
        remember_devices(c);
    else if (nd)
        forget_new_device(c, nd, true);
    device_change_end(changing);
    if (r == 0) {
        *out = json_pack("{s:s,s:s,s:s}", "name", c->pool, "device", dev, "action", action);
        if (*out && nd)
            json_object_set_new(*out, "new_device", json_string(nd));
    }
    return r;
}

/* Grow a pool by top-level vdevs (bs_pool_add), online.  The new device
 * paths go into the pool table (and pools.json) before the engine switches
 * the pool's tree, so a berthd that dies in between finds them at restart;
 * devices of an add that did not happen are ignored by import. */
int h_pool_add(const struct api_call *c, json_t **out, struct berr *err)
{
    json_t *js = json_object_get(c->body, "spec");
    size_t ns = json_array_size(js), np = 0;
    const char *spec[BS_POOL_MAX_DEVICES + BS_POOL_MAX_TOPS];
    const char *paths[BS_POOL_MAX_DEVICES];
    for (size_t i = 0; i < ns && i < sizeof spec / sizeof *spec; i++) {
        spec[i] = json_string_value(json_array_get(js, i));
        if (!spec[i] || (!spec_keyword(spec[i]) && spec[i][0] != '/'))
            return berr_set(err, EINVAL, "field 'spec[%zu]': '%s' is neither mirror, raidz1, "
                            "raidz2, raidz3 nor an absolute device path", i,
                            spec[i] ? spec[i] : "");
        if (!spec_keyword(spec[i]))
            paths[np++] = spec[i];
    }
    bool force = api_get_bool(c->body, "force", false);
    uint64_t size = (uint64_t)api_get_int(c->body, "size", 0);
    /* remember the devices first */
    struct pool_entry *changing = device_change_begin(c);
    pooltab_wrlock(c->ctx->pools);
    struct pool_entry *e = pooltab_find(c->ctx->pools, c->pool);
    int r = 0;
    size_t old_n = 0;
    char **old = NULL;
    if (!e)
        r = berr_set(err, ENOENT, "no such pool '%s'", c->pool);
    else if (!e->pool)
        r = berr_set(err, API_EUNAVAIL, "pool '%s' is UNAVAIL: %s", e->name, e->error);
    else if (e->nvdevs + np > BS_POOL_MAX_DEVICES)
        r = berr_set(err, ENOSPC, "pool '%s' would have more than %d devices", c->pool,
                     BS_POOL_MAX_DEVICES);
    if (r == 0) {
        const char *all[BS_POOL_MAX_DEVICES];
        old_n = e->nvdevs;
        old = calloc(old_n ? old_n : 1, sizeof *old);
        bool copied = old != NULL;
        for (size_t i = 0; old && i < old_n; i++) {
            all[i] = old[i] = strdup(e->vdevs[i]);
            copied &= old[i] != NULL;
        }
        for (size_t i = 0; i < np; i++)
            all[old_n + i] = paths[i];
        if (!copied || pooltab_set_vdevs(e, all, old_n + np) < 0)
            r = berr_set(err, ENOMEM, "out of memory");
        else
            api_persist(c->ctx);
    }
    pooltab_unlock(c->ctx->pools);
    if (r < 0) {
        for (size_t i = 0; old && i < old_n; i++)
            free(old[i]);
        free(old);
        device_change_end(changing);
        return r;
    }
    size_t tops_before = 0, tops_after = 0;
    r = api_pool_acquire(c, &e, err);
    if (r == 0) {
        struct bs_pool_stats *st = calloc(1, sizeof(*st));
        if (st && bs_pool_stats(e->pool, st) == 0)
            tops_before = st->ntops;
        r = bs_pool_add(e->pool, spec, ns, size, force, err);
        if (r < 0 && st && bs_pool_stats(e->pool, st) == 0)
            tops_after = st->ntops;
        free(st);
        pooltab_unlock(c->ctx->pools);
    }
    if (r < 0 && tops_after == tops_before) {
        /* no top joined the pool: the table goes back to the old devices
         * (if one did, say the pool faulted at the switch, its devices may
         * be in the committed tree: they stay) */
        pooltab_wrlock(c->ctx->pools);
        e = pooltab_find(c->ctx->pools, c->pool);
        if (e && pooltab_set_vdevs(e, (const char *const *)old, old_n) == 0)
            api_persist(c->ctx);
        pooltab_unlock(c->ctx->pools);
    } else {
        blog_info("pool %s: added %zu device%s", c->pool, np, np == 1 ? "" : "s");
        pooltab_rdlock(c->ctx->pools);
        e = pooltab_find(c->ctx->pools, c->pool);
        *out = e ? render_pool(c->ctx, e) : json_pack("{s:s}", "name", c->pool);
        pooltab_unlock(c->ctx->pools);
    }
    for (size_t i = 0; i < old_n; i++)
        free(old[i]);
    free(old);
    device_change_end(changing);
    return r;
}
