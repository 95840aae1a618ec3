/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The watcher of a running VM (one thread per QEMU process): reads QMP
 * events (STOP/RESUME -> paused/running, SHUTDOWN -> remember why,
 * RESET, GUEST_PANICKED -> crashed), notices the process ending (pidfd, or
 * kill(pid, 0) polling for a QEMU reattached after a berthd restart, which
 * is not our child), reaps it, records the exit reason, and cleans up: swtpm
 * stopped and its state saved to the pool, taps removed, runtime files
 * removed.  Also the reattach at berthd start.  Locking: supervisor.c. */
#include "vm/super_int.h"
#include "vm/net.h"
#include "vm/proc.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REATTACH_QMP_MS 3000
#define POLL_NONCHILD_MS 200

static void set_status(struct vm *vm, enum vm_status st)
{
    vm->status = st;
    pthread_cond_broadcast(&vm->m->cond);
}

void vm_drain_events(struct vm *vm)
{
    struct qmp_event ev;
    struct berr err = {0};
    struct vmm *m = vm->m;
    while (vm->qmp && qmp_next_event(vm->qmp, 0, &ev, &err) == 1) {
        const char *reason = json_string_value(json_object_get(ev.data, "reason"));
        bool log_it = true;
        pthread_mutex_lock(&m->lock);
        if (strcmp(ev.name, "STOP") == 0) {
            if (vm->status == VM_ST_RUNNING)
                set_status(vm, VM_ST_PAUSED);
        } else if (strcmp(ev.name, "RESUME") == 0) {
            if (vm->status == VM_ST_PAUSED)
                set_status(vm, VM_ST_RUNNING);
        } else if (strcmp(ev.name, "SHUTDOWN") == 0) {
            snprintf(vm->shutdown_cause, sizeof vm->shutdown_cause, "%s",
                     reason ? reason : "unknown");
        } else if (strcmp(ev.name, "GUEST_PANICKED") == 0) {
            vm->panicked = true;
            set_status(vm, VM_ST_CRASHED);
        } else if (strcmp(ev.name, "RESET") != 0 && strcmp(ev.name, "POWERDOWN") != 0) {
            log_it = false;
        }
        pthread_mutex_unlock(&m->lock);
        if (log_it)
            vm_log(vm, "QMP event %s%s%s", ev.name, reason ? ": " : "", reason ? reason : "");
        qmp_event_clear(&ev);
    }
}

void vm_cleanup_runtime(struct vm *vm, const struct vm_config *rc, bool swtpm_child,
                        pid_t swtpm_pid)
{
    struct berr err = {0};
    char tap[VM_IFNAME_MAX], f[PATH_MAX + 32];
    if (swtpm_pid > 0)
        vm_swtpm_stop(swtpm_pid, swtpm_child);
    if (rc->tpmstate.present && vm->m->store.vol_write) {
        if (vm_swtpm_save(&vm->m->store, &rc->tpmstate, vm->run_dir, &err) < 0) {
            blog_err("VM %u: cannot save the TPM state: %s (kept in %s/tpm-state.bin)",
                     vm->vmid, err.msg, vm->run_dir);
            vm_log(vm, "cannot save the TPM state to the pool: %s", err.msg);
        } else {
            snprintf(f, sizeof f, "%s/tpm-state.bin", vm->run_dir);
            unlink(f);
        }
    }
    for (size_t i = 0; i < rc->n_nets; i++) {
        vm_tap_name(vm->vmid, rc->nets[i].index, tap, sizeof tap);
        vm_tap_delete(tap);
    }
    static const char *const files[] = {"qemu.pid", "swtpm.pid", "state.json", "running.conf",
                                        "serial.sock", "qmp.sock", "qga.sock", "vnc.sock",
                                        "swtpm.sock", "serial0.sock", "serial1.sock",
                                        "serial2.sock", "serial3.sock", NULL};
    for (int i = 0; files[i]; i++) {
        snprintf(f, sizeof f, "%s/%s", vm->run_dir, files[i]);
        unlink(f);
    }
}

