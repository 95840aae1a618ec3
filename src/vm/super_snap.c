/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM snapshots (vm_snap.h): take one (freeze the guest, one atomic engine
 * call per pool, thaw on every path), record it in the config file, list,
 * destroy, roll back.  Clones are in super_clone.c.
 *
 * Order inside a snapshot, and why:
 *   op_lock (no start/stop/edit meanwhile) -> agent_lock -> freeze ->
 *   snapshot every pool -> thaw -> release agent_lock -> record.
 * The record comes last: a snapshot that failed leaves no record, and a
 * record that cannot be written undoes the volume snapshots.  The thaw comes
 * before any cleanup so the guest stays frozen no longer than needed. */
#include "vm/snap_int.h"
#include "vm/qga_freeze.h"
#include "vm/snaprec.h"
#include "vm/proc.h"
#include "common/cleanup.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FREEZE_DEFAULT_MS 30000
#define AGENT_PROBE_MS 2000  /* an agent that does not sync in 2 s is not running */
#define THAW_MS 60000        /* keep trying: a frozen guest cannot write at all */

struct vm *snap_get_op_locked(struct vmm *m, uint32_t vmid, struct berr *err)
{
    struct vm *vm = vm_get(m, vmid, false, err);
    if (vm)
        pthread_mutex_lock(&vm->op_lock);
    return vm;
}

void snap_put_op_locked(struct vm *vm)
{
    pthread_mutex_unlock(&vm->op_lock);
    vm_put(vm);
}

int snap_vols(const struct vm_config *c, struct snapvol **out, size_t *n, struct berr *err)
{
    struct snapvol *v = calloc(c->n_disks + 3, sizeof(*v));
    size_t k = 0;
    if (!v)
        return berr_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < c->n_disks; i++) {
        const struct vm_disk *d = &c->disks[i];
        if (d->kind != VM_DISK_VOLUME || d->cdrom)
            continue; /* cdrom volumes are shared install media, not VM state */
        vm_disk_key(d, v[k].key, sizeof v[k].key);
        v[k++].ref = d->vol;
    }
    if (c->efidisk.present) {
        snprintf(v[k].key, sizeof v[k].key, "efidisk0");
        v[k++].ref = c->efidisk.vol;
    }
    if (c->tpmstate.present) {
        snprintf(v[k].key, sizeof v[k].key, "tpmstate0");
        v[k++].ref = c->tpmstate.vol;
    }
    *out = v;
    *n = k;
    return 0;
}

/* A checked deep copy (vm_copy_config leaves an empty config on failure,
 * which must never be written over a VM's file). */
static int copy_config(const struct vm_config *src, struct vm_config *dst, struct berr *err)
{
    char *text = NULL;
    vm_config_init(dst);
    int r = vm_config_format(src, &text, err);
    if (r == 0)
        r = vm_config_parse(text, strlen(text), dst, err);
    free(text);
    return r;
}

void snap_current_locked(struct vm *vm, struct vm_config *out, bool *running, bool *paused,
                         bool *agent)
{
    pthread_mutex_lock(&vm->m->lock);
    *running = vm->pid != 0;
    *paused = vm->status != VM_ST_RUNNING;
    const struct vm_config *c = *running && vm->have_run_cfg ? &vm->run_cfg : &vm->cfg;
    vm_copy_config(c, out);
    *agent = vm_config_agent_enabled(c);
    pthread_mutex_unlock(&vm->m->lock);
}

static void add_warning(struct vm_snap_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_warning(struct vm_snap_result *res, const char *fmt, ...)
{
    size_t l = strlen(res->warning);
    if (l && l + 2 < sizeof res->warning)
        l += (size_t)snprintf(res->warning + l, sizeof res->warning - l, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->warning + l, sizeof res->warning - l, fmt, ap);
    va_end(ap);
}

/* Snapshot every pool's volumes in one call each; on failure destroy what
 * the earlier pools got, so nothing is left half done. */
static int create_all(const struct snapvol *v, size_t n, const char *name,
                      const struct vm_snap_ops *ops, struct berr *err)
{
    const char **vols = calloc(n + 1, sizeof(*vols));
    bool *done = calloc(n + 1, sizeof(*done));
    int r = vols && done ? 0 : berr_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (done[i])
            continue;
        size_t k = 0;
        for (size_t j = i; j < n; j++)
            if (!done[j] && strcmp(v[j].ref.pool, v[i].ref.pool) == 0)
                vols[k++] = v[j].ref.vol;
        r = ops->snap_create(ops->opaque, v[i].ref.pool, vols, k, name, err);
        for (size_t j = i; r == 0 && j < n; j++)
            if (strcmp(v[j].ref.pool, v[i].ref.pool) == 0)
                done[j] = true;
    }
    for (size_t i = 0; r < 0 && done && i < n; i++)
        if (done[i])
            ops->snap_destroy(ops->opaque, v[i].ref.pool, v[i].ref.vol, name, NULL);
    free(vols);
    free(done);
    return r;
}

