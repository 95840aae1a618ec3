/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VM configuration model: what `<state>/vm/<VMID>.conf` says, parsed,
 * validated and written back in canonical form.
 *
 * The file format is Proxmox's: one `key: value` per line, `#` comment lines,
 * and optional `[name]` sections (snapshots, [PENDING]) at the end.  Keys and
 * their values mean what they mean in Proxmox (`qm config`), plus three berth
 * extensions: `kernel`/`initrd`/`append` (direct kernel boot) and `accel`.
 *
 * Ownership: a `struct vm_config` owns every string and array it points to;
 * vm_config_free() releases them (and accepts NULL).  Parsing either fills
 * the whole config or leaves it empty, never half.
 *
 * Preservation: comment lines of the main section are kept (written at the
 * top, as Proxmox does with its description comments); everything from the
 * first `[section]` header to the end is kept verbatim and not validated.
 *
 * Canonical text: keys in a fixed order (Proxmox-like: alphabetic, device
 * slots in numeric order), option lists in schema order, defaults that are
 * implied left out only where the user left them out.  parse(write(c)) == c.
 */
#ifndef BERTH_VM_CONFIG_H
#define BERTH_VM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define VM_VMID_MIN 100u
#define VM_VMID_MAX 999999999u
#define VM_MEMORY_MIN 16u
#define VM_MEMORY_MAX 4194304u
#define VM_CORES_MAX 512u
#define VM_SOCKETS_MAX 16u
#define VM_CONFIG_MAX_BYTES (1u << 20)
#define VM_NAME_MAX 63
#define VM_POOLVOL_MAX 128 /* "POOL:VOL" */

/* Slots per device family (Proxmox's limits). */
#define VM_MAX_SCSI 31
#define VM_MAX_VIRTIO 16
#define VM_MAX_SATA 6
#define VM_MAX_IDE 4
#define VM_MAX_NET 32
#define VM_MAX_HOSTPCI 16
#define VM_MAX_USB 14
#define VM_MAX_SERIAL 4

/* -1 in an int field or 0 in a string pointer means "not set in the file". */
#define VM_UNSET (-1)

enum vm_machine { VM_MACHINE_UNSET, VM_MACHINE_Q35, VM_MACHINE_PC };
enum vm_bios { VM_BIOS_UNSET, VM_BIOS_SEABIOS, VM_BIOS_OVMF };
enum vm_scsihw {
    VM_SCSIHW_UNSET, /* means lsi, as in Proxmox */
    VM_SCSIHW_VIRTIO_SINGLE,
    VM_SCSIHW_VIRTIO_PCI,
    VM_SCSIHW_LSI,
};
enum vm_accel { VM_ACCEL_AUTO, VM_ACCEL_KVM, VM_ACCEL_TCG };
enum vm_vga { VM_VGA_UNSET, VM_VGA_STD, VM_VGA_VIRTIO, VM_VGA_QXL, VM_VGA_CIRRUS,
              VM_VGA_NONE, VM_VGA_SERIAL0 };
enum vm_bus { VM_BUS_SCSI, VM_BUS_VIRTIO, VM_BUS_SATA, VM_BUS_IDE };
enum vm_disk_kind { VM_DISK_VOLUME, VM_DISK_ISO, VM_DISK_NONE };
enum vm_cache { VM_CACHE_UNSET, VM_CACHE_NONE, VM_CACHE_WRITEBACK, VM_CACHE_WRITETHROUGH,
                VM_CACHE_DIRECTSYNC, VM_CACHE_UNSAFE };
enum vm_discard { VM_DISCARD_UNSET, VM_DISCARD_ON, VM_DISCARD_IGNORE };
enum vm_nic_model { VM_NIC_VIRTIO, VM_NIC_E1000, VM_NIC_E1000E, VM_NIC_RTL8139,
                    VM_NIC_VMXNET3 };

/* A berth volume reference "POOL:VOL"; both names pass validate_name(). */
struct vm_volref {
    char pool[64];
    char vol[64];
};

/* scsiN / virtioN / sataN / ideN */
struct vm_disk {
    enum vm_bus bus;
    int index;
    enum vm_disk_kind kind;
    struct vm_volref vol;   /* VM_DISK_VOLUME */
    char *path;             /* VM_DISK_ISO: absolute path of an image file */
    enum vm_discard discard;
    int iothread;           /* VM_UNSET, 0, 1 */
    int ssd;                /* VM_UNSET, 0, 1 */
    int backup;             /* VM_UNSET, 0, 1 (kept for Proxmox compat) */
    bool cdrom;             /* media=cdrom */
    enum vm_cache cache;
    uint64_t size;          /* size=, bytes; 0 = unset */
};

struct vm_efidisk {
    bool present;
    struct vm_volref vol;
    int efitype_4m;         /* VM_UNSET, 0 (2m), 1 (4m) */
    int pre_enrolled_keys;  /* VM_UNSET, 0, 1 */
    uint64_t size;
};

struct vm_tpmstate {
    bool present;
    struct vm_volref vol;
    int version;            /* VM_UNSET (means v1.2, as in Proxmox), 12, 20 */
    uint64_t size;
};

struct vm_net {
    int index;
    enum vm_nic_model model;
    uint8_t mac[6];
    bool has_mac;
    char bridge[16];        /* IFNAMSIZ */
    int firewall;           /* VM_UNSET, 0, 1 (kept) */
    int tag;                /* VM_UNSET or 1..4094 */
    int link_down;          /* VM_UNSET, 0, 1 */
    int queues;             /* VM_UNSET or 1..64 */
    int mtu;                /* VM_UNSET or 576..65520 */
};

