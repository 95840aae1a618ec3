/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Networks for VMs: Linux bridges created with `ip`, remembered in
 * <state>/networks.json, and the per-NIC tap devices (tap<VMID>i<N>) that
 * QEMU opens by name.
 *
 * networks.json (rewritten atomically after every change):
 *   {"version": 1, "networks": [{"name": "vmbr0", "cidr": "10.10.0.1/24",
 *                                "uplink": null}]}
 *
 * Locking: one mutex over the table; `ip` runs under it (bridge changes are
 * rare and short).  Tap creation does not take it. */
#ifndef BERTH_VM_NET_H
#define BERTH_VM_NET_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define VM_IFNAME_MAX 16 /* IFNAMSIZ */

struct vm_network {
    char name[VM_IFNAME_MAX];
    char cidr[64];              /* "" = no address */
    char uplink[VM_IFNAME_MAX]; /* "" = none */
};

struct vm_nettab {
    pthread_mutex_t lock;
    char path[4096];            /* networks.json */
    struct vm_network *v;
    size_t n;
    bool dry_run;               /* unit tests: do not run `ip` */
};

/* Interface names: 1..15 chars of [A-Za-z0-9_.-], not "." / "..". */
int vm_ifname_check(const char *what, const char *name, struct berr *err);
/* "10.0.0.1/24" or "fd00::1/64": an address with a prefix length. */
int vm_cidr_check(const char *cidr, struct berr *err);

/* Parse / render networks.json text (exported for tests). */
int vm_networks_parse(const char *text, size_t len, struct vm_network **out, size_t *n,
                      struct berr *err);
char *vm_networks_render(const struct vm_network *v, size_t n);

int vm_nettab_init(struct vm_nettab *t, const char *path);
void vm_nettab_destroy(struct vm_nettab *t);
/* Read networks.json and (unless dry_run) re-create every bridge that is
 * missing on the host, bringing it up with its address.  Problems are
 * logged per network, never fatal. */
void vm_nettab_load(struct vm_nettab *t);

/* Create a bridge, persist it.  EEXIST if known or an interface of that
 * name exists on the host. */
int vm_net_create(struct vm_nettab *t, const struct vm_network *n, struct berr *err);
/* Delete from host and table (the caller checks running VMs first). */
int vm_net_destroy(struct vm_nettab *t, const char *name, struct berr *err);
bool vm_net_known(struct vm_nettab *t, const char *name);
/* JSON of one network / all (sorted by name): state and ports from sysfs. */
json_t *vm_net_json(struct vm_nettab *t, const char *name);
json_t *vm_net_list_json(struct vm_nettab *t);

/* Does the host have this interface (a bridge for the _bridge variant)? */
bool vm_iface_exists(const char *name);
bool vm_bridge_exists(const char *name);

/* tap<vmid>i<idx> on `bridge`, up (mtu 0 = the bridge's).  An existing tap
 * of that name (left over) is reused. */
int vm_tap_create(const char *tap, const char *bridge, int mtu, struct berr *err);
/* Remove a tap device; missing is fine. */
void vm_tap_delete(const char *tap);

#endif