int snap_take_locked(struct vm *vm, const char *name, const struct vm_config *c, bool running,
                     bool paused, bool agent, int freeze_ms, const struct vm_snap_ops *ops,
                     struct vm_snap_result *res, struct berr *err)
{
    struct snapvol *v;
    size_t n;
    memset(res, 0, sizeof(*res));
    int r = snap_vols(c, &v, &n, err);
    if (r < 0)
        return r;
    if (n == 0) {
        free(v);
        return berr_set(err, EINVAL, "VM %u has no volumes to snapshot", vm->vmid);
    }
    struct qga_freeze f = {0};
    bool agent_locked = running && !paused && agent;
    if (agent_locked) {
        struct berr e = {0};
        pthread_mutex_lock(&vm->agent_lock);
        if (qga_freeze_begin(&f, vm->paths.qga, AGENT_PROBE_MS,
                             freeze_ms > 0 ? freeze_ms : FREEZE_DEFAULT_MS, &e) == 0) {
            res->frozen = true;
            res->frozen_fs = f.frozen;
        } else {
            add_warning(res, "the guest's filesystems were not frozen (%s): the snapshot is "
                        "crash-consistent", e.msg);
        }
    } else if (running && paused) {
        pthread_mutex_lock(&vm->m->lock);
        const char *st = vm_status_name(vm->status);
        pthread_mutex_unlock(&vm->m->lock);
        add_warning(res, "VM %u is %s, its agent cannot freeze the filesystems: the snapshot "
                    "is crash-consistent", vm->vmid, st);
    } else if (running) {
        add_warning(res, "VM %u has no guest agent (agent: 0): the snapshot is "
                    "crash-consistent", vm->vmid);
    }
    r = create_all(v, n, name, ops, err);
    if (agent_locked) {
        struct berr e = {0};
        if (qga_freeze_end(&f, THAW_MS, NULL, &e) < 0) {
            add_warning(res, "THAW FAILED: %s (try `berth vm agent %u thaw`)", e.msg, vm->vmid);
            vm_log(vm, "snapshot %s: thaw failed: %s", name, e.msg);
        }
        pthread_mutex_unlock(&vm->agent_lock);
    }
    res->nvols = r == 0 ? n : 0;
    free(v);
    return r;
}

static void conf_file(struct vm *vm, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%u.conf", vm->m->conf_dir, vm->vmid);
}

/* Write the config `c` (taken on success) as the VM's config. */
static int replace_config_locked(struct vm *vm, struct vm_config *c, struct berr *err)
{
    char p[PATH_MAX + 32];
    conf_file(vm, p, sizeof p);
    int r = vm_config_save(p, c, err);
    if (r == 0) {
        pthread_mutex_lock(&vm->m->lock);
        vm_config_free(&vm->cfg);
        vm->cfg = *c;
        pthread_mutex_unlock(&vm->m->lock);
        vm_config_init(c);
    }
    return r;
}

/* The current config with `sections` (taken) as its section tail. */
static int save_sections_locked(struct vm *vm, char *sections, struct berr *err)
{
    struct vm_config c;
    int r = copy_config(&vm->cfg, &c, err); /* op_lock held: cfg cannot change */
    if (r == 0) {
        free(c.sections);
        c.sections = steal_ptr(sections);
        r = replace_config_locked(vm, &c, err);
    }
    free(sections);
    vm_config_free(&c);
    return r;
}

int snap_record_locked(struct vm *vm, const struct vm_snap_info *rec, struct berr *err)
{
    char *s = NULL;
    int r = snaprec_append(vm->cfg.sections, rec, &s, err);
    return r < 0 ? r : save_sections_locked(vm, s, err);
}

