/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal state of the supervisor, shared by supervisor.c (table, configs,
 * load/reattach), super_run.c (lifecycle operations) and super_watch.c (the
 * watcher thread, QMP events, exit handling).  Locking: see supervisor.c. */
#ifndef BERTH_VM_SUPER_INT_H
#define BERTH_VM_SUPER_INT_H

#include <limits.h>
#include <pthread.h>

#include "vm/accel.h"
#include "vm/qemu_argv.h"
#include "vm/qmp.h"
#include "vm/supervisor.h"

struct vm {
    struct vmm *m;
    uint32_t vmid;
    unsigned refs;              /* m->lock */
    bool defined;               /* false: reserved by a create in progress */
    bool removed;               /* unlinked from the table */
    char run_dir[PATH_MAX];
    struct vm_paths paths;
    pthread_mutex_t op_lock;    /* one lifecycle operation or config edit at a time */
    pthread_mutex_t qmp_lock;   /* the QMP connection */
    pthread_mutex_t agent_lock; /* the agent socket takes one client */

    /* config: written with op_lock and m->lock held, read with either */
    struct vm_config cfg;

    /* runtime, under m->lock */
    enum vm_status status;
    pid_t pid;                  /* QEMU, 0 when none */
    bool child;                 /* started by this berthd (waitpid works) */
    int pidfd;
    pid_t swtpm_pid;
    bool swtpm_child;
    int64_t started;
    enum vm_accel accel;
    char accel_reason[320];
    struct vm_config run_cfg;   /* the config QEMU was started with */
    bool have_run_cfg;
    bool want_stop;             /* berth asked QEMU to go: exit is not a crash */
    char want_reason[160];
    bool panicked;
    char shutdown_cause[64];    /* reason of QEMU's SHUTDOWN event */
    struct vm_exit last_exit;

    /* the watcher: started with the process, ends with it (or at quiesce) */
    struct qmp *qmp;            /* qmp_lock; closed only by the watcher/start */
    pthread_t watcher;
    bool watcher_live;          /* joinable */
    int wake_fd;                /* eventfd to wake the watcher */
};

struct vmm {
    char state_dir[PATH_MAX], run_dir[PATH_MAX], conf_dir[PATH_MAX], log_dir[PATH_MAX];
    char nbd_socket[PATH_MAX], qemu_binary[256], ovmf_dir[PATH_MAX];
    struct vm_store_ops store;
    struct vm_accel_probe probe;   /* at creation, for the status of stopped VMs */
    pthread_mutex_t lock;
    pthread_cond_t cond;           /* any status change */
    struct vm **v;                 /* sorted by vmid */
    size_t n, cap;
    bool quitting;
};

/* supervisor.c */
struct vm *vm_get(struct vmm *m, uint32_t vmid, bool reserved_ok, struct berr *err);
void vm_put(struct vm *vm);
void vm_log(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vm_open_log(struct vm *vm);
void vm_copy_config(const struct vm_config *src, struct vm_config *dst);
void vm_save_runtime(struct vm *vm);
void vm_save_exit(struct vm *vm);

/* super_watch.c */
int vm_watch_start(struct vm *vm, struct berr *err);
void vm_watch_join(struct vm *vm);
/* Handle queued QMP events (qmp_lock held). */
void vm_drain_events(struct vm *vm);
/* The process is gone: record why, clean up taps/swtpm/files, set the
 * final status.  wstatus valid if have_status. */
void vm_finish_exit(struct vm *vm, bool have_status, int wstatus);
/* Reattach to a QEMU left by an earlier berthd, or clean up after one. */
void vm_reattach(struct vm *vm);
/* Wait (m->lock held) until pid == 0 or the deadline; 0 or -ETIMEDOUT. */
int vm_wait_gone(struct vm *vm, int timeout_ms);
/* Remove taps / stop swtpm and save its state for the run config. */
void vm_cleanup_runtime(struct vm *vm, const struct vm_config *rc, bool swtpm_child,
                        pid_t swtpm_pid);

#endif
