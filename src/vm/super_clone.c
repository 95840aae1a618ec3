/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM clones (vmm_clone in vm_snap.h).
 *
 * Steps, and the locks they take:
 *   1. reserve NEWID (EEXIST if it exists; hidden from lists until defined);
 *   2. under the source's op_lock: find the snapshot to clone from, or take
 *      one (linked: recorded as "clone-NEWID", which the clone then pins;
 *      full: a temporary one, so the copy sees one consistent moment);
 *   3. without any VM lock (a full copy can take minutes): create the new
 *      volumes from the snapshot, linked or copied, and define NEWID;
 *   4. drop the temporary snapshot.
 * Any failure undoes what was done: new volumes destroyed, NEWID unreserved,
 * a snapshot taken for this clone destroyed with its record. */
#include "vm/snap_int.h"
#include "vm/defaults.h"
#include "vm/internal.h"
#include "vm/proc.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The clone's name for a source volume: the "vm-SRC-" prefix becomes
 * "vm-NEW-"; any other name becomes "vm-NEW-<key>", so that `vm destroy
 * --purge NEW` finds it too. */
static void clone_vol_name(uint32_t src, uint32_t dst, const struct snapvol *sv, char *out,
                           size_t len)
{
    char prefix[32];
    int pl = snprintf(prefix, sizeof prefix, "vm-%u-", src);
    if (strncmp(sv->ref.vol, prefix, (size_t)pl) == 0)
        snprintf(out, len, "vm-%u-%s", dst, sv->ref.vol + pl);
    else
        snprintf(out, len, "vm-%u-%s", dst, sv->key);
}

/* Point config slot `key` at volume `vol` (same pool). */
static void set_slot_vol(struct vm_config *c, const char *key, const char *vol)
{
    struct vm_volref *ref = NULL;
    if (strcmp(key, "efidisk0") == 0)
        ref = &c->efidisk.vol;
    else if (strcmp(key, "tpmstate0") == 0)
        ref = &c->tpmstate.vol;
    for (size_t i = 0; !ref && i < c->n_disks; i++) {
        char k[16];
        if (strcmp(vm_disk_key(&c->disks[i], k, sizeof k), key) == 0)
            ref = &c->disks[i].vol;
    }
    if (ref)
        snprintf(ref->vol, sizeof ref->vol, "%s", vol);
}

/* smbios1 with a new uuid= (the other fields kept): two VMs with one
 * SMBIOS UUID confuse licensing, cloud-init and management tools. */
static int new_smbios_uuid(struct vm_config *c, struct berr *err)
{
    if (!c->smbios1)
        return 0;
    char uuid[40];
    if (vm_generate_uuid(uuid, sizeof uuid) < 0)
        return berr_set(err, EIO, "cannot generate a UUID");
    struct sbuf b = {0};
    bool found = false;
    char *dup = strdup(c->smbios1);
    if (!dup)
        return berr_set(err, ENOMEM, "out of memory");
    for (char *save = NULL, *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool u = strncmp(t, "uuid=", 5) == 0;
        sbuf_printf(&b, "%s%s%s", b.len ? "," : "", u ? "uuid=" : t, u ? uuid : "");
        found |= u;
    }
    free(dup);
    char *val = sbuf_steal(&b);
    sbuf_free(&b);
    int r = !val ? berr_set(err, ENOMEM, "out of memory")
                 : found ? vm_config_set(c, "smbios1", val, err) : 0;
    free(val);
    return r;
}

/* The clone's config from the snapshot's: new volume names (`names`, in
 * snap_vols order), MACs, SMBIOS UUID, vmgenid, name; no snapshot records. */
static int clone_config(struct vm_config *c, const struct snapvol *v, size_t n, char (*names)[64],
                        const struct vm_clone_opts *o, struct berr *err)
{
    for (size_t i = 0; i < n; i++)
        set_slot_vol(c, v[i].key, names[i]);
    for (size_t i = 0; i < c->n_nets; i++)
        if (vm_generate_mac(c->nets[i].mac) < 0)
            return berr_set(err, EIO, "cannot generate a MAC address");
        else
            c->nets[i].has_mac = true;
    free(c->sections);
    c->sections = NULL;
    int r = new_smbios_uuid(c, err);
    if (r == 0 && c->vmgenid && strcmp(c->vmgenid, "0") != 0)
        r = vm_config_set(c, "vmgenid", "1", err);
    if (r == 0 && o->name)
        r = vm_config_set(c, "name", o->name, err);
    else if (r == 0 && c->name) {
        char nm[VM_NAME_MAX + 16];
        snprintf(nm, sizeof nm, "copy-of-%s", c->name);
        if (vm_config_set(c, "name", nm, NULL) < 0) /* too long: no name rather than a cut one */
            r = vm_config_set(c, "name", "", err);
    }
    return r < 0 ? r : vm_config_validate(c, err);
}

/* Step 2: the snapshot to clone from, its config in *base.  *taken: a
 * snapshot made here (recorded when linked), to undo on failure. */
