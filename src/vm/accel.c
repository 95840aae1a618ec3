/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* KVM vs TCG decision (see accel.h). */
#include "vm/accel.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

void vm_accel_probe_at(const char *dev_kvm, const char *sys_module, struct vm_accel_probe *p)
{
    p->kvm_usable = false;
    int fd = open(dev_kvm, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            snprintf(p->reason, sizeof p->reason,
                     "tcg: %s does not exist (no hardware virtualization, or the kvm module is not loaded)",
                     dev_kvm);
        else
            snprintf(p->reason, sizeof p->reason, "tcg: cannot open %s: %s", dev_kvm, strerror(e));
        return;
    }
    int ver = ioctl(fd, KVM_GET_API_VERSION, 0);
    close(fd);
    if (ver != KVM_API_VERSION) {
        snprintf(p->reason, sizeof p->reason, "tcg: %s answers KVM API version %d, not %d", dev_kvm,
                 ver, KVM_API_VERSION);
        return;
    }
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/kvm_pvm", sys_module);
    if (stat(path, &st) == 0) {
        snprintf(p->reason, sizeof p->reason,
                 "tcg: %s is kvm_pvm (paravirtual), which cannot run unmodified guests", dev_kvm);
        return;
    }
    p->kvm_usable = true;
    snprintf(p->reason, sizeof p->reason, "kvm: %s is usable", dev_kvm);
}

void vm_accel_probe(struct vm_accel_probe *p)
{
    vm_accel_probe_at("/dev/kvm", "/sys/module", p);
}

int vm_accel_resolve(enum vm_accel want, const struct vm_accel_probe *p, enum vm_accel *out,
                     char *reason, size_t len, struct berr *err)
{
    char tmp[320];
    switch (want) {
    case VM_ACCEL_TCG:
        *out = VM_ACCEL_TCG;
        snprintf(tmp, sizeof tmp, "tcg: requested by 'accel: tcg' (software emulation, slow)");
        break;
    case VM_ACCEL_KVM:
        if (!p->kvm_usable)
            return berr_set(err, ENODEV, "accel: kvm requested, but %s",
                            strncmp(p->reason, "tcg: ", 5) == 0 ? p->reason + 5 : p->reason);
        *out = VM_ACCEL_KVM;
        snprintf(tmp, sizeof tmp, "%s", p->reason);
        break;
    default:
        *out = p->kvm_usable ? VM_ACCEL_KVM : VM_ACCEL_TCG;
        snprintf(tmp, sizeof tmp, "%s%s", p->reason,
                 p->kvm_usable ? "" : "; using software emulation (slow)");
    }
    if (reason && len)
        snprintf(reason, len, "%s", tmp);
    return 0;
}
