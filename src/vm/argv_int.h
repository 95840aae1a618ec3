/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared state of the two argv builder files: qemu_argv.c (machine, CPU,
 * memory, firmware, consoles) and argv_dev.c (disks, NICs, passthrough). */
#ifndef BERTH_VM_ARGV_INT_H
#define BERTH_VM_ARGV_INT_H

#include "vm/internal.h"
#include "vm/qemu_argv.h"

#define ARGV_MAX_PCI 28 /* root-bus slots left for our devices */

struct argv_state {
    const struct vm_config *c;
    const struct vm_argv_ctx *ctx;
    struct vm_paths paths;
    struct strv sv;
    int pci;                /* PCI devices placed on the root bus */
    bool q35;
    struct berr *err;
    int rc;                 /* first error */
};

/* Add "-opt" and a value built with printf. */
void argv_opt(struct argv_state *s, const char *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* ",bootindex=N" if dev is in the boot order. */
void argv_bootindex(struct argv_state *s, struct sbuf *b, const char *dev);
int argv_fail(struct argv_state *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void argv_disks(struct argv_state *s);
void argv_nets(struct argv_state *s);
void argv_hostpci(struct argv_state *s);
void argv_usb(struct argv_state *s);

#endif