int snap_unrecord_locked(struct vm *vm, const char *name, struct berr *err)
{
    char *s = NULL;
    int r = snaprec_remove(vm->cfg.sections, name, &s, err);
    return r < 0 ? r : save_sections_locked(vm, s, err);
}

int snap_destroy_vols(const struct vm_config *c, const char *name, const struct vm_snap_ops *ops,
                      bool check_only, struct berr *err)
{
    struct snapvol *v;
    size_t n;
    int r = snap_vols(c, &v, &n, err);
    for (size_t i = 0; r == 0 && i < n; i++) {
        const struct vm_volref *f = &v[i].ref;
        unsigned nclones = 0, nholds = 0;
        if (check_only) {
            r = ops->snap_info(ops->opaque, f->pool, f->vol, name, &nclones, &nholds, err);
            if (r == -ENOENT)
                r = 0;
            else if (r == 0 && nclones)
                r = berr_set(err, EBUSY, "%s/%s@%s has %u clone%s (a linked clone VM?); "
                             "destroy %s first", f->pool, f->vol, name, nclones,
                             nclones == 1 ? "" : "s", nclones == 1 ? "it" : "them");
            else if (r == 0 && nholds)
                r = berr_set(err, EBUSY, "%s/%s@%s is held (berth snapshot release)", f->pool,
                             f->vol, name);
        } else if ((r = ops->snap_destroy(ops->opaque, f->pool, f->vol, name, err)) == -ENOENT) {
            r = 0; /* already gone: destroying is idempotent */
        }
    }
    free(v);
    return r;
}

/* ---- the public operations ---- */

int vmm_snapshot(struct vmm *m, uint32_t vmid, const char *name, int freeze_ms,
                 const struct vm_snap_ops *ops, struct vm_snap_result *res, struct berr *err)
{
    memset(res, 0, sizeof(*res));
    int r = vm_snap_name_check(name, err);
    if (r < 0)
        return r;
    struct vm *vm = snap_get_op_locked(m, vmid, err);
    if (!vm)
        return -ENOENT;
    struct vm_snap_info rec = {.time = vm_now()};
    snprintf(rec.name, sizeof rec.name, "%s", name);
    struct vm_config c;
    vm_config_init(&c);
    if (snap_recorded_locked(vm, name)) {
        r = berr_set(err, EEXIST, "VM %u already has a snapshot '%s'", vmid, name);
        goto out;
    }
    bool running, paused, agent;
    snap_current_locked(vm, &c, &running, &paused, &agent);
    if ((r = snap_take_locked(vm, name, &c, running, paused, agent, freeze_ms, ops, res, err)) < 0)
        goto out;
    free(c.sections); /* the record holds the config, not the other records */
    c.sections = NULL;
    rec.frozen = res->frozen;
    if ((r = vm_config_format(&c, &rec.config, err)) == 0)
        r = snap_record_locked(vm, &rec, err);
    if (r < 0) {
        snap_destroy_vols(&c, name, ops, false, NULL);
        goto out;
    }
    vm_log(vm, "snapshot %s of %zu volume%s (%s)", name, res->nvols, res->nvols == 1 ? "" : "s",
           res->frozen ? "guest filesystems frozen" : running ? "crash-consistent" : "VM stopped");
out:
    free(rec.config);
    vm_config_free(&c);
    snap_put_op_locked(vm);
    return r;
}

int vmm_snapshot_list(struct vmm *m, uint32_t vmid, struct vm_snap_info **out, size_t *n,
                      struct berr *err)
{
    struct vm *vm = vm_get(m, vmid, false, err);
    if (!vm)
        return -ENOENT;
    pthread_mutex_lock(&m->lock);
    int r = snaprec_parse(vm->cfg.sections, out, n, err);
    pthread_mutex_unlock(&m->lock);
    vm_put(vm);
    return r;
}

bool snap_recorded_locked(struct vm *vm, const char *name)
{
    struct vm_snap_info rec = {0};
    bool found = snaprec_find(vm->cfg.sections, name, &rec, NULL) == 0;
    free(rec.config);
    return found;
}

