/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Lifecycle operations of the supervisor (state machine in supervisor.c):
 * start (taps, swtpm, QEMU with -S in its own session, QMP handshake,
 * `cont`), stop (`quit`, then SIGTERM/SIGKILL), shutdown (guest agent or
 * ACPI, forced stop after the timeout), reset, suspend, resume, and the
 * guest agent commands. */
#include "vm/super_int.h"
#include "vm/net.h"
#include "vm/proc.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QMP_UP_MS 30000        /* QEMU's own start, generous for slow hosts */
#define QMP_CMD_MS 5000
#define STOP_WAIT_MS 10000
#define KILL_WAIT_MS 5000
#define AGENT_PROBE_MS 1000

static int64_t mono_ms(void)
{
    return (int64_t)(now_ns() / 1000000u);
}

static struct vm *get_locked(struct vmm *m, uint32_t vmid, struct berr *err)
{
    struct vm *vm = vm_get(m, vmid, false, err);
    if (vm)
        pthread_mutex_lock(&vm->op_lock);
    return vm;
}

static void put_locked(struct vm *vm)
{
    pthread_mutex_unlock(&vm->op_lock);
    vm_put(vm);
}

static int not_running(struct vm *vm, struct berr *err)
{
    return berr_set(err, EBUSY, "VM %u is %s", vm->vmid,
                    vm->status == VM_ST_STOPPED ? "not running" : vm_status_name(vm->status));
}

/* ---- start ---- */

struct vol_check {
    struct vmm *m;
    struct berr *err;
};

static int check_vol(const char *key, const struct vm_volref *v, void *opaque)
{
    struct vol_check *c = opaque;
    uint64_t size;
    if (!c->m->store.vol_size)
        return 0;
    int r = c->m->store.vol_size(c->m->store.opaque, v->pool, v->vol, &size, c->err);
    return r < 0 ? berr_wrap(c->err, "%s", key) : 0;
}

/* QEMU's own words from the log written since `off` (our lines skipped). */
static void qemu_error(struct vm *vm, off_t off, char *out, size_t len)
{
    out[0] = '\0';
    char p[PATH_MAX + 32];
    vmm_log_path(vm->m, vm->vmid, p, sizeof p);
    _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= off)
        return;
    size_t n = (size_t)MIN(st.st_size - off, (off_t)16384);
    _cleanup_free_ char *buf = malloc(n + 1);
    if (!buf || pread_full(fd, buf, n, (uint64_t)(st.st_size - (off_t)n)) < 0)
        return;
    buf[n] = '\0';
    size_t used = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, " berthd: ") || !*line)
            continue;
        int w = snprintf(out + used, len - used, "%s%s", used ? "; " : "", line);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

static int wait_qmp(struct vm *vm, pid_t pid, struct qmp **q, int *ws, struct berr *err)
{
    int64_t deadline = mono_ms() + QMP_UP_MS;
    unsigned step = 1;
    for (;;) {
        struct berr e = {0};
        int r = qmp_open(vm->paths.qmp, QMP_CMD_MS, q, &e);
        if (r == 0)
            return 0;
        if (vm_proc_wait(pid, true, 0, ws) == 1)
            return -ECHILD;
        if (r != -ENOENT && r != -ECONNREFUSED) {
            *err = e;
            return r;
        }
        if (mono_ms() > deadline)
            return berr_set(err, ETIMEDOUT, "QEMU did not open its QMP socket within %d s",
                            QMP_UP_MS / 1000);
        vm_sleep_ms(step);
        if (step < 4)
            step *= 2;
    }
}

