/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM create options and config edits with Proxmox `qm create` semantics:
 * `scsi0: tank:4` allocates a new 4 GiB thin volume tank/vm-VMID-disk-N,
 * `scsi0: tank:name` attaches an existing one, `tpm: 1` adds tpmstate0,
 * `cdrom: /x.iso` is ide2, and a new UEFI VM gets its efidisk0 initialised
 * from the OVMF vars template, written through the engine.
 *
 * Everything is planned and validated before the first volume is created;
 * the volumes created are listed in `created` so the caller can destroy
 * them if a later step fails (the create is all-or-nothing). */
#include "api/handlers.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "vm/defaults.h"
#include "vm/swtpm.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ALLOC 64
#define GIB 1073741824ull

struct alloc {
    char key[16];        /* scsi0, efidisk0, tpmstate0 */
    char pool[64];
    char vol[64];
    uint64_t size;
    char opts[512];      /* the value's options after POOL:SIZE, without the comma */
    bool efi;
};

struct plan {
    struct api_ctx *ctx;
    uint32_t vmid;
    struct alloc a[MAX_ALLOC];
    size_t n;
};

static const char *const buses[] = {"scsi", "virtio", "sata", "ide", NULL};

/* "scsi12" -> bus index 0, slot 12; -1 if not a disk key */
static int disk_bus(const char *key, int *slot)
{
    for (int b = 0; buses[b]; b++) {
        size_t l = strlen(buses[b]);
        if (strncmp(key, buses[b], l) == 0 && isdigit((unsigned char)key[l])) {
            char *end;
            long s = strtol(key + l, &end, 10);
            if (*end == '\0' && s >= 0 && s < 64) {
                *slot = (int)s;
                return b;
            }
        }
    }
    return -1;
}

/* Key order: disks by bus (scsi, virtio, sata, ide) and slot, then the rest. */
static int key_rank(const char *k, int *slot)
{
    int b = disk_bus(k, slot);
    return b >= 0 ? b : 10;
}

static int key_cmp(const void *x, const void *y)
{
    const char *a = *(const char *const *)x, *b = *(const char *const *)y;
    int sa = 0, sb = 0, ra = key_rank(a, &sa), rb = key_rank(b, &sb);
    if (ra != rb)
        return ra - rb;
    if (ra < 10 && sa != sb)
        return sa - sb;
    return strcmp(a, b);
}

/* "4", "0.5" -> bytes; false if not a size in GiB */
static bool gib_size(const char *s, uint64_t *bytes)
{
    size_t i = 0, digits = 0;
    while (isdigit((unsigned char)s[i]))
        i++, digits++;
    if (s[i] == '.') {
        i++;
        size_t f = 0;
        while (isdigit((unsigned char)s[i]))
            i++, f++;
        if (!f)
            return false;
    }
    if (!digits || s[i])
        return false;
    double v = strtod(s, NULL);
    *bytes = v > 0 && v < 1048576.0 ? (uint64_t)ceil(v * (double)GIB) : 0;
    return true;
}

static int pool_check(struct api_ctx *ctx, const char *key, const char *pool, struct berr *err)
{
    pooltab_rdlock(ctx->pools);
    struct pool_entry *e = pooltab_find(ctx->pools, pool);
    int r = 0;
    if (!e)
        r = berr_set(err, ENOENT, "%s: pool '%s' does not exist", key, pool);
    else if (!e->pool)
        r = berr_set(err, API_EUNAVAIL, "%s: pool '%s' is UNAVAIL: %s", key, pool, e->error);
    pooltab_unlock(ctx->pools);
    return r;
}

static bool vol_exists(struct api_ctx *ctx, const char *pool, const char *vol)
{
    pooltab_rdlock(ctx->pools);
    struct pool_entry *e = pooltab_find(ctx->pools, pool);
    struct bs_vol_props p;
    bool ok = e && e->pool && bs_vol_get(e->pool, vol, &p, NULL) == 0;
    pooltab_unlock(ctx->pools);
    return ok;
}

struct used_names {
    const char *pool, *vol;
    bool hit;
};

