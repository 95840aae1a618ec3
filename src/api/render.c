/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON renderings of pools and volumes (the "Pool" and "Volume" objects of
 * docs/API.md).  Every field of bs_pool_stats / bs_vol_props appears. */
#include "api/handlers.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

json_t *json_u64(uint64_t v)
{
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

json_t *json_guid(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return json_string(buf);
}

json_t *json_ratio(double r)
{
    if (!isfinite(r) || r < 0)
        r = 1.0;
    return json_real(round(r * 100.0) / 100.0);
}

static void set(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v);
}

static json_t *render_unavail(struct pool_entry *e)
{
    json_t *o = json_object();
    json_t *vd = json_array();
    if (!o || !vd) {
        json_decref(o);
        json_decref(vd);
        return NULL;
    }
    set(o, "name", json_string(e->name));
    set(o, "state", json_string("UNAVAIL"));
    set(o, "error", json_string(e->error));
    for (size_t i = 0; i < e->nvdevs; i++)
        json_array_append_new(vd, json_pack("{s:s,s:s}", "path", e->vdevs[i], "state",
                                            "UNAVAIL"));
    set(o, "vdevs", vd);
    return o;
}

static json_t *render_vdev(const struct bs_vdev_stats *v)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    set(o, "path", json_string(v->path));
    set(o, "type", json_string(v->type));
    set(o, "state", json_string(v->state));
    if (v->reason[0])
        set(o, "reason", json_string(v->reason));
    set(o, "size", json_u64(v->size));
    set(o, "read_errors", json_u64(v->read_errors));
    set(o, "write_errors", json_u64(v->write_errors));
    set(o, "checksum_errors", json_u64(v->checksum_errors));
    set(o, "reads", json_u64(v->reads));
    set(o, "writes", json_u64(v->writes));
    set(o, "bytes_read", json_u64(v->bytes_read));
    set(o, "bytes_written", json_u64(v->bytes_written));
    set(o, "repaired_bytes", json_u64(v->repaired_bytes));
    set(o, "stale", json_boolean(v->stale));
    set(o, "dtl", json_pack("[o,o]", json_u64(v->dtl_lo), json_u64(v->dtl_hi)));
    set(o, "resilvering", json_boolean(v->resilvering));
    if (v->replacing[0])
        set(o, "replacing", json_string(v->replacing));
    return o;
}

/* The top-level vdevs: [{name, type, state, first_leaf, nleaves, size,
 * allocated, free (usable), raw_size, raw_allocated, checksum_errors,
 * alloc_bytes}]; their leaves are vdevs[first_leaf .. +nleaves). */
static json_t *render_tops(const struct bs_pool_stats *st)
{
    json_t *arr = json_array();
    for (size_t t = 0; arr && t < st->ntops && t < BS_POOL_MAX_TOPS; t++) {
        const struct bs_top_stats *ts = &st->tops[t];
        json_t *o = json_object();
        if (!o)
            break;
        set(o, "name", json_string(ts->name));
        set(o, "type", json_string(ts->type));
        set(o, "state", json_string(ts->state));
        set(o, "guid", json_guid(ts->guid));
        set(o, "first_leaf", json_integer(ts->first_leaf));
        set(o, "nleaves", json_integer(ts->nleaves));
        set(o, "size", json_u64(ts->size));
        set(o, "allocated", json_u64(ts->allocated));
        set(o, "free", json_u64(ts->free));
        set(o, "raw_size", json_u64(ts->raw_size));
        set(o, "raw_allocated", json_u64(ts->raw_allocated));
        set(o, "checksum_errors", json_u64(ts->checksum_errors));
        set(o, "alloc_bytes", json_u64(ts->alloc_bytes));
        json_array_append_new(arr, o);
    }
    return arr;
}

static int render_error(const struct bs_pool_error *er, void *opaque)
{
    json_array_append_new(opaque, json_pack("{s:s,s:s,s:o,s:o}", "dataset", er->dataset, "what",
                                            er->what, "offset", json_u64(er->offset), "length",
                                            json_u64(er->length)));
    return 0;
}