static int add_arg(char ***argv, const char *a)
{
    size_t n = 0;
    while ((*argv)[n])
        n++;
    char **nv = realloc(*argv, (n + 2) * sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    *argv = nv;
    if (!(nv[n] = strdup(a)))
        return -ENOMEM;
    nv[n + 1] = NULL;
    return 0;
}

static void write_running_conf(struct vm *vm, const struct vm_config *rc)
{
    _cleanup_free_ char *text = NULL;
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/running.conf", vm->run_dir);
    if (vm_config_format(rc, &text, NULL) == 0)
        write_file_atomic(p, text, strlen(text), 0600, NULL);
}

static int do_start(struct vm *vm, struct berr *err)
{
    struct vmm *m = vm->m;
    pthread_mutex_lock(&m->lock);
    bool busy = vm->pid || (vm->status != VM_ST_STOPPED && vm->status != VM_ST_CRASHED);
    enum vm_status st = vm->status;
    pthread_mutex_unlock(&m->lock);
    if (busy)
        return berr_set(err, EBUSY, "VM %u is already %s", vm->vmid,
                        st == VM_ST_CRASHED ? "crashed but QEMU still runs: stop it first"
                                            : vm_status_name(st));
    vm_watch_join(vm);

    struct vm_config rc;
    vm_config_init(&rc);
    vm_copy_config(&vm->cfg, &rc); /* op_lock held: cfg cannot change */
    struct vm_accel_probe probe;
    vm_accel_probe(&probe);
    enum vm_accel acc;
    char why[320];
    int r = vm_accel_resolve(rc.accel, &probe, &acc, why, sizeof why, err);
    struct vol_check vc = {m, err};
    if (r == 0)
        r = vm_config_foreach_volume(&rc, check_vol, &vc);
    for (size_t i = 0; r == 0 && i < rc.n_nets; i++)
        if (!vm_bridge_exists(rc.nets[i].bridge))
            r = berr_set(err, ENOENT, "net%d: bridge %s does not exist (create it with "
                         "'berth net create %s')", rc.nets[i].index, rc.nets[i].bridge,
                         rc.nets[i].bridge);
    if (r == 0)
        r = mkdir_p(vm->run_dir, 0700, err);
    if (r < 0) {
        vm_config_free(&rc);
        return r < 0 ? r : -EINVAL;
    }

    pthread_mutex_lock(&m->lock);
    vm->status = VM_ST_STARTING;
    vm->want_stop = vm->panicked = false;
    vm->shutdown_cause[0] = '\0';
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);

    int64_t t0 = mono_ms();
    pid_t pid = 0, spid = 0;
    char **argv = NULL;
    struct qmp *q = NULL;
    _cleanup_close_ int logfd = vm_open_log(vm);
    off_t off = logfd >= 0 ? lseek(logfd, 0, SEEK_END) : 0;
    if (logfd < 0) {
        r = berr_errno(err, -logfd, "cannot open the VM's log");
        goto fail;
    }
    static const char *const stale[] = {"qemu.pid", "qmp.sock", "qga.sock", "vnc.sock",
                                        "swtpm.sock", "serial.sock", "serial0.sock", NULL};
    for (int i = 0; stale[i]; i++) {
        char f[PATH_MAX + 32];
        snprintf(f, sizeof f, "%s/%s", vm->run_dir, stale[i]);
        unlink(f);
    }
    vm_log(vm, "starting VM %u (%s)", vm->vmid, why);
    if (acc == VM_ACCEL_TCG && rc.accel == VM_ACCEL_AUTO)
        blog_warn("VM %u: %s", vm->vmid, why);

    for (size_t i = 0; i < rc.n_nets; i++) {
        char tap[VM_IFNAME_MAX];
        vm_tap_name(vm->vmid, rc.nets[i].index, tap, sizeof tap);
        if ((r = vm_tap_create(tap, rc.nets[i].bridge, rc.nets[i].mtu, err)) < 0) {
            berr_wrap(err, "net%d", rc.nets[i].index);
            goto fail;
        }
    }
    if (rc.tpmstate.present &&
        (r = vm_swtpm_start(&m->store, &rc.tpmstate, vm->run_dir, vm->paths.swtpm, logfd, &spid,
                            err)) < 0)
        goto fail;

    struct vm_argv_ctx ctx = {
        .vmid = vm->vmid, .qemu_binary = m->qemu_binary, .run_dir = vm->run_dir,
        .nbd_socket = m->nbd_socket, .ovmf_dir = m->ovmf_dir[0] ? m->ovmf_dir : NULL,
        .accel = acc,
    };
    if ((r = vm_build_argv(&rc, &ctx, &argv, err)) < 0)
        goto fail;
    /* -S: QMP is connected before the guest runs, so no event is missed */
    if ((r = add_arg(&argv, "-S")) < 0) {
        berr_set(err, ENOMEM, "out of memory");
        goto fail;
    }
    if ((r = vm_proc_spawn(argv, logfd, &pid, err)) < 0)
        goto fail;
    int pidfd = vm_proc_pidfd(pid);
    pthread_mutex_lock(&m->lock);
    vm->pid = pid;
    vm->child = true;
    vm->pidfd = pidfd >= 0 ? pidfd : -1;
    vm->swtpm_pid = spid;
    vm->swtpm_child = true;
    vm->started = vm_now();
    vm->accel = acc;
    snprintf(vm->accel_reason, sizeof vm->accel_reason, "%s", why);
    pthread_mutex_unlock(&m->lock);

    int ws = 0;
    r = wait_qmp(vm, pid, &q, &ws, err);
    if (r == 0)
        r = qmp_execute(q, "cont", NULL, QMP_CMD_MS, NULL, err);
    if (r < 0) {
        if (r != -ECHILD) {
            kill(pid, SIGKILL);
            vm_proc_wait(pid, true, KILL_WAIT_MS, &ws);
        }
        char qerr[400];
        vm_sleep_ms(5); /* let QEMU's last words reach the log */
        qemu_error(vm, off, qerr, sizeof qerr);
        if (qerr[0])
            r = berr_set(err, EIO, "QEMU failed to start: %s", qerr);
        else if (r == -ECHILD)
            r = berr_set(err, EIO, "QEMU failed to start (exit status %d); see %s", ws,
                         "the VM's log");
        pid = 0;
        qmp_close(q);
        q = NULL;
        goto fail;
    }

    pthread_mutex_lock(&m->lock);
    vm->qmp = q;
    vm->run_cfg = rc;
    vm->have_run_cfg = true;
    vm_config_init(&rc);
    if (vm->status == VM_ST_STARTING)
        vm->status = VM_ST_RUNNING;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_mutex_lock(&vm->qmp_lock);
    vm_drain_events(vm);
    pthread_mutex_unlock(&vm->qmp_lock);

    char link[PATH_MAX + 32];
    snprintf(link, sizeof link, "%s/serial.sock", vm->run_dir);
    if (vm->run_cfg.serial_socket[0] && symlink("serial0.sock", link) < 0 && errno != EEXIST)
        blog_warn("VM %u: cannot link %s: %s", vm->vmid, link, strerror(errno));
    write_running_conf(vm, &vm->run_cfg);
    vm_save_runtime(vm);
    if ((r = vm_watch_start(vm, err)) < 0) /* no watcher: stop rather than run blind */
        blog_err("VM %u: %s", vm->vmid, err->msg);
    vm_argv_free(argv);
    vm_log(vm, "VM %u running: QEMU pid %d, started in %lld ms", vm->vmid, (int)pid,
           (long long)(mono_ms() - t0));
    blog_info("VM %u started (QEMU pid %d, %s)", vm->vmid, (int)pid,
              acc == VM_ACCEL_KVM ? "kvm" : "tcg");
    return r;

fail:
    vm_argv_free(argv);
    vm_cleanup_runtime(vm, &rc, true, spid);
    vm_config_free(&rc);
    vm_log(vm, "start failed: %s", err->msg);
    pthread_mutex_lock(&m->lock);
    vm->pid = 0;
    if (vm->pidfd >= 0)
        close(vm->pidfd);
    vm->pidfd = -1;
    vm->swtpm_pid = 0;
    vm->started = 0;
    vm->last_exit = (struct vm_exit){.valid = true, .code = -1, .time = vm_now()};
    snprintf(vm->last_exit.reason, sizeof vm->last_exit.reason, "%s%s",
             strncmp(err->msg, "QEMU failed", 11) == 0 ? "" : "failed to start: ", err->msg);
    vm->status = VM_ST_STOPPED;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    vm_save_exit(vm);
    return r;
}

