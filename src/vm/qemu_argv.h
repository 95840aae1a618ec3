/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QEMU command line of a VM: a validated config plus the runtime
 * context (VMID, the VM's run directory, berthd's NBD socket, the swtpm
 * socket, firmware location, the resolved accelerator) turned into an argv.
 *
 * Shape (docs/VMS.md): `-nodefaults -no-user-config`, no -daemonize (berthd
 * supervises the child), QMP/serial/agent/VNC on unix sockets in the run
 * dir, disks as `-blockdev driver=nbd` nodes on berthd's socket with export
 * "POOL/VOL", OVMF as two pflash blockdevs (code read-only from the package,
 * vars from the efidisk0 volume), TPM through swtpm's socket, NICs as tap
 * devices tapVMIDiN, passthrough with vfio-pci / usb-host. */
#ifndef BERTH_VM_QEMU_ARGV_H
#define BERTH_VM_QEMU_ARGV_H

#include <stddef.h>
#include <stdint.h>

#include "vm/config.h"

#define VM_SOCK_PATH_MAX 108 /* sun_path */
/* Seconds QEMU's NBD client keeps guest requests waiting while berthd (the
 * NBD server) is away, before failing them with I/O errors. */
#define VM_NBD_RECONNECT_DELAY 300

/* Files of a running VM inside its run directory. */
struct vm_paths {
    char qmp[VM_SOCK_PATH_MAX];
    char qga[VM_SOCK_PATH_MAX];
    char vnc[VM_SOCK_PATH_MAX];
    char swtpm[VM_SOCK_PATH_MAX];
    char serial[VM_MAX_SERIAL][VM_SOCK_PATH_MAX];
    char pid[4096];
};
/* run_dir/qmp.sock, qga.sock, vnc.sock, swtpm.sock, serialN.sock, qemu.pid.
 * -ENAMETOOLONG if a socket path would not fit in sun_path. */
int vm_paths_init(struct vm_paths *p, const char *run_dir, struct berr *err);

/* tap interface of NIC n: "tap<vmid>i<n>" (at most 15 chars). */
void vm_tap_name(uint32_t vmid, int n, char *buf, size_t len);

/* Lists the functions (0..7) present at a host PCI slot; returns the count
 * or -errno.  Used for hostpciN given as BB:DD (all functions). */
typedef int (*vm_pci_functions_fn)(unsigned domain, unsigned bus, unsigned slot, int fns[8],
                                   void *opaque);

struct vm_argv_ctx {
    uint32_t vmid;
    const char *qemu_binary;    /* argv[0]; NULL: "qemu-system-x86_64" */
    const char *run_dir;        /* the VM's own runtime dir (sockets, pidfile) */
    const char *nbd_socket;     /* berthd's NBD unix socket */
    const char *swtpm_socket;   /* NULL: run_dir/swtpm.sock */
    const char *ovmf_dir;       /* NULL: /usr/share/OVMF */
    enum vm_accel accel;        /* resolved: VM_ACCEL_KVM or VM_ACCEL_TCG */
    vm_pci_functions_fn pci_functions; /* NULL: read /sys/bus/pci/devices */
    void *opaque;
};

/* Build the argv.  *argv is a malloc'd NULL-terminated array of malloc'd
 * strings, freed with vm_argv_free().  Errors name the config key (e.g.
 * "net0: no MAC address") or the context field. */
int vm_build_argv(const struct vm_config *c, const struct vm_argv_ctx *ctx, char ***argv,
                  struct berr *err);
void vm_argv_free(char **argv);

#endif
