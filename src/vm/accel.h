/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Accelerator choice: KVM when /dev/kvm can run unmodified guests, else TCG
 * (software emulation), with the reason in words for the user.  A
 * paravirtual KVM (kernel module kvm_pvm, as on some cloud VMs) provides
 * /dev/kvm but hangs standard kernels, so it counts as no KVM. */
#ifndef BERTH_VM_ACCEL_H
#define BERTH_VM_ACCEL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "vm/config.h"

struct vm_accel_probe {
    bool kvm_usable;
    char reason[256];   /* "kvm: /dev/kvm is usable" / "tcg: /dev/kvm is kvm_pvm ..." */
};

/* Probe the host (/dev/kvm, /sys/module).  Never fails: an unusable KVM is
 * a result, not an error. */
void vm_accel_probe(struct vm_accel_probe *p);
/* Same with explicit paths (tests): the device node and the sysfs module dir. */
void vm_accel_probe_at(const char *dev_kvm, const char *sys_module, struct vm_accel_probe *p);

/* Resolve a VM's accel setting against the probe: auto -> kvm or tcg;
 * kvm when KVM is unusable -> -ENODEV with the reason; tcg -> tcg.  *out is
 * VM_ACCEL_KVM or VM_ACCEL_TCG; reason (may be NULL) gets the sentence to
 * show in `vm status` and the start warning. */
int vm_accel_resolve(enum vm_accel want, const struct vm_accel_probe *p, enum vm_accel *out,
                     char *reason, size_t len, struct berr *err);

#endif