int snap_recorded_config_locked(struct vm *vm, const char *name, struct vm_config *c,
                                struct berr *err)
{
    struct vm_snap_info rec;
    vm_config_init(c);
    int r = snaprec_find(vm->cfg.sections, name, &rec, err);
    if (r == -ENOENT)
        return berr_set(err, ENOENT, "VM %u has no snapshot '%s'", vm->vmid, name);
    if (r < 0)
        return r;
    r = vm_config_parse(rec.config, strlen(rec.config), c, err);
    free(rec.config);
    return r < 0 ? berr_wrap(err, "snapshot '%s': its recorded config", name) : 0;
}

int vmm_snapshot_destroy(struct vmm *m, uint32_t vmid, const char *name,
                         const struct vm_snap_ops *ops, struct berr *err)
{
    struct vm *vm = snap_get_op_locked(m, vmid, err);
    if (!vm)
        return -ENOENT;
    struct vm_config c;
    int r = snap_recorded_config_locked(vm, name, &c, err);
    /* nothing is destroyed unless every volume snapshot can be */
    if (r == 0 && (r = snap_destroy_vols(&c, name, ops, true, err)) == 0 &&
        (r = snap_destroy_vols(&c, name, ops, false, err)) == 0 &&
        (r = snap_unrecord_locked(vm, name, err)) == 0)
        vm_log(vm, "snapshot %s destroyed", name);
    vm_config_free(&c);
    snap_put_op_locked(vm);
    return r;
}

int vmm_rollback(struct vmm *m, uint32_t vmid, const char *name, const struct vm_snap_ops *ops,
                 struct berr *err)
{
    struct vm *vm = snap_get_op_locked(m, vmid, err);
    if (!vm)
        return -ENOENT;
    struct vm_config c;
    vm_config_init(&c);
    struct snapvol *v = NULL;
    size_t n = 0;
    int r = 0;
    pthread_mutex_lock(&m->lock);
    if (vm->pid != 0 || (vm->status != VM_ST_STOPPED && vm->status != VM_ST_CRASHED))
        r = berr_set(err, EBUSY, "VM %u is %s: stop it before rolling back (berth vm stop %u)",
                     vmid, vm->status == VM_ST_CRASHED ? "running (crashed)"
                                                       : vm_status_name(vm->status), vmid);
    pthread_mutex_unlock(&m->lock);
    if (r < 0 || (r = snap_recorded_config_locked(vm, name, &c, err)) < 0 ||
        (r = snap_vols(&c, &v, &n, err)) < 0)
        goto out;
    /* every snapshot must be there before the first volume changes */
    for (size_t i = 0; r == 0 && i < n; i++) {
        unsigned nc, nh;
        r = ops->snap_info(ops->opaque, v[i].ref.pool, v[i].ref.vol, name, &nc, &nh, err);
        if (r == -ENOENT)
            berr_set(err, ENOENT, "%s: volume snapshot %s/%s@%s is missing; cannot roll back",
                     v[i].key, v[i].ref.pool, v[i].ref.vol, name);
    }
    for (size_t i = 0; r == 0 && i < n; i++)
        if ((r = ops->rollback(ops->opaque, v[i].ref.pool, v[i].ref.vol, name, err)) < 0)
            berr_wrap(err, "%s (%zu of %zu volumes rolled back)", v[i].key, i, n);
    if (r < 0)
        goto out;
    /* restore the config of the snapshot, keeping every snapshot record; a
     * new vmgenid tells the guest it went back in time */
    free(c.sections);
    c.sections = vm->cfg.sections ? strdup(vm->cfg.sections) : NULL;
    if (vm->cfg.sections && !c.sections) {
        r = berr_set(err, ENOMEM, "out of memory");
        goto out;
    }
    if (c.vmgenid && strcmp(c.vmgenid, "0") != 0)
        r = vm_config_set(&c, "vmgenid", "1", err);
    if (r == 0 && (r = vm_config_validate(&c, err)) == 0 &&
        (r = replace_config_locked(vm, &c, err)) == 0)
        vm_log(vm, "rolled back to snapshot %s (%zu volume%s)", name, n, n == 1 ? "" : "s");
    else
        berr_wrap(err, "the volumes were rolled back but the config was not restored");
out:
    free(v);
    vm_config_free(&c);
    snap_put_op_locked(vm);
    return r;
}