static int used_cb(const char *key, const struct vm_volref *v, void *opaque)
{
    struct used_names *u = opaque;
    if (strcmp(v->pool, u->pool) == 0 && strcmp(v->vol, u->vol) == 0)
        u->hit = true;
    return 0;
}

/* vm-VMID-disk-N with the first N not used in the pool, the plan or c */
static void next_disk_name(struct plan *p, const struct vm_config *c, const char *pool,
                           char *out, size_t len)
{
    for (unsigned n = 0;; n++) {
        snprintf(out, len, "vm-%u-disk-%u", p->vmid, n);
        bool taken = vol_exists(p->ctx, pool, out);
        for (size_t i = 0; i < p->n && !taken; i++)
            taken = strcmp(p->a[i].pool, pool) == 0 && strcmp(p->a[i].vol, out) == 0;
        struct used_names u = {pool, out, false};
        vm_config_foreach_volume(c, used_cb, &u);
        if (!taken && !u.hit)
            return;
    }
}

static bool has_opt(const char *opts, const char *name)
{
    size_t l = strlen(name);
    for (const char *p = opts; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, l) == 0 && p[l] == '=')
            return true;
    return false;
}

static void add_opt(char *opts, size_t len, const char *opt)
{
    size_t l = strlen(opts);
    snprintf(opts + l, len - l, "%s%s", l ? "," : "", opt);
}

/* Plan one POOL:SIZE value.  Returns 1 if it was one, 0 if not, <0 error. */
static int plan_alloc(struct plan *p, struct vm_config *c, const char *key, const char *val,
                      struct berr *err)
{
    const char *comma = strchr(val, ',');
    size_t srclen = comma ? (size_t)(comma - val) : strlen(val);
    char src[200];
    if (srclen >= sizeof src)
        return 0;
    memcpy(src, val, srclen);
    src[srclen] = '\0';
    char *colon = strchr(src, ':');
    uint64_t bytes;
    if (!colon || src[0] == '/' || !gib_size(colon + 1, &bytes))
        return 0;
    *colon = '\0';
    struct berr e = {0};
    if (validate_name(src, "pool", &e) < 0)
        return berr_set(err, EINVAL, "%s: %s", key, e.msg);
    int r = pool_check(p->ctx, key, src, err);
    if (r < 0)
        return r;
    if (p->n == MAX_ALLOC)
        return berr_set(err, EINVAL, "%s: too many new volumes", key);
    struct alloc *a = &p->a[p->n];
    memset(a, 0, sizeof(*a));
    snprintf(a->key, sizeof a->key, "%s", key);
    snprintf(a->pool, sizeof a->pool, "%s", src);
    snprintf(a->opts, sizeof a->opts, "%s", comma ? comma + 1 : "");
    int slot;
    int bus = disk_bus(key, &slot);
    if (strcmp(key, "efidisk0") == 0) {
        snprintf(a->vol, sizeof a->vol, "vm-%u-efidisk0", p->vmid);
        a->size = VM_EFIVARS_4M_SIZE;
        a->efi = true;
        if (!has_opt(a->opts, "efitype"))
            add_opt(a->opts, sizeof a->opts, "efitype=4m");
        if (!has_opt(a->opts, "pre-enrolled-keys"))
            add_opt(a->opts, sizeof a->opts, "pre-enrolled-keys=0");
    } else if (strcmp(key, "tpmstate0") == 0) {
        snprintf(a->vol, sizeof a->vol, "vm-%u-tpmstate0", p->vmid);
        a->size = VM_TPMSTATE_SIZE;
        if (!has_opt(a->opts, "version"))
            add_opt(a->opts, sizeof a->opts, "version=v2.0");
    } else if (bus >= 0) {
        if (!bytes)
            return berr_set(err, EINVAL, "%s: size '%s' must be more than 0 GiB", key, colon + 1);
        next_disk_name(p, c, a->pool, a->vol, sizeof a->vol);
        a->size = bytes;
        if (strstr(a->opts, "media=cdrom"))
            return berr_set(err, EINVAL, "%s: a new volume cannot be a cdrom", key);
        if (bus <= 2 && !has_opt(a->opts, "discard"))
            add_opt(a->opts, sizeof a->opts, "discard=on");
        if ((bus == 1 || (bus == 0 && vm_config_scsihw(c) == VM_SCSIHW_VIRTIO_SINGLE)) &&
            !has_opt(a->opts, "iothread"))
            add_opt(a->opts, sizeof a->opts, "iothread=1");
    } else {
        return berr_set(err, EINVAL, "%s: POOL:SIZE only creates disks, efidisk0 and tpmstate0",
                        key);
    }
    if (vol_exists(p->ctx, a->pool, a->vol))
        return berr_set(err, EEXIST, "%s: volume %s/%s already exists", key, a->pool, a->vol);
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->a[i].pool, a->pool) == 0 && strcmp(p->a[i].vol, a->vol) == 0)
            return berr_set(err, EEXIST, "%s: volume %s/%s is planned twice", key, a->pool, a->vol);
    p->n++;
    return 1;
}

