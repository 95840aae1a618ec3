/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VM supervisor's table: defined VMs, their configs (parsed once, kept
 * in memory, written atomically), their logs, status snapshots, and loading
 * at berthd start.  Lifecycle operations are in super_run.c, the watcher in
 * super_watch.c.
 *
 * VM lifecycle state machine (status as the API shows it):
 *
 *               start                  QMP up, `cont`
 *   stopped ──────────► starting ─────────────────────► running ◄──┐
 *   crashed ─┘             │ QEMU/swtpm/tap failure       │  ▲      │
 *      ▲                   ▼                         stop │  │ RESUME (resume)
 *      │                stopped (last_exit = why)   event │  │      │
 *      │                                       (suspend)  ▼  │      │
 *      │   GUEST_PANICKED                               paused ─────┘
 *      ├──────────────── running/paused
 *      │   QEMU died unasked (signal, exit != 0)
 *      │
 *   running/paused ──shutdown──► shutting-down ──QEMU exits──► stopped
 *   running/paused ──stop / guest poweroff / QEMU exit 0──────► stopped
 *
 * - "starting" is only visible during vmm_start (which holds op_lock);
 *   start is allowed from stopped and crashed (a crashed VM whose QEMU still
 *   runs must be stopped first).
 * - The watcher thread is the only one that turns a VM with a process into
 *   stopped/crashed (vm_finish_exit), after reaping QEMU, stopping swtpm,
 *   saving the TPM state and removing the taps.  So `pid != 0` <=> a QEMU
 *   (or its leftovers) is ours to clean up, and a new start cannot overlap a
 *   cleanup.
 * - want_stop is set before berth asks QEMU to go (stop, shutdown): the
 *   exit is then "stopped", never "crashed".
 *
 * Locks, in this order: vm->op_lock (one operation per VM: start, stop,
 * shutdown, config edit, undefine) -> vm->agent_lock -> vm->qmp_lock ->
 * m->lock (the table and every VM's runtime fields; never held across I/O
 * or a wait other than pthread_cond_wait on m->cond).  The watcher takes
 * qmp_lock and m->lock, never op_lock, so an operation may wait for it.
 * VM structs are reference-counted (vm_get/vm_put) so an undefine cannot
 * free one under a concurrent request. */