int vmm_start(struct vmm *m, uint32_t vmid, struct berr *err)
{
    struct vm *vm = get_locked(m, vmid, err);
    if (!vm)
        return -ENOENT;
    int r = do_start(vm, err);
    put_locked(vm);
    return r;
}

/* ---- stop / shutdown ---- */

/* Ask QEMU to quit and wait for the watcher to finish with it (op_lock held). */
static int do_stop(struct vm *vm, const char *reason, struct berr *err)
{
    struct vmm *m = vm->m;
    pthread_mutex_lock(&m->lock);
    pid_t pid = vm->pid;
    if (pid) {
        vm->want_stop = true;
        snprintf(vm->want_reason, sizeof vm->want_reason, "%s", reason);
    }
    pthread_mutex_unlock(&m->lock);
    if (!pid)
        return 0;
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vm->qmp ? qmp_execute(vm->qmp, "quit", NULL, 2000, NULL, NULL) : -ENOTCONN;
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0 && r != -EPIPE)
        kill(pid, SIGTERM);
    pthread_mutex_lock(&m->lock);
    r = vm_wait_gone(vm, STOP_WAIT_MS);
    if (r == -ETIMEDOUT && vm->pid == pid) {
        pthread_mutex_unlock(&m->lock);
        vm_log(vm, "QEMU did not exit within %d s: SIGKILL", STOP_WAIT_MS / 1000);
        kill(pid, SIGKILL);
        pthread_mutex_lock(&m->lock);
        r = vm_wait_gone(vm, KILL_WAIT_MS);
    }
    pthread_mutex_unlock(&m->lock);
    if (r == -ECANCELED)
        return berr_set(err, ECANCELED, "berthd is shutting down");
    if (r < 0)
        return berr_set(err, ETIMEDOUT, "VM %u: QEMU pid %d did not exit", vm->vmid, (int)pid);
    return 0;
}