void vm_finish_exit(struct vm *vm, bool have_status, int ws)
{
    struct vmm *m = vm->m;
    pthread_mutex_lock(&vm->qmp_lock);
    if (vm->qmp) {
        vm_drain_events(vm);
        qmp_close(vm->qmp);
        vm->qmp = NULL;
    }
    pthread_mutex_unlock(&vm->qmp_lock);

    struct vm_exit e = {.valid = true, .code = -1, .time = vm_now()};
    bool crashed = false;
    pthread_mutex_lock(&m->lock);
    if (have_status && WIFEXITED(ws))
        e.code = WEXITSTATUS(ws);
    if (have_status && WIFSIGNALED(ws))
        e.signal = WTERMSIG(ws);
    if (vm->panicked) {
        snprintf(e.reason, sizeof e.reason, "guest panicked");
        crashed = true;
    } else if (vm->want_stop) {
        snprintf(e.reason, sizeof e.reason, "%s", vm->want_reason);
    } else if (strcmp(vm->shutdown_cause, "guest-shutdown") == 0) {
        snprintf(e.reason, sizeof e.reason, "guest shutdown");
    } else if (e.signal) {
        snprintf(e.reason, sizeof e.reason, "killed by signal %d (%s)", e.signal,
                 strsignal(e.signal));
        crashed = true;
    } else if (e.code > 0) {
        snprintf(e.reason, sizeof e.reason, "QEMU exited with code %d", e.code);
        crashed = true;
    } else if (strcmp(vm->shutdown_cause, "host-signal") == 0) {
        snprintf(e.reason, sizeof e.reason, "QEMU was stopped by a signal from the host");
    } else if (vm->shutdown_cause[0]) {
        snprintf(e.reason, sizeof e.reason, "QEMU shut down (%s)", vm->shutdown_cause);
    } else if (e.code == 0) {
        snprintf(e.reason, sizeof e.reason, "QEMU exited");
    } else {
        snprintf(e.reason, sizeof e.reason, "QEMU exited unexpectedly (exit status unknown: "
                 "it was started before berthd's last restart)");
        crashed = true;
    }
    bool swtpm_child = vm->swtpm_child;
    pid_t swtpm_pid = vm->swtpm_pid;
    /* the cleanup reads rc without the lock: take the run config out */
    struct vm_config rc;
    vm_config_init(&rc);
    if (vm->have_run_cfg) {
        rc = vm->run_cfg;
        vm_config_init(&vm->run_cfg);
    } else {
        vm_copy_config(&vm->cfg, &rc);
    }
    vm->have_run_cfg = false;
    pthread_mutex_unlock(&m->lock);

    vm_cleanup_runtime(vm, &rc, swtpm_child, swtpm_pid);
    vm_config_free(&rc);
    vm_log(vm, "QEMU exited: %s%s", e.reason, crashed ? " (crashed)" : "");
    if (crashed)
        blog_warn("VM %u: %s", vm->vmid, e.reason);
    else
        blog_info("VM %u stopped: %s", vm->vmid, e.reason);

    pthread_mutex_lock(&m->lock);
    vm->last_exit = e;
    vm->pid = 0;
    vm->child = false;
    if (vm->pidfd >= 0)
        close(vm->pidfd);
    vm->pidfd = -1;
    vm->swtpm_pid = 0;
    vm->started = 0;
    vm->want_stop = vm->panicked = false;
    vm->shutdown_cause[0] = '\0';
    set_status(vm, crashed ? VM_ST_CRASHED : VM_ST_STOPPED);
    pthread_mutex_unlock(&m->lock);
    vm_save_exit(vm);
}

static void *watch_main(void *arg)
{
    struct vm *vm = arg;
    struct vmm *m = vm->m;
    for (;;) {
        struct pollfd p[3];
        int np = 0, ipid = -1, iqmp = -1;
        p[np++] = (struct pollfd){vm->wake_fd, POLLIN, 0};
        if (vm->pidfd >= 0) {
            ipid = np;
            p[np++] = (struct pollfd){vm->pidfd, POLLIN, 0};
        }
        if (vm->qmp) {
            iqmp = np;
            p[np++] = (struct pollfd){qmp_fd(vm->qmp), POLLIN, 0};
        }
        int n = poll(p, (nfds_t)np, vm->pidfd >= 0 ? -1 : POLL_NONCHILD_MS);
        if (n < 0 && errno != EINTR)
            vm_sleep_ms(10);
        if (n > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(vm->wake_fd, &v, sizeof v) < 0) { /* nothing: only a wake-up */
            }
        }
        pthread_mutex_lock(&m->lock);
        bool quit = m->quitting;
        pthread_mutex_unlock(&m->lock);
        if (quit)
            return NULL; /* berthd stops: QEMU keeps running */
        if (iqmp >= 0 && p[iqmp].revents) {
            pthread_mutex_lock(&vm->qmp_lock);
            struct berr err = {0};
            if (vm->qmp) {
                qmp_pump(vm->qmp, &err);
                vm_drain_events(vm);
                if (qmp_dead(vm->qmp)) {
                    qmp_close(vm->qmp);
                    vm->qmp = NULL;
                }
            }
            pthread_mutex_unlock(&vm->qmp_lock);
        }
        bool gone = false, have = false;
        int ws = 0;
        if (ipid >= 0 && (p[ipid].revents & (POLLIN | POLLHUP)))
            gone = true;
        else if (vm->pidfd < 0 && kill(vm->pid, 0) < 0 && errno == ESRCH)
            gone = true;
        if (gone) {
            if (vm->child && waitpid(vm->pid, &ws, 0) == vm->pid)
                have = true;
            vm_finish_exit(vm, have, ws);
            return NULL;
        }
    }
}

