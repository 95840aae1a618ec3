/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key endpoints of encrypted volumes (docs/API.md "Keys"): load, unload,
 * list, add, remove, change, and loading every key of a pool.
 *
 * Key material arrives in the JSON field "key": a passphrase as typed, a hex
 * key as 64 hex digits, a raw key also as 64 hex digits (JSON strings cannot
 * carry arbitrary bytes).  It is never logged or echoed; the request body's
 * copy is wiped before the handler returns (api_key_from_body /
 * api_key_wipe). */
#include "api/handlers.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

/* The bs_key of a request body: "key", "keyformat", "keylocation", "kdf",
 * "iterations" (a raw key sent as 64 hex digits is taken as such by the
 * engine). */
int api_key_from_body(json_t *body, struct bs_key *k, struct berr *err)
{
    memset(k, 0, sizeof *k);
    const char *s = api_get_str(body, "keyformat");
    if (s && bs_keyformat_parse(s, &k->format, err) < 0)
        return berr_wrap(err, "field 'keyformat'");
    k->location = api_get_str(body, "keylocation");
    const char *key = api_get_str(body, "key");
    if (key) {
        k->data = key;
        k->len = strlen(key);
    }
    s = api_get_str(body, "kdf");
    if (s && strcmp(s, "argon2id") == 0)
        k->kdf.kdf = BS_KDF_ARGON2ID;
    else if (s && strcmp(s, "pbkdf2") == 0)
        k->kdf.kdf = BS_KDF_PBKDF2;
    else if (s)
        return berr_set(err, EINVAL, "field 'kdf': use argon2id or pbkdf2, not '%s'", s);
    k->kdf.t_cost = (uint32_t)api_get_int(body, "iterations", 0);
    return 0;
}

/* Wipe the key material in the request body (its string buffer). */
void api_key_wipe(json_t *body)
{
    json_t *v = json_object_get(body, "key");
    if (v && json_is_string(v))
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

static json_t *key_status(bs_pool *p, const char *pool, const char *vol)
{
    struct bs_vol_props props;
    if (bs_vol_get(p, vol, &props, NULL) < 0)
        return json_pack("{s:s,s:s}", "pool", pool, "name", vol);
    return json_pack("{s:s,s:s,s:s,s:s,s:i}", "pool", pool, "name", vol, "keystatus",
                     props.keyloaded ? "available" : "unavailable", "keyformat",
                     bs_keyformat_name(props.keyformat), "keyslots", (int)props.keyslots);
}

int h_key_load(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    struct bs_key k;
    int r = api_key_from_body(c->body, &k, err);
    if (r == 0 && (r = api_pool_acquire(c, &e, err)) == 0) {
        r = bs_key_load(e->pool, c->vol, k.data || k.location || k.format ? &k : NULL, err);
        if (r == 0) {
            blog_info("key of %s/%s loaded", e->name, c->vol);
            *out = key_status(e->pool, e->name, c->vol);
        }
        pooltab_unlock(c->ctx->pools);
    }
    api_key_wipe(c->body);
    return r;
}

int h_pool_key_load(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    struct bs_key k;
    int r = api_key_from_body(c->body, &k, err);
    if (r == 0 && (r = api_pool_acquire(c, &e, err)) == 0) {
        struct berr first = {0};
        int n = bs_key_load_all(e->pool, k.data ? &k : NULL, &first);
        if (n > 0)
            blog_info("%d key%s of pool %s loaded", n, n == 1 ? "" : "s", e->name);
        *out = json_pack("{s:s,s:i,s:s?}", "pool", e->name, "loaded", n, "error",
                         first.code ? first.msg : NULL);
        pooltab_unlock(c->ctx->pools);
    }
    api_key_wipe(c->body);
    return r;
}

int h_key_unload(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    r = bs_key_unload(e->pool, c->vol, err);
    if (r == 0) {
        blog_info("key of %s/%s unloaded", e->name, c->vol);
        *out = key_status(e->pool, e->name, c->vol);
    }
    pooltab_unlock(c->ctx->pools);
    return r;
}

static json_t *render_slots(const char *pool, const char *vol,
                            const struct bs_keyslot_info *s, int n)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const char *kdf = s[i].kdf == BS_KDF_ARGON2ID ? "argon2id"
                          : s[i].kdf == BS_KDF_PBKDF2 ? "pbkdf2" : "none";
        json_t *o = json_pack("{s:i,s:s,s:s,s:I,s:b}", "slot", s[i].slot, "keyformat",
                              bs_keyformat_name(s[i].format), "kdf", kdf, "created",
                              (json_int_t)s[i].created, "loaded_by", s[i].loaded_by);
        if (o && s[i].kdf == BS_KDF_ARGON2ID) {
            json_object_set_new(o, "time_cost", json_integer(s[i].t_cost));
            json_object_set_new(o, "memory_kib", json_integer(s[i].m_cost_kib));
            json_object_set_new(o, "parallelism", json_integer(s[i].parallelism));
        } else if (o && s[i].kdf == BS_KDF_PBKDF2) {
            json_object_set_new(o, "iterations", json_integer(s[i].t_cost));
        }
        json_array_append_new(arr, o);
    }
    return json_pack("{s:s,s:s,s:o}", "pool", pool, "name", vol, "slots", arr);
}

int h_keys_list(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    struct bs_keyslot_info s[BS_KEYSLOTS_MAX];
    int n = bs_key_list(e->pool, c->vol, s, err);
    if (n >= 0)
        *out = render_slots(e->name, c->vol, s, n);
    pooltab_unlock(c->ctx->pools);
    return n < 0 ? n : 0;
}

/* add (change false) or change (true) */
static int add_or_change(const struct api_call *c, bool change, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    struct bs_key k;
    int slot = (int)api_get_int(c->body, "slot", -1);
    int r = api_key_from_body(c->body, &k, err);
    if (r == 0 && (r = api_pool_acquire(c, &e, err)) == 0) {
        r = change ? bs_key_change(e->pool, c->vol, slot, &k, err)
                   : bs_key_add(e->pool, c->vol, &k, slot, err);
        if (r >= 0) {
            blog_info("key slot %d of %s/%s %s", r, e->name, c->vol,
                      change ? "replaces the old key" : "added");
            *out = json_pack("{s:s,s:s,s:i}", "pool", e->name, "name", c->vol, "slot", r);
            r = 0;
        }
        pooltab_unlock(c->ctx->pools);
    }
    api_key_wipe(c->body);
    return r;
}

int h_key_add(const struct api_call *c, json_t **out, struct berr *err)
{
    return add_or_change(c, false, out, err);
}

int h_key_change(const struct api_call *c, json_t **out, struct berr *err)
{
    return add_or_change(c, true, out, err);
}

int h_key_remove(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    const char *s = api_get_str(c->query, "slot");
    int slot = s && s[0] >= '0' && s[0] <= '7' && !s[1] ? s[0] - '0' : -1;
    r = slot < 0 ? berr_set(err, EINVAL, "query parameter 'slot': use 0..7")
                 : bs_key_remove(e->pool, c->vol, slot, err);
    if (r == 0) {
        blog_info("key slot %d of %s/%s removed", slot, e->name, c->vol);
        *out = json_pack("{s:s,s:s,s:i,s:b}", "pool", e->name, "name", c->vol, "slot", slot,
                         "removed", 1);
    }
    pooltab_unlock(c->ctx->pools);
    return r;
}