#include "vm/super_int.h"
#include "vm/proc.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *vm_status_name(enum vm_status s)
{
    static const char *const n[] = {"stopped", "starting", "running", "paused", "shutting-down",
                                    "crashed"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "unknown";
}

static int dir_path(char *out, size_t len, const char *a, const char *b, struct berr *err)
{
    int n = snprintf(out, len, "%s%s", a, b);
    if (n < 0 || (size_t)n >= len)
        return berr_set(err, ENAMETOOLONG, "path too long: %s%s", a, b);
    return 0;
}

int vmm_new(const struct vmm_opts *o, struct vmm **out, struct berr *err)
{
    struct vmm *m = calloc(1, sizeof(*m));
    if (!m)
        return berr_set(err, ENOMEM, "out of memory");
    int r;
    if ((r = dir_path(m->state_dir, sizeof m->state_dir, o->state_dir, "", err)) < 0 ||
        (r = dir_path(m->conf_dir, sizeof m->conf_dir, o->state_dir, "/vm", err)) < 0 ||
        (r = dir_path(m->log_dir, sizeof m->log_dir, o->state_dir, "/log", err)) < 0 ||
        (r = dir_path(m->run_dir, sizeof m->run_dir, o->run_dir, "/vm", err)) < 0 ||
        (r = dir_path(m->nbd_socket, sizeof m->nbd_socket, o->nbd_socket, "", err)) < 0 ||
        (r = mkdir_p(m->conf_dir, 0700, err)) < 0 || (r = mkdir_p(m->log_dir, 0700, err)) < 0 ||
        (r = mkdir_p(m->run_dir, 0700, err)) < 0) {
        free(m);
        return r;
    }
    snprintf(m->qemu_binary, sizeof m->qemu_binary, "%s",
             o->qemu_binary ? o->qemu_binary : "qemu-system-x86_64");
    snprintf(m->ovmf_dir, sizeof m->ovmf_dir, "%s", o->ovmf_dir ? o->ovmf_dir : "");
    m->store = o->store;
    vm_accel_probe(&m->probe);
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = m;
    return 0;
}

static void vm_free(struct vm *vm)
{
    vm_config_free(&vm->cfg);
    vm_config_free(&vm->run_cfg);
    if (vm->qmp)
        qmp_close(vm->qmp);
    if (vm->pidfd >= 0)
        close(vm->pidfd);
    if (vm->wake_fd >= 0)
        close(vm->wake_fd);
    pthread_mutex_destroy(&vm->op_lock);
    pthread_mutex_destroy(&vm->qmp_lock);
    pthread_mutex_destroy(&vm->agent_lock);
    free(vm);
}

/* New VM struct (not in the table). */
static struct vm *vm_new(struct vmm *m, uint32_t vmid, struct berr *err)
{
    struct vm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        berr_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    vm->m = m;
    vm->vmid = vmid;
    vm->refs = 1;
    vm->pidfd = vm->wake_fd = -1;
    vm_config_init(&vm->cfg);
    vm_config_init(&vm->run_cfg);
    pthread_mutex_init(&vm->op_lock, NULL);
    pthread_mutex_init(&vm->qmp_lock, NULL);
    pthread_mutex_init(&vm->agent_lock, NULL);
    int n = snprintf(vm->run_dir, sizeof vm->run_dir, "%s/%u", m->run_dir, vmid);
    if (n < 0 || (size_t)n >= sizeof vm->run_dir ||
        vm_paths_init(&vm->paths, vm->run_dir, err) < 0) {
        if (n >= 0 && (size_t)n >= sizeof vm->run_dir)
            berr_set(err, ENAMETOOLONG, "run directory too long");
        vm_free(vm);
        return NULL;
    }
    return vm;
}

/* Index of vmid or of where it would go (m->lock held). */
static size_t find_pos(struct vmm *m, uint32_t vmid, bool *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->v[mid]->vmid < vmid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->n && m->v[lo]->vmid == vmid;
    return lo;
}

static int insert(struct vmm *m, struct vm *vm, struct berr *err)
{
    bool found;
    size_t pos = find_pos(m, vm->vmid, &found);
    if (found)
        return berr_set(err, EEXIST, "VM %u already exists", vm->vmid);
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct vm **nv = realloc(m->v, cap * sizeof(*nv));
        if (!nv)
            return berr_set(err, ENOMEM, "out of memory");
        m->v = nv;
        m->cap = cap;
    }
    memmove(&m->v[pos + 1], &m->v[pos], (m->n - pos) * sizeof(*m->v));
    m->v[pos] = vm;
    m->n++;
    return 0;
}

static void unlink_vm(struct vmm *m, struct vm *vm)
{
    bool found;
    size_t pos = find_pos(m, vm->vmid, &found);
    if (!found || m->v[pos] != vm)
        return;
    memmove(&m->v[pos], &m->v[pos + 1], (m->n - pos - 1) * sizeof(*m->v));
    m->n--;
    vm->removed = true;
}

struct vm *vm_get(struct vmm *m, uint32_t vmid, bool reserved_ok, struct berr *err)
{
    pthread_mutex_lock(&m->lock);
    bool found;
    size_t pos = find_pos(m, vmid, &found);
    struct vm *vm = found ? m->v[pos] : NULL;
    if (vm && (vm->defined || reserved_ok))
        vm->refs++;
    else
        vm = NULL;
    pthread_mutex_unlock(&m->lock);
    if (!vm)
        berr_set(err, ENOENT, "no VM %u", vmid);
    return vm;
}

void vm_put(struct vm *vm)
{
    if (!vm)
        return;
    struct vmm *m = vm->m;
    pthread_mutex_lock(&m->lock);
    bool last = --vm->refs == 0;
    pthread_mutex_unlock(&m->lock);
    if (last) {
        vm_watch_join(vm);
        vm_free(vm);
    }
}

void vmm_log_path(struct vmm *m, uint32_t vmid, char *buf, size_t len)
{
    snprintf(buf, len, "%s/vm-%u.log", m->log_dir, vmid);
}