/* The config value of a planned allocation. */
static int set_planned(struct vm_config *c, const struct alloc *a, struct berr *err)
{
    char v[800];
    char sz[32];
    if (a->size % GIB == 0)
        snprintf(sz, sizeof sz, "%lluG", (unsigned long long)(a->size / (uint64_t)GIB));
    else if (a->size % 1048576 == 0)
        snprintf(sz, sizeof sz, "%lluM", (unsigned long long)(a->size >> 20));
    else
        snprintf(sz, sizeof sz, "%lluK", (unsigned long long)DIV_ROUND_UP(a->size, 1024));
    snprintf(v, sizeof v, "%s:%s%s%s%s", a->pool, a->vol, a->opts[0] ? "," : "", a->opts,
             has_opt(a->opts, "size") ? "" : "");
    if (!has_opt(a->opts, "size")) {
        size_t l = strlen(v);
        snprintf(v + l, sizeof v - l, ",size=%s", sz);
    }
    return vm_config_set(c, a->key, v, err);
}

/* Check an existing volume named by a disk value (POOL:VOL). */
static int check_existing(struct api_ctx *ctx, const struct vm_config *c, const char *key,
                          struct berr *err)
{
    struct vm_volref v;
    int slot, bus = disk_bus(key, &slot);
    if (strcmp(key, "efidisk0") == 0 && c->efidisk.present)
        v = c->efidisk.vol;
    else if (strcmp(key, "tpmstate0") == 0 && c->tpmstate.present)
        v = c->tpmstate.vol;
    else if (bus >= 0) {
        const struct vm_disk *d = vm_config_find_disk(c, (enum vm_bus)bus, slot);
        if (!d || d->kind != VM_DISK_VOLUME)
            return 0;
        v = d->vol;
    } else
        return 0;
    int r = pool_check(ctx, key, v.pool, err);
    if (r == 0 && !vol_exists(ctx, v.pool, v.vol))
        r = berr_set(err, ENOENT, "%s: volume %s/%s does not exist", key, v.pool, v.vol);
    return r;
}

/* Where efidisk0/tpmstate0 go: the pool of the first disk volume, else the
 * only imported pool. */
static int default_pool(struct plan *p, const struct vm_config *c, const char *why, char *out,
                        size_t len, struct berr *err)
{
    for (size_t i = 0; i < p->n; i++)
        if (!p->a[i].efi && strncmp(p->a[i].key, "tpm", 3) != 0) {
            snprintf(out, len, "%s", p->a[i].pool);
            return 0;
        }
    for (int b = 0; b < 4; b++)
        for (int s = 0; s < 31; s++) {
            const struct vm_disk *d = vm_config_find_disk(c, (enum vm_bus)b, s);
            if (d && d->kind == VM_DISK_VOLUME) {
                snprintf(out, len, "%s", d->vol.pool);
                return 0;
            }
        }
    if (c->tpmstate.present) {
        snprintf(out, len, "%s", c->tpmstate.vol.pool);
        return 0;
    }
    int n = 0;
    pooltab_rdlock(p->ctx->pools);
    for (struct pool_entry *e = p->ctx->pools->head; e; e = e->next)
        if (e->pool && n++ == 0)
            snprintf(out, len, "%s", e->name);
    pooltab_unlock(p->ctx->pools);
    if (n == 1)
        return 0;
    return berr_set(err, EINVAL, "%s: no disk volume to put it next to and %s imported pools: "
                    "give %s: POOL:1 (or a disk scsi0: POOL:SIZE)%s", why,
                    n ? "several" : "no", why,
                    strcmp(why, "efidisk0") == 0 ? ", or bios: seabios" : "");
}