int vmm_stop(struct vmm *m, uint32_t vmid, struct berr *err)
{
    struct vm *vm = get_locked(m, vmid, err);
    if (!vm)
        return -ENOENT;
    int r = do_stop(vm, "stopped", err);
    put_locked(vm);
    return r;
}

int vmm_shutdown(struct vmm *m, uint32_t vmid, int timeout_s, bool *forced,
                 const char **method, struct berr *err)
{
    *forced = false;
    *method = "acpi";
    struct vm *vm = get_locked(m, vmid, err);
    if (!vm)
        return -ENOENT;
    int r = 0;
    pthread_mutex_lock(&m->lock);
    if (!vm->pid || (vm->status != VM_ST_RUNNING && vm->status != VM_ST_PAUSED))
        r = not_running(vm, err);
    else
        vm->status = VM_ST_SHUTTING_DOWN;
    bool agent = vm_config_agent_enabled(vm->have_run_cfg ? &vm->run_cfg : &vm->cfg);
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    if (r < 0) {
        put_locked(vm);
        return r;
    }
    if (agent) {
        pthread_mutex_lock(&vm->agent_lock);
        struct qga *g = NULL;
        struct berr e = {0};
        if (qga_open(vm->paths.qga, AGENT_PROBE_MS, &g, &e) == 0) {
            /* Say why before asking: the guest may power off (and the watcher
             * record the exit) before guest-shutdown returns. */
            pthread_mutex_lock(&m->lock);
            vm->want_stop = true;
            snprintf(vm->want_reason, sizeof vm->want_reason, "shutdown (agent)");
            pthread_mutex_unlock(&m->lock);
            /* success has no reply: a timeout or EOF means it is going down */
            int ar = qga_execute(g, "guest-shutdown", NULL, AGENT_PROBE_MS, NULL, &e);
            if (ar == 0 || ar == -ETIMEDOUT || ar == -EPIPE)
                *method = "agent";
            else
                vm_log(vm, "guest agent refused to shut down: %s; using ACPI", e.msg);
            qga_close(g);
        } else {
            vm_log(vm, "guest agent not answering (%s); using ACPI", e.msg);
        }
        pthread_mutex_unlock(&vm->agent_lock);
    }
    pthread_mutex_lock(&m->lock);
    vm->want_stop = true;
    snprintf(vm->want_reason, sizeof vm->want_reason, "shutdown (%s)", *method);
    pthread_mutex_unlock(&m->lock);
    vm_log(vm, "shutdown requested (%s, timeout %d s)", *method, timeout_s);
    if (strcmp(*method, "acpi") == 0) {
        pthread_mutex_lock(&vm->qmp_lock);
        if (vm->qmp) {
            struct berr e = {0};
            if (qmp_execute(vm->qmp, "system_powerdown", NULL, QMP_CMD_MS, NULL, &e) < 0)
                vm_log(vm, "system_powerdown failed: %s", e.msg);
            vm_drain_events(vm);
        }
        pthread_mutex_unlock(&vm->qmp_lock);
    }
    pthread_mutex_lock(&m->lock);
    r = vm_wait_gone(vm, timeout_s * 1000);
    pthread_mutex_unlock(&m->lock);
    if (r == -ETIMEDOUT) {
        char why[160];
        snprintf(why, sizeof why, "shutdown timed out after %d s; stopped (forced)", timeout_s);
        vm_log(vm, "%s", why);
        *forced = true;
        r = do_stop(vm, why, err);
    } else if (r == -ECANCELED) {
        r = berr_set(err, ECANCELED, "berthd is shutting down");
    }
    put_locked(vm);
    return r;
}