int vm_open_log(struct vm *vm)
{
    char p[PATH_MAX + 32];
    vmm_log_path(vm->m, vm->vmid, p, sizeof p);
    int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

void vm_log(struct vm *vm, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ berthd: ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    size_t l = strlen(line);
    line[l++] = '\n';
    int fd = vm_open_log(vm);
    if (fd >= 0) {
        write_full(fd, line, l);
        close(fd);
    }
}

void vm_copy_config(const struct vm_config *src, struct vm_config *dst)
{
    _cleanup_free_ char *text = NULL;
    vm_config_free(dst);
    vm_config_init(dst);
    if (vm_config_format(src, &text, NULL) == 0)
        vm_config_parse(text, strlen(text), dst, NULL);
}

/* ---- runtime files in <run>/vm/<vmid>/ ---- */

void vm_save_runtime(struct vm *vm)
{
    char p[PATH_MAX + 32];
    pthread_mutex_lock(&vm->m->lock);
    json_t *o = json_pack("{s:i,s:I,s:s,s:s,s:i}", "pid", (int)vm->pid, "started",
                          (json_int_t)vm->started, "accel",
                          vm->accel == VM_ACCEL_KVM ? "kvm" : "tcg", "accel_reason",
                          vm->accel_reason, "swtpm_pid", (int)vm->swtpm_pid);
    pthread_mutex_unlock(&vm->m->lock);
    _cleanup_free_ char *s = o ? json_dumps(o, 0) : NULL;
    json_decref(o);
    snprintf(p, sizeof p, "%s/state.json", vm->run_dir);
    if (s)
        write_file_atomic(p, s, strlen(s), 0600, NULL);
}

void vm_save_exit(struct vm *vm)
{
    char p[PATH_MAX + 32];
    pthread_mutex_lock(&vm->m->lock);
    struct vm_exit e = vm->last_exit;
    pthread_mutex_unlock(&vm->m->lock);
    json_t *o = json_pack("{s:s,s:i,s:i,s:I}", "reason", e.reason, "code", e.code, "signal",
                          e.signal, "time", (json_int_t)e.time);
    _cleanup_free_ char *s = o ? json_dumps(o, 0) : NULL;
    json_decref(o);
    snprintf(p, sizeof p, "%s/last-exit.json", vm->run_dir);
    if (s && mkdir_p(vm->run_dir, 0700, NULL) == 0)
        write_file_atomic(p, s, strlen(s), 0600, NULL);
}

static void load_exit(struct vm *vm)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/last-exit.json", vm->run_dir);
    json_t *o = json_load_file(p, 0, NULL);
    const char *reason = json_string_value(json_object_get(o, "reason"));
    if (reason) {
        vm->last_exit.valid = true;
        snprintf(vm->last_exit.reason, sizeof vm->last_exit.reason, "%s", reason);
        vm->last_exit.code = (int)json_integer_value(json_object_get(o, "code"));
        vm->last_exit.signal = (int)json_integer_value(json_object_get(o, "signal"));
        vm->last_exit.time = json_integer_value(json_object_get(o, "time"));
    }
    json_decref(o);
}

/* ---- loading ---- */

static void load_one(struct vmm *m, uint32_t vmid)
{
    struct berr err = {0};
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%u.conf", m->conf_dir, vmid);
    struct vm *vm = vm_new(m, vmid, &err);
    if (!vm) {
        blog_err("VM %u: %s", vmid, err.msg);
        return;
    }
    if (vm_config_load(path, &vm->cfg, &err) < 0) {
        blog_err("VM %u not loaded: %s", vmid, err.msg);
        vm_free(vm);
        return;
    }
    vm->defined = true;
    load_exit(vm);
    pthread_mutex_lock(&m->lock);
    int r = insert(m, vm, &err);
    pthread_mutex_unlock(&m->lock);
    if (r < 0) {
        blog_err("VM %u: %s", vmid, err.msg);
        vm_free(vm);
        return;
    }
    vm_reattach(vm);
}

void vmm_load(struct vmm *m)
{
    DIR *d = opendir(m->conf_dir);
    if (!d) {
        blog_err("cannot read %s: %s", m->conf_dir, strerror(errno));
        return;
    }
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".conf") != 0)
            continue;
        char id[32];
        snprintf(id, sizeof id, "%.*s", (int)(l - 5), de->d_name);
        uint32_t vmid;
        if (vm_parse_vmid(id, &vmid, NULL) < 0)
            continue;
        load_one(m, vmid);
        n++;
    }
    closedir(d);
    if (n)
        blog_info("%zu VM config%s loaded", n, n == 1 ? "" : "s");
}