struct vm_hostpci {
    int index;
    unsigned domain, bus, slot;
    int function;           /* -1: all functions of the slot ("01:00") */
    int pcie;               /* VM_UNSET, 0, 1 */
    int x_vga;
    int rombar;
    char *romfile;          /* NULL or a file name */
};

struct vm_usb {
    int index;
    bool by_id;             /* host=VVVV:PPPP, else host=BUS-PORT */
    unsigned vendor, product;
    unsigned hostbus;
    char hostport[32];      /* "2.3" */
    int usb3;
};

struct vm_agent {
    int enabled;            /* VM_UNSET, 0, 1 */
    int fstrim_cloned_disks;
};

struct vm_config {
    char *name;
    int memory;             /* MB */
    int balloon;            /* MB; 0 disables the balloon device */
    int cores, sockets;
    char *cpu;              /* model, e.g. host, max, x86-64-v2-AES */
    char *cpu_flags;        /* "+aes;-pcid" */
    enum vm_machine machine;
    enum vm_bios bios;
    enum vm_scsihw scsihw;
    enum vm_accel accel;
    bool accel_set;
    enum vm_vga vga;
    int vga_memory;         /* MB, VM_UNSET */
    char *ostype;
    int onboot, numa;       /* VM_UNSET, 0, 1 */
    struct vm_agent agent;
    struct vm_efidisk efidisk;
    struct vm_tpmstate tpmstate;
    bool serial_socket[VM_MAX_SERIAL];
    char **boot_order;      /* NULL-terminated device keys, NULL if unset */
    bool boot_set;
    char *kernel, *initrd, *append;
    char *description, *smbios1, *vmgenid, *meta;

    struct vm_disk *disks;  size_t n_disks;
    struct vm_net *nets;    size_t n_nets;
    struct vm_hostpci *hostpcis; size_t n_hostpcis;
    struct vm_usb *usbs;    size_t n_usbs;

    char **comments;        size_t n_comments;  /* "# ..." lines, verbatim */
    char *sections;         /* "[snap]\n..." tail, verbatim, or NULL */
};

/* An empty config: every field unset. */
void vm_config_init(struct vm_config *c);
void vm_config_free(struct vm_config *c);

/* Parse the text of a config file (need not be NUL-terminated).  Fails with
 * -EINVAL and a message naming the line, the key and the bad value; on
 * failure *c is left initialised and empty.  Includes vm_config_validate(). */
int vm_config_parse(const char *text, size_t len, struct vm_config *c, struct berr *err);

/* Set one key as if the line "key: value" were in the file, replacing an
 * existing value (what `berth vm set` does).  An empty value deletes the key.
 * Does not run the cross-key validation: call vm_config_validate() after the
 * last change. */
int vm_config_set(struct vm_config *c, const char *key, const char *value, struct berr *err);

/* Cross-key checks: bios ovmf needs efidisk0, pcie=1 needs q35, boot order
 * names configured devices, a volume used twice, a MAC used twice, ... */
int vm_config_validate(const struct vm_config *c, struct berr *err);

/* Canonical text; *out is malloc'd and NUL-terminated. */
int vm_config_format(const struct vm_config *c, char **out, struct berr *err);

/* Read / write `<dir>/<vmid>.conf` (the write is atomic: temp, fsync,
 * rename, fsync dir).  Errors on read are prefixed with the file name. */
int vm_config_load(const char *path, struct vm_config *c, struct berr *err);
int vm_config_save(const char *path, const struct vm_config *c, struct berr *err);

/* VMIDs: decimal, 100..999999999, no sign, no leading zeros. */
int vm_parse_vmid(const char *s, uint32_t *vmid, struct berr *err);

/* Call fn for every berth volume the config references (disks, efidisk0,
 * tpmstate0) with its config key ("scsi0", "efidisk0").  Stops at and
 * returns the first non-zero return of fn. */
typedef int (*vm_volume_fn)(const char *key, const struct vm_volref *vol, void *opaque);
int vm_config_foreach_volume(const struct vm_config *c, vm_volume_fn fn, void *opaque);

/* Effective values (the file's value or the Proxmox default). */
enum vm_machine vm_config_machine(const struct vm_config *c);   /* default pc */
enum vm_bios vm_config_bios(const struct vm_config *c);         /* default seabios */
enum vm_scsihw vm_config_scsihw(const struct vm_config *c);     /* default lsi */
int vm_config_memory(const struct vm_config *c);                /* default 512 */
int vm_config_cores(const struct vm_config *c);                 /* default 1 */
int vm_config_sockets(const struct vm_config *c);               /* default 1 */
bool vm_config_agent_enabled(const struct vm_config *c);

/* Device key of a disk: "scsi0", "virtio3" (buf >= 16 bytes). */
const char *vm_disk_key(const struct vm_disk *d, char *buf, size_t len);
const struct vm_disk *vm_config_find_disk(const struct vm_config *c, enum vm_bus bus, int index);

/* Format "BC:24:11:AB:CD:EF" into buf (>= 18 bytes). */
const char *vm_format_mac(const uint8_t mac[6], char *buf, size_t len);
int vm_parse_mac(const char *s, uint8_t mac[6]);

#endif
