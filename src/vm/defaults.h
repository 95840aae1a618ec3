/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A new VM's defaults, as the host guide recommends them (docs/VMS.md says
 * why): machine q35, UEFI (OVMF) with an efidisk0 on the pool, VirtIO SCSI
 * single with an iothread per disk, disks with discard=on, a VirtIO NIC on a
 * bridge with a generated MAC, the guest agent, TPM 2.0, half the host's
 * cores, 2048 MB.  Also the OVMF firmware file choice for an efidisk. */
#ifndef BERTH_VM_DEFAULTS_H
#define BERTH_VM_DEFAULTS_H

#include "vm/config.h"

#define VM_DEFAULT_MEMORY 2048
#define VM_DEFAULT_BRIDGE "vmbr0"
#define VM_OVMF_DIR "/usr/share/OVMF"
#define VM_EFIVARS_4M_SIZE 540672u   /* OVMF_VARS_4M.fd */
#define VM_EFIVARS_2M_SIZE 131072u   /* OVMF_VARS.fd */
#define VM_TPMSTATE_SIZE (4u << 20)

struct vm_defaults_opts {
    uint32_t vmid;
    const char *name;        /* NULL: no name key */
    const char *pool;        /* pool for efidisk0, tpmstate0, scsi0; NULL: none of them */
    uint64_t disk_size;      /* bytes of scsi0; 0: no scsi0 */
    const char *bridge;      /* NULL: VM_DEFAULT_BRIDGE; "" : no net0 */
    unsigned host_cores;     /* 0: probe the online CPUs */
};

/* Fill *c (initialised here) with the defaults.  Volume names are
 * vm-VMID-disk-0 (scsi0), vm-VMID-efidisk0, vm-VMID-tpmstate0; the caller
 * creates the volumes (efidisk0 from vm_ovmf_files().vars_template). */
int vm_config_defaults(struct vm_config *c, const struct vm_defaults_opts *o, struct berr *err);

/* A random locally administered unicast MAC with Proxmox's BC:24:11 prefix. */
int vm_generate_mac(uint8_t mac[6]);

/* A random RFC 4122 version 4 UUID string (buf >= 37 bytes). */
int vm_generate_uuid(char *buf, size_t len);

/* Firmware for an efidisk: code image (read-only pflash0), the vars
 * template that initialises the efidisk volume, the vars size (the pflash1
 * drive is exactly this big, whatever the volume's size), and whether the
 * code needs SMM + secure pflash (pre-enrolled-keys=1). Paths point into
 * `ovmf_dir` (NULL: VM_OVMF_DIR) and stay valid until the next call. */
struct vm_ovmf_files {
    char code[256];
    char vars_template[256];
    uint64_t vars_size;
    bool secure;
};
void vm_ovmf_files(const struct vm_efidisk *e, const char *ovmf_dir, struct vm_ovmf_files *out);

#endif