/* The kernel's boot id, or "" if unknown. */
static void read_boot_id(char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    if (fgets(buf, (int)len, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

unsigned vmm_autostart(struct vmm *m)
{
    char path[PATH_MAX + 32], boot[64], seen[64] = "";
    snprintf(path, sizeof path, "%s/onboot.bootid", m->run_dir);
    read_boot_id(boot, sizeof boot);
    FILE *f = fopen(path, "re");
    if (f) {
        if (fgets(seen, sizeof seen, f))
            seen[strcspn(seen, "\n")] = '\0';
        fclose(f);
    }
    if (boot[0] && strcmp(seen, boot) == 0)
        return 0; /* this boot's autostart already happened */
    if (boot[0]) {
        char line[80];
        int n = snprintf(line, sizeof line, "%s\n", boot);
        write_file_atomic(path, line, (size_t)n, 0644, NULL);
    }
    /* collect first: vmm_start takes the locks itself */
    uint32_t *ids = NULL;
    size_t nids = 0;
    pthread_mutex_lock(&m->lock);
    ids = calloc(m->n ? m->n : 1, sizeof *ids);
    for (size_t i = 0; ids && i < m->n; i++) {
        struct vm *vm = m->v[i];
        if (vm->defined && vm->cfg.onboot == 1 && vm->pid == 0)
            ids[nids++] = vm->vmid;
    }
    pthread_mutex_unlock(&m->lock);
    unsigned started = 0;
    for (size_t i = 0; i < nids; i++) {
        struct berr e = {0};
        if (vmm_start(m, ids[i], &e) < 0)
            blog_err("VM %u (onboot): %s", ids[i], e.msg);
        else
            started++;
    }
    free(ids);
    if (nids)
        blog_info("onboot: started %u of %zu VM%s", started, nids, nids == 1 ? "" : "s");
    return started;
}

void vmm_quiesce(struct vmm *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->quitting = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

void vmm_free(struct vmm *m)
{
    if (!m)
        return;
    vmm_quiesce(m);
    for (size_t i = 0; i < m->n; i++) {
        vm_watch_join(m->v[i]);
        vm_put(m->v[i]);
    }
    free(m->v);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ---- status ---- */

static void fill_info(struct vmm *m, struct vm *vm, struct vm_info *o)
{
    memset(o, 0, sizeof(*o));
    o->vmid = vm->vmid;
    snprintf(o->name, sizeof o->name, "%s", vm->cfg.name ? vm->cfg.name : "");
    o->status = vm->status;
    o->pid = vm->pid;
    o->memory = vm_config_memory(&vm->cfg);
    o->cores = vm_config_cores(&vm->cfg);
    o->last_exit = vm->last_exit;
    if (vm->pid) {
        o->accel = vm->accel == VM_ACCEL_KVM ? "kvm" : "tcg";
        snprintf(o->accel_reason, sizeof o->accel_reason, "%s", vm->accel_reason);
        o->uptime = vm->started ? vm_now() - vm->started : 0;
        if (o->uptime < 0)
            o->uptime = 0;
    } else {
        enum vm_accel a;
        struct berr e = {0};
        if (vm_accel_resolve(vm->cfg.accel, &m->probe, &a, o->accel_reason,
                             sizeof o->accel_reason, &e) == 0)
            o->accel = a == VM_ACCEL_KVM ? "kvm" : "tcg";
        else
            snprintf(o->accel_reason, sizeof o->accel_reason, "%s", e.msg);
    }
}

int vmm_list(struct vmm *m, struct vm_info **out, size_t *n)
{
    pthread_mutex_lock(&m->lock);
    struct vm_info *v = malloc((m->n + 1) * sizeof(*v));
    size_t k = 0;
    if (v)
        for (size_t i = 0; i < m->n; i++)
            if (m->v[i]->defined)
                fill_info(m, m->v[i], &v[k++]);
    pthread_mutex_unlock(&m->lock);
    *out = v;
    *n = k;
    return v ? 0 : -ENOMEM;
}

int vmm_info(struct vmm *m, uint32_t vmid, struct vm_info *out, struct berr *err)
{
    struct vm *vm = vm_get(m, vmid, false, err);
    if (!vm)
        return -ENOENT;
    pthread_mutex_lock(&m->lock);
    fill_info(m, vm, out);
    pthread_mutex_unlock(&m->lock);
    vm_put(vm);
    return 0;
}

char *vmm_log_tail(struct vmm *m, uint32_t vmid)
{
    char p[PATH_MAX + 32];
    vmm_log_path(m, vmid, p, sizeof p);
    _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    size_t want = 2048;
    off_t off = st.st_size > (off_t)want ? st.st_size - (off_t)want : 0;
    size_t len = (size_t)(st.st_size - off);
    char *buf = malloc(len + 1);
    if (!buf || pread_full(fd, buf, len, (uint64_t)off) < 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    if (off > 0) { /* start at a whole line */
        char *nl = strchr(buf, '\n');
        if (nl)
            memmove(buf, nl + 1, strlen(nl + 1) + 1);
    }
    return buf;
}

void vmm_console_paths(struct vmm *m, uint32_t vmid, char *serial, char *vnc, size_t len)
{
    snprintf(serial, len, "%s/%u/serial.sock", m->run_dir, vmid);
    snprintf(vnc, len, "%s/%u/vnc.sock", m->run_dir, vmid);
}

/* ---- configs ---- */

static void conf_path(struct vmm *m, uint32_t vmid, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%u.conf", m->conf_dir, vmid);
}

int vmm_config_get(struct vmm *m, uint32_t vmid, struct vm_config *copy, char **text,
                   struct berr *err)
{
    struct vm *vm = vm_get(m, vmid, false, err);
    if (!vm)
        return -ENOENT;
    char *t = NULL;
    pthread_mutex_lock(&m->lock);
    int r = vm_config_format(&vm->cfg, &t, err);
    pthread_mutex_unlock(&m->lock);
    vm_put(vm);
    if (r < 0)
        return r;
    if (copy && (r = vm_config_parse(t, strlen(t), copy, err)) < 0) {
        free(t);
        return r;
    }
    if (text)
        *text = t;
    else
        free(t);
    return 0;
}

int vmm_reserve(struct vmm *m, uint32_t vmid, struct berr *err)
{
    if (vmid < VM_VMID_MIN || vmid > VM_VMID_MAX)
        return berr_set(err, EINVAL, "invalid VMID %u (a number from %u to %u)", vmid,
                        VM_VMID_MIN, VM_VMID_MAX);
    struct vm *vm = vm_new(m, vmid, err);
    if (!vm)
        return -err->code;
    char p[PATH_MAX + 32];
    struct stat st;
    conf_path(m, vmid, p, sizeof p);
    pthread_mutex_lock(&m->lock);
    int r = stat(p, &st) == 0 ? berr_set(err, EEXIST, "VM %u already exists (%s)", vmid, p)
                              : insert(m, vm, err);
    pthread_mutex_unlock(&m->lock);
    if (r < 0)
        vm_free(vm);
    return r;
}

void vmm_unreserve(struct vmm *m, uint32_t vmid)
{
    struct vm *vm = vm_get(m, vmid, true, NULL);
    if (!vm)
        return;
    pthread_mutex_lock(&m->lock);
    bool drop = !vm->defined && !vm->removed;
    if (drop)
        unlink_vm(m, vm);
    pthread_mutex_unlock(&m->lock);
    if (drop)
        vm_put(vm); /* the table's reference */
    vm_put(vm);
}

int vmm_define(struct vmm *m, uint32_t vmid, const struct vm_config *c, struct berr *err)
{
    struct vm *vm = vm_get(m, vmid, true, err);
    if (!vm)
        return -ENOENT;
    char p[PATH_MAX + 32];
    conf_path(m, vmid, p, sizeof p);
    int r = vm->defined ? berr_set(err, EEXIST, "VM %u already exists", vmid)
                        : vm_config_save(p, c, err);
    if (r == 0) {
        struct vm_config copy;
        vm_config_init(&copy);
        vm_copy_config(c, &copy);
        pthread_mutex_lock(&m->lock);
        vm_config_free(&vm->cfg);
        vm->cfg = copy;
        vm->defined = true;
        pthread_mutex_unlock(&m->lock);
        vm_log(vm, "VM %u created", vmid);
    }
    vm_put(vm);
    return r;
}

int vmm_config_edit(struct vmm *m, uint32_t vmid, vmm_edit_fn fn, void *opaque, bool *running,
                    struct berr *err)
{
    struct vm *vm = vm_get(m, vmid, false, err);
    if (!vm)
        return -ENOENT;
    pthread_mutex_lock(&vm->op_lock);
    struct vm_config c;
    vm_config_init(&c);
    pthread_mutex_lock(&m->lock);
    vm_copy_config(&vm->cfg, &c);
    pthread_mutex_unlock(&m->lock);
    char p[PATH_MAX + 32];
    conf_path(m, vmid, p, sizeof p);
    int r = fn(&c, opaque, err);
    if (r == 0 && (r = vm_config_validate(&c, err)) == 0 && (r = vm_config_save(p, &c, err)) == 0) {
        pthread_mutex_lock(&m->lock);
        vm_config_free(&vm->cfg);
        vm->cfg = c;
        vm_config_init(&c);
        if (running)
            *running = vm->pid != 0;
        pthread_mutex_unlock(&m->lock);
    }
    vm_config_free(&c);
    pthread_mutex_unlock(&vm->op_lock);
    vm_put(vm);
    return r;
}

int vmm_undefine(struct vmm *m, uint32_t vmid, struct vm_config *old, struct berr *err)
{
    struct vm *vm = vm_get(m, vmid, false, err);
    if (!vm)
        return -ENOENT;
    pthread_mutex_lock(&vm->op_lock);
    char p[PATH_MAX + 32];
    conf_path(m, vmid, p, sizeof p);
    int r = 0;
    pthread_mutex_lock(&m->lock);
    if (vm->pid != 0 || (vm->status != VM_ST_STOPPED && vm->status != VM_ST_CRASHED))
        r = berr_set(err, EBUSY, "VM %u is %s; stop it first", vmid,
                     vm->pid && vm->status == VM_ST_CRASHED ? "running (crashed)"
                                                            : vm_status_name(vm->status));
    pthread_mutex_unlock(&m->lock);
    if (r == 0 && unlink(p) < 0 && errno != ENOENT)
        r = berr_errno(err, errno, "cannot remove %s", p);
    if (r == 0) {
        pthread_mutex_lock(&m->lock);
        unlink_vm(m, vm);
        if (old) {
            *old = vm->cfg;
            vm_config_init(&vm->cfg);
        }
        pthread_mutex_unlock(&m->lock);
        vm_log(vm, "VM %u destroyed", vmid);
        char f[PATH_MAX + 32];
        static const char *const files[] = {"last-exit.json", "state.json", "running.conf",
                                            "tpm-state.bin", NULL};
        for (int i = 0; files[i]; i++) {
            snprintf(f, sizeof f, "%s/%s", vm->run_dir, files[i]);
            unlink(f);
        }
        rmdir(vm->run_dir);
        vm_put(vm); /* the table's reference */
    }
    pthread_mutex_unlock(&vm->op_lock);
    vm_put(vm);
    return r;
}

/* ---- users of volumes and bridges ---- */

struct vol_match {
    const char *pool, *vol;
};

static int match_vol(const char *key, const struct vm_volref *v, void *opaque)
{
    const struct vol_match *w = opaque;
    return strcmp(v->pool, w->pool) == 0 && strcmp(v->vol, w->vol) == 0;
}

uint32_t vmm_volume_user(struct vmm *m, const char *pool, const char *vol)
{
    struct vol_match w = {pool, vol};
    uint32_t who = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n && !who; i++) {
        struct vm *vm = m->v[i];
        if (!vm->pid && vm->status != VM_ST_STARTING)
            continue;
        const struct vm_config *c = vm->have_run_cfg ? &vm->run_cfg : &vm->cfg;
        if (vm_config_foreach_volume(c, match_vol, &w) > 0)
            who = vm->vmid;
    }
    pthread_mutex_unlock(&m->lock);
    return who;
}

uint32_t vmm_bridge_user(struct vmm *m, const char *bridge)
{
    uint32_t who = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n && !who; i++) {
        struct vm *vm = m->v[i];
        if (!vm->pid && vm->status != VM_ST_STARTING)
            continue;
        const struct vm_config *c = vm->have_run_cfg ? &vm->run_cfg : &vm->cfg;
        for (size_t j = 0; j < c->n_nets; j++)
            if (strcmp(c->nets[j].bridge, bridge) == 0)
                who = vm->vmid;
    }
    pthread_mutex_unlock(&m->lock);
    return who;
}