static int create_vol(struct api_ctx *ctx, const struct alloc *a, json_t *created,
                      struct berr *err)
{
    pooltab_rdlock(ctx->pools);
    struct pool_entry *e = pooltab_find(ctx->pools, a->pool);
    int r;
    if (!e || !e->pool) {
        r = berr_set(err, ENOENT, "%s: pool '%s' is not available", a->key, a->pool);
        goto out;
    }
    struct bs_vol_props props;
    bs_vol_props_init(e->pool, &props);
    snprintf(props.name, sizeof props.name, "%s", a->vol);
    uint64_t bs = props.volblocksize ? props.volblocksize : 16384;
    props.volblocksize = (uint32_t)bs;
    props.volsize = ROUND_UP(a->size, bs);
    if ((r = bs_vol_create(e->pool, &props, false, err)) < 0) {
        berr_wrap(err, "%s", a->key);
        goto out;
    }
    char full[160];
    snprintf(full, sizeof full, "%s/%s", a->pool, a->vol);
    json_array_append_new(created, json_string(full));
    blog_info("volume %s created for VM %s", full, a->key);
    if (a->efi) {
        struct vm_efidisk ed = {.present = true, .efitype_4m = 1, .pre_enrolled_keys = 0};
        if (strstr(a->opts, "pre-enrolled-keys=1"))
            ed.pre_enrolled_keys = 1;
        if (strstr(a->opts, "efitype=2m"))
            ed.efitype_4m = 0;
        struct vm_ovmf_files fw;
        vm_ovmf_files(&ed, ctx->ovmf_dir, &fw);
        _cleanup_free_ char *tmpl = NULL;
        size_t len = 0;
        bs_vol *v = NULL;
        if ((r = read_file_all(fw.vars_template, 16 << 20, &tmpl, &len, err)) < 0) {
            berr_wrap(err, "efidisk0: OVMF vars template");
            goto out;
        }
        if (len > props.volsize) {
            r = berr_set(err, EINVAL, "efidisk0: template %s (%zu bytes) is larger than the "
                         "volume", fw.vars_template, len);
            goto out;
        }
        if ((r = bs_vol_open(e->pool, a->vol, &v, err)) == 0) {
            if ((r = bs_vol_pwrite(v, tmpl, len, 0, BS_IO_FUA)) < 0)
                berr_errno(err, -r, "efidisk0: writing the UEFI variables");
            bs_vol_close(v);
        }
    }
out:
    pooltab_unlock(ctx->pools);
    return r;
}

void api_vm_destroy_vols(struct api_ctx *ctx, json_t *created)
{
    size_t i;
    json_t *v;
    json_array_foreach(created, i, v) {
        const char *full = json_string_value(v);
        const char *slash = strchr(full, '/');
        char pool[64];
        snprintf(pool, sizeof pool, "%.*s", (int)(slash - full), full);
        struct berr err = {0};
        pooltab_rdlock(ctx->pools);
        struct pool_entry *e = pooltab_find(ctx->pools, pool);
        /* recursive: a purged VM's volumes take their VM snapshots along */
        int r = e && e->pool ? bs_vol_destroy_ex(e->pool, slash + 1,
                                                 BS_DESTROY_FORCE | BS_DESTROY_RECURSIVE, &err)
                             : -ENOENT;
        pooltab_unlock(ctx->pools);
        if (r < 0)
            blog_err("cannot destroy volume %s: %s", full, err.msg[0] ? err.msg : strerror(-r));
        else
            blog_info("volume %s destroyed", full);
    }
}

static bool truthy(const char *s)
{
    return strcmp(s, "1") == 0 || strcmp(s, "on") == 0 || strcmp(s, "yes") == 0 ||
           strcmp(s, "true") == 0;
}