int vm_watch_start(struct vm *vm, struct berr *err)
{
    if (vm->wake_fd < 0 && (vm->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return berr_errno(err, errno, "eventfd");
    int r = pthread_create(&vm->watcher, NULL, watch_main, vm);
    if (r != 0)
        return berr_errno(err, r, "cannot start the watcher thread");
    vm->watcher_live = true;
    return 0;
}

void vm_watch_join(struct vm *vm)
{
    if (!vm->watcher_live)
        return;
    if (vm->wake_fd >= 0) {
        uint64_t one = 1;
        if (write(vm->wake_fd, &one, sizeof one) < 0) { /* counter full: already woken */
        }
    }
    pthread_join(vm->watcher, NULL);
    vm->watcher_live = false;
}

int vm_wait_gone(struct vm *vm, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (vm->pid != 0) {
        if (vm->m->quitting)
            return -ECANCELED;
        if (pthread_cond_timedwait(&vm->m->cond, &vm->m->lock, &dl) == ETIMEDOUT)
            return vm->pid ? -ETIMEDOUT : 0;
    }
    return 0;
}

/* ---- reattach after a berthd restart ---- */

static void load_runtime(struct vm *vm)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/state.json", vm->run_dir);
    json_t *o = json_load_file(p, 0, NULL);
    const char *acc = json_string_value(json_object_get(o, "accel"));
    const char *why = json_string_value(json_object_get(o, "accel_reason"));
    vm->accel = acc && strcmp(acc, "kvm") == 0 ? VM_ACCEL_KVM : VM_ACCEL_TCG;
    snprintf(vm->accel_reason, sizeof vm->accel_reason, "%s", why ? why : "");
    vm->started = json_integer_value(json_object_get(o, "started"));
    json_decref(o);
    snprintf(p, sizeof p, "%s/running.conf", vm->run_dir);
    struct vm_config rc;
    if (vm_config_load(p, &rc, NULL) == 0) {
        vm->run_cfg = rc;
        vm->have_run_cfg = true;
    }
    snprintf(p, sizeof p, "%s/swtpm.pid", vm->run_dir);
    pid_t sp = vm_proc_read_pidfile(p);
    if (sp && vm_proc_matches(sp, "swtpm", vm->run_dir)) {
        vm->swtpm_pid = sp;
        vm->swtpm_child = false;
    }
}

void vm_reattach(struct vm *vm)
{
    struct vmm *m = vm->m;
    struct berr err = {0};
    char f[PATH_MAX + 32];
    snprintf(f, sizeof f, "%s/state.json", vm->run_dir);
    bool had_state = access(f, F_OK) == 0;
    pid_t pid = vm_proc_read_pidfile(vm->paths.pid);
    bool alive = pid && vm_proc_matches(pid, "qemu", vm->paths.qmp);
    if (!alive && !had_state)
        return;
    pthread_mutex_lock(&m->lock);
    load_runtime(vm);
    pthread_mutex_unlock(&m->lock);
    if (!alive) {
        /* QEMU ended while berthd was not running: clean up after it */
        struct vm_config *rc = vm->have_run_cfg ? &vm->run_cfg : &vm->cfg;
        vm_cleanup_runtime(vm, rc, false, vm->swtpm_pid);
        pthread_mutex_lock(&m->lock);
        vm->last_exit = (struct vm_exit){.valid = true, .code = -1, .time = vm_now()};
        snprintf(vm->last_exit.reason, sizeof vm->last_exit.reason,
                 "QEMU exited while berthd was not running (exit status unknown)");
        vm_config_free(&vm->run_cfg);
        vm_config_init(&vm->run_cfg);
        vm->have_run_cfg = false;
        vm->swtpm_pid = 0;
        pthread_mutex_unlock(&m->lock);
        vm_log(vm, "%s", vm->last_exit.reason);
        blog_warn("VM %u: %s", vm->vmid, vm->last_exit.reason);
        vm_save_exit(vm);
        return;
    }
    int pidfd = vm_proc_pidfd(pid);
    struct qmp *q = NULL;
    char qs[32] = "";
    if (qmp_open(vm->paths.qmp, REATTACH_QMP_MS, &q, &err) == 0) {
        json_t *ret = NULL;
        if (qmp_execute(q, "query-status", NULL, REATTACH_QMP_MS, &ret, &err) == 0)
            snprintf(qs, sizeof qs, "%s",
                     json_string_value(json_object_get(ret, "status")) ?: "");
        json_decref(ret);
    } else {
        blog_warn("VM %u: QEMU pid %d runs but its QMP socket does not answer: %s", vm->vmid,
                  (int)pid, err.msg);
    }
    pthread_mutex_lock(&m->lock);
    vm->pid = pid;
    vm->child = false;
    vm->pidfd = pidfd >= 0 ? pidfd : -1;
    vm->qmp = q;
    vm->status = strcmp(qs, "paused") == 0 || strcmp(qs, "suspended") == 0 ? VM_ST_PAUSED
                 : strcmp(qs, "guest-panicked") == 0                        ? VM_ST_CRASHED
                                                                            : VM_ST_RUNNING;
    if (!vm->started)
        vm->started = vm_now();
    pthread_mutex_unlock(&m->lock);
    if (vm_watch_start(vm, &err) < 0)
        blog_err("VM %u: %s", vm->vmid, err.msg);
    vm_log(vm, "berthd restarted: reattached to QEMU pid %d (%s)", (int)pid,
           qs[0] ? qs : "QMP not answering");
    blog_info("VM %u: reattached to QEMU pid %d (%s)", vm->vmid, (int)pid, qs[0] ? qs : "?");
}