json_t *render_pool(struct api_ctx *ctx, struct pool_entry *e)
{
    if (!e->pool)
        return render_unavail(e);
    struct bs_pool_stats *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    if (bs_pool_stats(e->pool, st) < 0) {
        /* Stats are read from memory; a failure means the pool is unusable. */
        free(st);
        json_t *o = render_unavail(e);
        if (o) {
            set(o, "state", json_string("FAULTED"));
            set(o, "error", json_string("cannot read pool statistics"));
        }
        return o;
    }
    json_t *o = json_object();
    json_t *vd = json_array();
    if (!o || !vd) {
        free(st);
        json_decref(o);
        json_decref(vd);
        return NULL;
    }
    char cbuf[32];
    set(o, "name", json_string(st->name));
    set(o, "guid", json_guid(st->guid));
    set(o, "state", json_string(st->state));
    set(o, "txg", json_u64(st->txg));
    set(o, "ashift", json_integer(st->ashift));
    set(o, "autotrim", json_boolean(st->autotrim));
    set(o, "scrub_schedule_seconds", json_u64(atomic_load(&e->scrub_every)));
    int64_t ls = atomic_load(&e->last_scrub);
    set(o, "last_scrub", ls ? json_integer(ls) : json_null());
    set(o, "size", json_u64(st->size));
    set(o, "allocated", json_u64(st->allocated));
    set(o, "free", json_u64(st->free));
    set(o, "fragmentation", json_integer(st->fragmentation));
    set(o, "capacity", json_u64(st->size ? st->allocated * 100 / st->size : 0));
    set(o, "logical_bytes", json_u64(st->logical_bytes));
    set(o, "physical_bytes", json_u64(st->physical_bytes));
    set(o, "compressratio", json_ratio(st->compressratio));
    set(o, "read_errors", json_u64(st->read_errors));
    set(o, "write_errors", json_u64(st->write_errors));
    set(o, "checksum_errors", json_u64(st->checksum_errors));
    set(o, "nvols", json_u64(st->nvols));
    set(o, "compression",
        json_string(bs_compress_name(st->compression, st->compress_level, cbuf, sizeof(cbuf))));
    set(o, "checksum", json_string(bs_checksum_name(st->checksum)));
    set(o, "encryption", json_string(st->encryption ? "aes-256-gcm" : "off"));
    set(o, "keyformat", json_string(bs_keyformat_name(st->keyformat)));
    set(o, "keylocation", json_string(st->keylocation[0] ? st->keylocation : "none"));
    set(o, "cache_bytes", json_u64(st->cache_bytes));
    set(o, "cache_hits", json_u64(st->cache_hits));
    set(o, "cache_misses", json_u64(st->cache_misses));
    set(o, "nbd_clients", json_integer(api_pool_conns(ctx, e->pool, NULL, 0)));
    size_t n = st->nvdevs < BS_POOL_MAX_LEAVES_SHOWN ? st->nvdevs : BS_POOL_MAX_LEAVES_SHOWN;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(vd, render_vdev(&st->vdevs[i]));
    set(o, "vdevs", vd);
    set(o, "raw_size", json_u64(st->raw_size));
    set(o, "raw_allocated", json_u64(st->raw_allocated));
    set(o, "raw_free", json_u64(st->raw_free));
    set(o, "tops", render_tops(st));
    set(o, "layout", json_string(st->layout));
    const struct bs_scan_stats *sc = &st->scan;
    set(o, "scan", json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "state", sc->state,
                             "start_time", json_u64(sc->start_time), "end_time",
                             json_u64(sc->end_time), "txg", json_u64(sc->txg), "examined",
                             json_u64(sc->examined), "total", json_u64(sc->total), "repaired",
                             json_u64(sc->repaired), "errors", json_u64(sc->errors), "rate",
                             json_u64((uint64_t)sc->rate), "eta_seconds",
                             json_u64(sc->eta_seconds)));
    json_t *scan = json_object_get(o, "scan");
    if (scan) {
        json_object_set_new(scan, "func", json_string(sc->func[0] ? sc->func : "scrub"));
        json_object_set_new(scan, "resilvered", json_u64(sc->resilvered));
    }
    if (scan)
        json_object_set_new(scan, "pos", json_pack("{s:o,s:i,s:o}", "id", json_u64(sc->pos.id),
                                                   "part", sc->pos.part, "blk",
                                                   json_u64(sc->pos.blk)));
    json_t *errs = json_array();
    bs_pool_errors(e->pool, render_error, errs);
    set(o, "scan_errors", errs);
    free(st);
    return o;
}

json_t *render_vol(struct api_ctx *ctx, const char *pool, const struct bs_vol_props *p)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    char full[160], cbuf[32];
    snprintf(full, sizeof(full), "%s/%s", pool, p->name);
    set(o, "name", json_string(p->name));
    set(o, "pool", json_string(pool));
    set(o, "full_name", json_string(full));
    set(o, "volsize", json_u64(p->volsize));
    set(o, "volblocksize", json_u64(p->volblocksize));
    set(o, "compression",
        json_string(bs_compress_name(p->compression, p->compress_level, cbuf, sizeof(cbuf))));
    set(o, "checksum", json_string(bs_checksum_name(p->checksum)));
    set(o, "refreservation", json_u64(p->refreservation));
    set(o, "readonly", json_boolean(p->readonly));
    set(o, "used", json_u64(p->used));
    set(o, "referenced", json_u64(p->referenced));
    set(o, "logicalused", json_u64(p->logicalused));
    set(o, "compressratio", json_ratio(p->compressratio));
    set(o, "create_txg", json_u64(p->create_txg));
    set(o, "guid", json_guid(p->guid));
    set(o, "encryption", json_string(p->encrypted ? "aes-256-gcm" : "off"));
    set(o, "keyformat", json_string(bs_keyformat_name(p->encrypted ? p->keyformat : 0)));
    set(o, "keylocation", json_string(p->encrypted ? p->keylocation : "none"));
    set(o, "keystatus", json_string(!p->encrypted ? "none"
                                    : p->keyloaded ? "available" : "unavailable"));
    set(o, "keyslots", json_integer(p->keyslots));
    set(o, "nbd_clients", json_integer(api_export_conns(ctx, pool, p->name)));
    render_nbd_uris(ctx, o, full);
    return o;
}

void render_nbd_uris(struct api_ctx *ctx, json_t *o, const char *export_name)
{
    char buf[PATH_MAX + 512];
    snprintf(buf, sizeof(buf), "nbd+unix:///%s?socket=%s", export_name, ctx->nbd_socket);
    set(o, "uri", json_string(buf));
    if (ctx->nbd_tcp[0]) {
        snprintf(buf, sizeof(buf), "nbd://%s/%s", ctx->nbd_tcp, export_name);
        set(o, "uri_tcp", json_string(buf));
    }
}