static int source_snapshot(struct vmm *m, uint32_t vmid, const struct vm_clone_opts *o,
                           char *snap, size_t snaplen, struct vm_config *base, bool *taken,
                           const struct vm_snap_ops *ops, struct vm_snap_result *res,
                           struct berr *err)
{
    struct vm *vm = snap_get_op_locked(m, vmid, err);
    if (!vm)
        return -ENOENT;
    int r = 0;
    *taken = false;
    if (o->snapshot) {
        snprintf(snap, snaplen, "%s", o->snapshot);
        r = snap_recorded_config_locked(vm, snap, base, err);
        goto out;
    }
    snprintf(snap, snaplen, o->linked ? "clone-%u" : "clone-%u-tmp", o->newid);
    struct vm_snap_info rec = {.time = vm_now()};
    if (snap_recorded_locked(vm, snap)) {
        r = berr_set(err, EEXIST, "VM %u already has a snapshot '%s' (clone from it with "
                     "--snapshot %s)", vmid, snap, snap);
        goto out;
    }
    bool running, paused, agent;
    snap_current_locked(vm, base, &running, &paused, &agent);
    free(base->sections);
    base->sections = NULL;
    struct snapvol *v;
    size_t n;
    if ((r = snap_vols(base, &v, &n, err)) < 0)
        goto out;
    free(v);
    if (n == 0)
        goto out; /* nothing to snapshot: the clone is a config copy */
    r = snap_take_locked(vm, snap, base, running, paused, agent, 0, ops, res, err);
    if (r == 0 && o->linked) {
        snprintf(rec.name, sizeof rec.name, "%s", snap);
        rec.frozen = res->frozen;
        if ((r = vm_config_format(base, &rec.config, err)) == 0)
            r = snap_record_locked(vm, &rec, err);
        free(rec.config);
        if (r < 0)
            snap_destroy_vols(base, snap, ops, false, NULL);
    }
    *taken = r == 0;
out:
    snap_put_op_locked(vm);
    return r;
}

/* Undo a snapshot taken for the clone (best effort, logged). */
static void drop_snapshot(struct vmm *m, uint32_t vmid, const char *snap,
                          const struct vm_config *base, bool recorded,
                          const struct vm_snap_ops *ops)
{
    struct berr e = {0};
    struct vm *vm = snap_get_op_locked(m, vmid, &e);
    if (!vm)
        return;
    if (snap_destroy_vols(base, snap, ops, false, &e) < 0 ||
        (recorded && snap_unrecord_locked(vm, snap, &e) < 0))
        blog_warn("VM %u: cannot remove snapshot %s made for a clone: %s", vmid, snap, e.msg);
    snap_put_op_locked(vm);
}

int vmm_clone(struct vmm *m, uint32_t vmid, const struct vm_clone_opts *o,
              const struct vm_snap_ops *ops, struct vm_snap_result *res, struct berr *err)
{
    memset(res, 0, sizeof(*res));
    if (o->snapshot && vm_snap_name_check(o->snapshot, err) < 0)
        return -EINVAL;
    int r = vmm_reserve(m, o->newid, err);
    if (r < 0)
        return r;
    char snap[VM_SNAP_NAME_MAX + 1];
    struct vm_config base, c;
    vm_config_init(&base);
    vm_config_init(&c);
    bool taken = false;
    struct snapvol *v = NULL;
    size_t n = 0, made = 0;
    char (*names)[64] = NULL;
    if ((r = source_snapshot(m, vmid, o, snap, sizeof snap, &base, &taken, ops, res, err)) < 0 ||
        (r = snap_vols(&base, &v, &n, err)) < 0)
        goto fail;
    if (!(names = calloc(n + 1, sizeof(*names)))) {
        r = berr_set(err, ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        clone_vol_name(vmid, o->newid, &v[i], names[i], sizeof names[i]);
    char *text = NULL;
    if ((r = vm_config_format(&base, &text, err)) == 0)
        r = vm_config_parse(text, strlen(text), &c, err);
    free(text);
    if (r < 0 || (r = clone_config(&c, v, n, names, o, err)) < 0)
        goto fail;
    for (; made < n; made++)
        if ((r = ops->clone(ops->opaque, v[made].ref.pool, v[made].ref.vol, snap, names[made],
                            o->linked, err)) < 0) {
            berr_wrap(err, "%s", v[made].key);
            goto fail;
        }
    if ((r = vmm_define(m, o->newid, &c, err)) < 0)
        goto fail;
    snprintf(res->snapshot, sizeof res->snapshot, "%s", snap);
    blog_info("VM %u cloned from VM %u@%s (%s, %zu volume%s)", o->newid, vmid, snap,
              o->linked ? "linked" : "full", n, n == 1 ? "" : "s");
    if (taken && !o->linked)
        drop_snapshot(m, vmid, snap, &base, false, ops);
    goto out;
fail:
    for (size_t i = 0; i < made; i++)
        ops->vol_destroy(ops->opaque, v[i].ref.pool, names[i], NULL);
    if (taken)
        drop_snapshot(m, vmid, snap, &base, o->linked, ops);
    vmm_unreserve(m, o->newid);
out:
    free(names);
    free(v);
    vm_config_free(&base);
    vm_config_free(&c);
    return r;
}