/* ---- reset, suspend, resume ---- */

static int simple_cmd(struct vmm *m, uint32_t vmid, const char *cmd, bool need_running,
                      bool need_paused, enum vm_status after, struct berr *err)
{
    struct vm *vm = get_locked(m, vmid, err);
    if (!vm)
        return -ENOENT;
    int r = 0;
    pthread_mutex_lock(&m->lock);
    bool ok = vm->pid && ((need_running && vm->status == VM_ST_RUNNING) ||
                          (need_paused && vm->status == VM_ST_PAUSED));
    if (!ok)
        r = not_running(vm, err);
    pthread_mutex_unlock(&m->lock);
    if (r == 0) {
        pthread_mutex_lock(&vm->qmp_lock);
        r = vm->qmp ? qmp_execute(vm->qmp, cmd, NULL, QMP_CMD_MS, NULL, err)
                    : berr_set(err, EIO, "VM %u: no QMP connection to QEMU", vmid);
        if (vm->qmp)
            vm_drain_events(vm);
        pthread_mutex_unlock(&vm->qmp_lock);
    }
    if (r == 0) {
        pthread_mutex_lock(&m->lock);
        if (vm->pid && vm->status != VM_ST_CRASHED)
            vm->status = after;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        vm_log(vm, "%s", cmd);
    }
    put_locked(vm);
    return r;
}

int vmm_reset(struct vmm *m, uint32_t vmid, struct berr *err)
{
    /* a reset keeps the run state: a paused VM stays paused */
    struct vm_info i;
    int r = vmm_info(m, vmid, &i, err);
    if (r < 0)
        return r;
    return simple_cmd(m, vmid, "system_reset", true, true,
                      i.status == VM_ST_PAUSED ? VM_ST_PAUSED : VM_ST_RUNNING, err);
}

int vmm_suspend(struct vmm *m, uint32_t vmid, struct berr *err)
{
    return simple_cmd(m, vmid, "stop", true, false, VM_ST_PAUSED, err);
}

int vmm_resume(struct vmm *m, uint32_t vmid, struct berr *err)
{
    return simple_cmd(m, vmid, "cont", false, true, VM_ST_RUNNING, err);
}

void vmm_qmp_status(struct vmm *m, uint32_t vmid, char *buf, size_t len)
{
    buf[0] = '\0';
    struct vm *vm = vm_get(m, vmid, false, NULL);
    if (!vm)
        return;
    pthread_mutex_lock(&vm->qmp_lock);
    json_t *ret = NULL;
    if (vm->qmp && qmp_execute(vm->qmp, "query-status", NULL, 2000, &ret, NULL) == 0)
        snprintf(buf, len, "%s", json_string_value(json_object_get(ret, "status")) ?: "");
    json_decref(ret);
    if (vm->qmp)
        vm_drain_events(vm);
    pthread_mutex_unlock(&vm->qmp_lock);
    vm_put(vm);
}
