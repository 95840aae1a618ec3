/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internals shared by snap.c (model, syncing context), snapadmin.c (public
 * calls) and recvsup.c (receive support): sync tasks and name helpers. */
#ifndef BERTH_STORE_SNAP_IMPL_H
#define BERTH_STORE_SNAP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pool_impl.h"

enum st_op {
    ST_SNAP,         /* ds (head) -> new snapshot named `name` */
    ST_DESTROY,      /* ds: snapshot (<= 1 child) or head */
    ST_NEW_HEAD,     /* src (snapshot) -> new head from tmpl */
    ST_RENAME,       /* ds -> name, flags = tmpl.flags */
    ST_KEYSLOTS,     /* key's slot set and keyformat = *slots (a raw receive) */
};

struct st_item {
    enum st_op op;
    struct ds *ds, *src;
    char name[BS_SNAP_NAME_MAX];
    uint64_t guid, creation;
    struct mos_ds tmpl;
    struct vkey *key;              /* ST_KEYSLOTS: the record to update */
    const struct mos_key *slots;   /* ... from this (the caller's, alive until
                                    * task_run returns) */
};

struct synctask {
    struct synctask *next;
    struct st_item *items;
    size_t n, cap;
    int result;
};

/* Split "VOL@SNAP", validating both parts. */
int split_snap(const char *name, char vol[64], char snap[64], struct berr *err);
/* Volume part of a dataset name. */
void vol_of(const char *name, char out[64]);
/* Is d a snapshot "vol@..."? */
bool owned_by(const struct ds *d, const char *vol);
/* Lookups by name (pool->lock held). */
struct ds *find_head(struct bs_pool *p, const char *vol);
struct ds *find_snap(struct bs_pool *p, const char *name);
/* Datasets continuing s; *first = one of them (pool->lock held). */
size_t nchildren(struct bs_pool *p, const struct ds *s, struct ds **first);
uint64_t new_guid(uint64_t salt);
/* The origin of head h of volume vol (pool->lock held); NULL if not a clone. */
struct ds *origin_of(struct bs_pool *p, struct ds *h, const char *vol);
/* A head template named `name` with the properties of `like`. */
void head_tmpl(struct mos_ds *tm, const struct mos_ds *like, const char *name);

struct synctask *task_new(void);
struct st_item *task_add(struct synctask *t, enum st_op op);
/* Queue t for the open txg and wait (admin_lock held, pool->lock not);
 * frees t. */
int task_run(struct bs_pool *p, struct synctask *t, const char *what, struct berr *err);

/* The end of a public call: run t if r is 0 (else free it), then drop
 * admin_lock; returns the result. */
int task_finish(struct bs_pool *p, struct synctask *t, int r, const char *what,
                struct berr *err);

int writable(struct bs_pool *p, struct berr *err);
int busy_open(const struct ds *d, const char *what, struct berr *err);

#endif