static void default_boot(struct vm_config *c, struct berr *err)
{
    char order[512] = "";
    char dk[16];
    for (int b = 0; b < 4; b++)
        for (int s = 0; s < 31; s++) {
            const struct vm_disk *d = vm_config_find_disk(c, (enum vm_bus)b, s);
            if (d && d->kind != VM_DISK_NONE)
                add_opt(order, sizeof order, vm_disk_key(d, dk, sizeof dk));
        }
    for (size_t i = 0; i < c->n_nets; i++)
        if (c->nets[i].index == 0)
            add_opt(order, sizeof order, "net0");
    for (char *p = order; *p; p++)
        if (*p == ',')
            *p = ';';
    if (order[0]) {
        char v[520];
        snprintf(v, sizeof v, "order=%s", order);
        vm_config_set(c, "boot", v, err);
    }
}

int api_vm_apply_opts(struct api_ctx *ctx, uint32_t vmid, struct vm_config *c, json_t *opts,
                      bool creating, json_t *created, struct berr *err)
{
    struct plan *p = calloc(1, sizeof(*p));
    if (!p)
        return berr_set(err, ENOMEM, "out of memory");
    p->ctx = ctx;
    p->vmid = vmid;
    size_t nk = json_object_size(opts), k = 0;
    const char **keys = calloc(nk + 1, sizeof(*keys));
    int r = keys ? 0 : berr_set(err, ENOMEM, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(opts, key, val) {
        if (keys)
            keys[k++] = key;
    }
    if (keys)
        qsort(keys, k, sizeof(*keys), key_cmp);
    bool want_tpm = false, boot_given = false;
    /* plain keys first (scsihw/bios decide the disk defaults), then disks */
    for (int pass = 0; pass < 2 && r == 0; pass++)
        for (size_t i = 0; i < k && r == 0; i++) {
            const char *v = json_string_value(json_object_get(opts, keys[i]));
            int slot;
            bool volkey = disk_bus(keys[i], &slot) >= 0 || strcmp(keys[i], "efidisk0") == 0 ||
                          strcmp(keys[i], "tpmstate0") == 0;
            if (pass != (volkey ? 1 : 0))
                continue;
            if (strcmp(keys[i], "tpm") == 0) {
                want_tpm = truthy(v);
            } else if (strcmp(keys[i], "cdrom") == 0) {
                char cd[4200];
                snprintf(cd, sizeof cd, "%s,media=cdrom", v);
                r = vm_config_set(c, "ide2", *v ? cd : "", err);
            } else if (volkey && *v && (r = plan_alloc(p, c, keys[i], v, err)) != 0) {
                r = r > 0 ? 0 : r;
            } else if (r == 0) {
                boot_given |= strcmp(keys[i], "boot") == 0;
                if ((r = vm_config_set(c, keys[i], v, err)) == 0 && volkey && *v)
                    r = check_existing(ctx, c, keys[i], err);
            }
        }
    char pool[64];
    if (r == 0 && creating && vm_config_bios(c) == VM_BIOS_OVMF && !c->efidisk.present &&
        !json_object_get(opts, "efidisk0") &&
        (r = default_pool(p, c, "efidisk0", pool, sizeof pool, err)) == 0) {
        char v[80];
        snprintf(v, sizeof v, "%s:1", pool);
        r = plan_alloc(p, c, "efidisk0", v, err) < 0 ? -err->code : 0;
    }
    if (r == 0 && want_tpm && !c->tpmstate.present && !json_object_get(opts, "tpmstate0") &&
        (r = default_pool(p, c, "tpmstate0", pool, sizeof pool, err)) == 0) {
        char v[80];
        snprintf(v, sizeof v, "%s:1", pool);
        r = plan_alloc(p, c, "tpmstate0", v, err) < 0 ? -err->code : 0;
    }
    for (size_t i = 0; i < p->n && r == 0; i++)
        r = set_planned(c, &p->a[i], err);
    if (r == 0 && creating && !boot_given)
        default_boot(c, err);
    if (r == 0)
        r = vm_config_validate(c, err);
    for (size_t i = 0; i < p->n && r == 0; i++)
        r = create_vol(ctx, &p->a[i], created, err);
    free(keys);
    free(p);
    return r;
}
