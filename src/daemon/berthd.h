/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berthd's wiring, shared by its files: main.c (options, startup, signals,
 * shutdown), registry.c (pools.json and import at start), backend.c (the NBD
 * backend over the store) and pidfile.c (the single-instance lock). */
#ifndef BERTH_DAEMON_BERTHD_H
#define BERTH_DAEMON_BERTHD_H

#include <limits.h>

#include "api/api.h"
#include "api/pooltab.h"
#include "nbd/nbd_server.h"
#include "vm/net.h"
#include "vm/supervisor.h"

struct repl_mgr;

struct berthd {
    char state_dir[PATH_MAX];
    char run_dir[PATH_MAX];
    char pools_json[PATH_MAX];
    struct pooltab pools;
    struct nbd_server *nbd;
    uint64_t nbd_budget;      /* NBD request buffers: part of the memory limit */
    struct api_server *api;
    struct api_ctx ctx;
    struct vmm *vms;            /* VM supervisor (src/vm/supervisor.h) */
    struct vm_nettab nets;      /* bridges, <state>/networks.json */
    struct scrubsched *scrubs;  /* scheduled scrubs */
    struct repl_mgr *repl;      /* replication jobs (repl.h), <state>/replications.json */
};

/* registry.c */
/* Read <state>/pools.json and import every pool it lists; a pool that fails
 * becomes an UNAVAIL entry (logged), never a fatal error.  A corrupt
 * pools.json is moved aside (logged) and berthd starts with no pools. */
void registry_load(struct berthd *d);
/* The api_ctx persist callback: rewrite pools.json from the table (the caller
 * holds the table lock).  Errors are logged here. */
void registry_save(void *opaque);

/* Scheduled scrubs (scrubsched.c): a thread started after the pools are
 * imported, stopped before they close. */
struct scrubsched;
struct scrubsched *scrubsched_start(struct berthd *d);
void scrubsched_stop(struct scrubsched *s); /* NULL accepted */
/* Close every pool (final txg sync) and empty the table. */
void registry_close_all(struct berthd *d);

/* backend.c: an NBD backend serving "pool/vol" exports out of the table. */
void backend_init(struct nbd_backend *be, struct pooltab *t);

/* pidfile.c: create and flock `path`, write our pid.  EBUSY with a message
 * naming the other process if it is locked.  The fd stays open (and locked)
 * for the life of the process. */
int pidfile_lock(const char *path, const char *what, int *fd, struct berr *err);

#endif
