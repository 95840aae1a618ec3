/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM config files: the line format, the key table, scalar values, the
 * canonical writer and load/save.  Device values are parsed in
 * config_dev.c/config_pt.c, cross-key rules live in config_check.c. */
#include "vm/config_int.h"
#include "vm/defaults.h"
#include "common/cleanup.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key {
    K_NAME, K_MEMORY, K_BALLOON, K_CORES, K_SOCKETS, K_CPU, K_MACHINE, K_BIOS, K_SCSIHW, K_ACCEL,
    K_VGA, K_OSTYPE, K_ONBOOT, K_NUMA, K_AGENT, K_BOOT, K_KERNEL, K_INITRD, K_APPEND,
    K_DESCRIPTION, K_SMBIOS1, K_VMGENID, K_META, K_EFIDISK0, K_TPMSTATE0,
    /* families with a slot number */
    K_SCSI, K_VIRTIO, K_SATA, K_IDE, K_NET, K_HOSTPCI, K_USB, K_SERIAL,
};

static const char *const scalar_keys[] = {
    "name", "memory", "balloon", "cores", "sockets", "cpu", "machine", "bios", "scsihw", "accel",
    "vga", "ostype", "onboot", "numa", "agent", "boot", "kernel", "initrd", "append",
    "description", "smbios1", "vmgenid", "meta", "efidisk0", "tpmstate0", NULL};
static const char *const families[] = {"scsi", "virtio", "sata", "ide", "net", "hostpci", "usb",
                                       "serial", NULL};
static const int family_max[] = {VM_MAX_SCSI, VM_MAX_VIRTIO, VM_MAX_SATA, VM_MAX_IDE,
                                 VM_MAX_NET, VM_MAX_HOSTPCI, VM_MAX_USB, VM_MAX_SERIAL};
/* every key a user may mean, for "did you mean" */
static const char *const all_keys[] = {
    "name", "memory", "balloon", "cores", "sockets", "cpu", "machine", "bios", "scsihw", "accel",
    "vga", "ostype", "onboot", "numa", "agent", "boot", "kernel", "initrd", "append",
    "description", "smbios1", "vmgenid", "meta", "efidisk0", "tpmstate0", "scsi0", "virtio0",
    "sata0", "ide0", "ide2", "net0", "hostpci0", "usb0", "serial0", NULL};

const char *const vm_machine_names[] = {"", "q35", "pc", NULL};
const char *const vm_bios_names[] = {"", "seabios", "ovmf", NULL};
const char *const vm_scsihw_names[] = {"", "virtio-scsi-single", "virtio-scsi-pci", "lsi", NULL};
const char *const vm_accel_names[] = {"auto", "kvm", "tcg", NULL};
const char *const vm_vga_names[] = {"", "std", "virtio", "qxl", "cirrus", "none", "serial0", NULL};
static const char *const ostypes[] = {"other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7",
                                      "win8", "win10", "win11", "l24", "l26", "solaris", NULL};

void vm_config_init(struct vm_config *c)
{
    memset(c, 0, sizeof(*c));
    c->memory = c->balloon = c->cores = c->sockets = VM_UNSET;
    c->vga_memory = c->onboot = c->numa = VM_UNSET;
    c->agent.enabled = c->agent.fstrim_cloned_disks = VM_UNSET;
}

void vm_config_free(struct vm_config *c)
{
    if (!c)
        return;
    char **strs[] = {&c->name, &c->cpu, &c->cpu_flags, &c->ostype, &c->kernel, &c->initrd,
                     &c->append, &c->description, &c->smbios1, &c->vmgenid, &c->meta,
                     &c->sections};
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
        free(*strs[i]);
    strv_free_all(c->boot_order);
    for (size_t i = 0; i < c->n_disks; i++)
        vm_disk_clear(&c->disks[i]);
    free(c->disks);
    free(c->nets);
    for (size_t i = 0; i < c->n_hostpcis; i++)
        vm_hostpci_clear(&c->hostpcis[i]);
    free(c->hostpcis);
    free(c->usbs);
    for (size_t i = 0; i < c->n_comments; i++)
        free(c->comments[i]);
    free(c->comments);
    vm_config_init(c);
}

/* ---- scalar values ---------------------------------------------------- */

static int set_str(char **field, const char *v, struct berr *err)
{
    char *n = strdup(v);
    if (!n)
        return berr_set(err, ENOMEM, "out of memory");
    free(*field);
    *field = n;
    return 0;
}

static int parse_enum(const char *key, const char *v, const char *const *list, int first,
                      struct berr *err)
{
    int i = vm_lookup(v, list);
    if (i < first)
        return vm_err_unknown(err, key, "value", v, list + first);
    return i;
}

static bool dns_name_ok(const char *s)
{
    size_t l = strlen(s);
    if (l == 0 || l > VM_NAME_MAX || s[0] == '-' || s[0] == '.' || s[l - 1] == '-' || s[l - 1] == '.')
        return false;
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
        if (*p == '.' && (p[1] == '.' || p[1] == '-' || p[-1] == '-'))
            return false;
    }
    return true;
}

static bool uuid_ok(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static bool token_ok(const char *s, const char *extra)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(extra, *p))
            return false;
    return true;
}

static int parse_cpu(const char *key, const char *v, struct vm_config *c, struct berr *err)
{
    static const char *const opts[] = {"cputype", "flags", NULL};
    struct props p;
    int r = props_split(v, key, &p, err);
    if (r < 0)
        return r;
    const char *model = NULL, *flags = NULL;
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        const char *k = p.v[i].key, *val = p.v[i].val;
        int o = k ? vm_lookup(k, opts) : (i == 0 ? 0 : -2);
        if (o == 0)
            model = val;
        else if (o == 1)
            flags = val;
        else if (o == -2)
            r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, val);
        else
            r = vm_err_unknown(err, key, "option", k, opts);
    }
    if (r >= 0 && (!model || !token_ok(model, "-_.")))
        r = berr_set(err, EINVAL, "%s: invalid CPU model '%s' (e.g. host, max, x86-64-v2-AES)", key,
                     model ? model : "");
    if (r >= 0 && flags) {
        const char *f = flags;
        while (r >= 0 && *f) {
            size_t l = strcspn(f, ";");
            bool good = l >= 2 && l < 64 && (f[0] == '+' || f[0] == '-');
            for (size_t i = 1; good && i < l; i++)
                good = isalnum((unsigned char)f[i]) || strchr("-_.", f[i]);
            if (!good)
                r = berr_set(err, EINVAL, "%s: invalid CPU flag list '%s' (expected +flag;-flag)", key, flags);
            f += l;
            if (*f == ';')
                f++;
        }
    }
    if (r >= 0 && (r = set_str(&c->cpu, model, err)) >= 0) {
        free(c->cpu_flags);
        c->cpu_flags = NULL;
        if (flags)
            r = set_str(&c->cpu_flags, flags, err);
    }
    props_free(&p);
    return r < 0 ? r : 0;
}

static int parse_vga(const char *key, const char *v, struct vm_config *c, struct berr *err)
{
    static const char *const opts[] = {"type", "memory", NULL};
    struct props p;
    int r = props_split(v, key, &p, err);
    if (r < 0)
        return r;
    int type = -1;
    long mem = VM_UNSET;
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        const char *k = p.v[i].key, *val = p.v[i].val;
        int o = k ? vm_lookup(k, opts) : (i == 0 ? 0 : -2);
        if (o == 0)
            r = type = parse_enum(key, val, vm_vga_names, 1, err);
        else if (o == 1)
            r = vm_parse_int(key, k, val, 4, 512, &mem, err);
        else if (o == -2)
            r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, val);
        else
            r = vm_err_unknown(err, key, "option", k, opts);
    }
    if (r >= 0 && type < 0)
        r = berr_set(err, EINVAL, "%s: missing the display type", key);
    props_free(&p);
    if (r < 0)
        return r;
    c->vga = (enum vm_vga)type;
    c->vga_memory = (int)mem;
    return 0;
}

static int parse_smbios1(const char *key, const char *v, struct berr *err)
{
    static const char *const opts[] = {"uuid", "manufacturer", "product", "version", "serial",
                                       "sku", "family", "base64", NULL};
    struct props p;
    int r = props_split(v, key, &p, err);
    for (size_t i = 0; r >= 0 && i < p.n; i++) {
        const char *k = p.v[i].key, *val = p.v[i].val;
        if (!k)
            r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, val);
        else if (vm_lookup(k, opts) < 0)
            r = vm_err_unknown(err, key, "option", k, opts);
        else if (strcmp(k, "uuid") == 0 && !uuid_ok(val))
            r = berr_set(err, EINVAL, "%s: invalid uuid '%s'", key, val);
    }
    props_free(&p);
    return r < 0 ? r : 0;
}

static int parse_path(const char *key, const char *v, char **field, struct berr *err)
{
    if (v[0] != '/' || !vm_text_ok(v) || strchr(v, ',') || strlen(v) >= 4096)
        return berr_set(err, EINVAL, "%s: must be an absolute file path, not '%s'", key, v);
    return set_str(field, v, err);
}

static int set_int(const char *key, const char *v, long min, long max, int *field, struct berr *err)
{
    long n;
    int r = vm_parse_int(key, NULL, v, min, max, &n, err);
    if (r < 0)
        return r;
    *field = (int)n;
    return 0;
}

static int set_scalar(struct vm_config *c, enum key k, const char *key, const char *v,
                      bool replace, struct berr *err)
{
    int r;
    switch (k) {
    case K_NAME:
        if (!dns_name_ok(v))
            return berr_set(err, EINVAL, "name: invalid name '%s' (a DNS name: letters, digits, '-' and '.', up to %d characters)", v, VM_NAME_MAX);
        return set_str(&c->name, v, err);
    case K_MEMORY: return set_int(key, v, VM_MEMORY_MIN, VM_MEMORY_MAX, &c->memory, err);
    case K_BALLOON: return set_int(key, v, 0, VM_MEMORY_MAX, &c->balloon, err);
    case K_CORES: return set_int(key, v, 1, VM_CORES_MAX, &c->cores, err);
    case K_SOCKETS: return set_int(key, v, 1, VM_SOCKETS_MAX, &c->sockets, err);
    case K_CPU: return parse_cpu(key, v, c, err);
    case K_MACHINE:
        if ((r = parse_enum(key, v, vm_machine_names, 1, err)) < 0)
            return r;
        c->machine = (enum vm_machine)r;
        return 0;
    case K_BIOS:
        if ((r = parse_enum(key, v, vm_bios_names, 1, err)) < 0)
            return r;
        c->bios = (enum vm_bios)r;
        return 0;
    case K_SCSIHW:
        if ((r = parse_enum(key, v, vm_scsihw_names, 1, err)) < 0)
            return r;
        c->scsihw = (enum vm_scsihw)r;
        return 0;
    case K_ACCEL:
        if ((r = parse_enum(key, v, vm_accel_names, 0, err)) < 0)
            return r;
        c->accel = (enum vm_accel)r;
        c->accel_set = true;
        return 0;
    case K_VGA: return parse_vga(key, v, c, err);
    case K_OSTYPE:
        if ((r = parse_enum(key, v, ostypes, 0, err)) < 0)
            return r;
        return set_str(&c->ostype, v, err);
    case K_ONBOOT: return vm_parse_bool(key, NULL, v, &c->onboot, err);
    case K_NUMA: return vm_parse_bool(key, NULL, v, &c->numa, err);
    case K_AGENT: {
        struct vm_agent a;
        if ((r = vm_parse_agent(key, v, &a, err)) < 0)
            return r;
        c->agent = a;
        return 0;
    }
    case K_BOOT: {
        char **order;
        if ((r = vm_parse_boot(key, v, &order, err)) < 0)
            return r;
        strv_free_all(c->boot_order);
        c->boot_order = order;
        c->boot_set = true;
        return 0;
    }
    case K_KERNEL: return parse_path(key, v, &c->kernel, err);
    case K_INITRD: return parse_path(key, v, &c->initrd, err);
    case K_APPEND:
        if (!vm_text_ok(v) || strlen(v) > 4096)
            return berr_set(err, EINVAL, "append: kernel command line has control characters or is longer than 4096");
        return set_str(&c->append, v, err);
    case K_DESCRIPTION:
        if (!vm_text_ok(v))
            return berr_set(err, EINVAL, "description: contains control characters");
        return set_str(&c->description, v, err);
    case K_SMBIOS1:
        if ((r = parse_smbios1(key, v, err)) < 0)
            return r;
        return set_str(&c->smbios1, v, err);
    case K_VMGENID:
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0 && !uuid_ok(v))
            return berr_set(err, EINVAL, "vmgenid: expected a UUID, 1 (generate) or 0 (off), not '%s'", v);
        if (strcmp(v, "1") == 0 && replace) {
            char u[40];
            if (vm_generate_uuid(u, sizeof u) < 0)
                return berr_set(err, EIO, "vmgenid: cannot generate a UUID");
            return set_str(&c->vmgenid, u, err);
        }
        return set_str(&c->vmgenid, v, err);
    case K_META:
        if (!vm_text_ok(v))
            return berr_set(err, EINVAL, "meta: contains control characters");
        return set_str(&c->meta, v, err);
    case K_EFIDISK0: {
        struct vm_efidisk e;
        if ((r = vm_parse_efidisk(key, v, &e, err)) < 0)
            return r;
        c->efidisk = e;
        return 0;
    }
    case K_TPMSTATE0: {
        struct vm_tpmstate t;
        if ((r = vm_parse_tpmstate(key, v, &t, err)) < 0)
            return r;
        c->tpmstate = t;
        return 0;
    }
    default: return berr_set(err, EINVAL, "%s: internal error", key);
    }
}

/* ---- device slots --------------------------------------------------------- */

#define SLOT_ARRAY(c, arr, n, type)                                                              \
    static type *slot_##arr(struct vm_config *c, int index, bool create, bool *existed)      \
    {                                                                                            \
        for (size_t i = 0; i < c->n; i++)                                                        \
            if (c->arr[i].index == index) {                                                      \
                *existed = true;                                                                 \
                return &c->arr[i];                                                               \
            }                                                                                    \
        *existed = false;                                                                        \
        if (!create)                                                                             \
            return NULL;                                                                         \
        type *nv = realloc(c->arr, (c->n + 1) * sizeof(type));                                   \
        if (!nv)                                                                                 \
            return NULL;                                                                         \
        c->arr = nv;                                                                             \
        memset(&c->arr[c->n], 0, sizeof(type));                                                  \
        c->arr[c->n].index = index;                                                              \
        return &c->arr[c->n++];                                                                  \
    }
SLOT_ARRAY(c, nets, n_nets, struct vm_net)
SLOT_ARRAY(c, hostpcis, n_hostpcis, struct vm_hostpci)
SLOT_ARRAY(c, usbs, n_usbs, struct vm_usb)

static struct vm_disk *slot_disk(struct vm_config *c, enum vm_bus bus, int index, bool create,
                                 bool *existed)
{
    for (size_t i = 0; i < c->n_disks; i++)
        if (c->disks[i].bus == bus && c->disks[i].index == index) {
            *existed = true;
            return &c->disks[i];
        }
    *existed = false;
    if (!create)
        return NULL;
    struct vm_disk *nv = realloc(c->disks, (c->n_disks + 1) * sizeof(*nv));
    if (!nv)
        return NULL;
    c->disks = nv;
    memset(&c->disks[c->n_disks], 0, sizeof(*nv));
    return &c->disks[c->n_disks++];
}

#define REMOVE_AT(arr, n, i) (memmove(&(arr)[i], &(arr)[(i) + 1], ((n) - (i) - 1) * sizeof(*(arr))), (n)--)

/* `vm set` completes what must be generated once and then kept: a NIC's
 * MAC address (the one it had if the slot is being replaced). */
static int complete_nets(struct vm_net *n, const struct vm_net *old, const char *key,
                         struct berr *err)
{
    if (!n->has_mac && old && old->has_mac) {
        memcpy(n->mac, old->mac, 6);
        n->has_mac = true;
    } else if (!n->has_mac) {
        if (vm_generate_mac(n->mac) < 0)
            return berr_set(err, EIO, "%s: cannot generate a MAC address", key);
        n->has_mac = true;
    }
    return 0;
}
static int complete_hostpcis(struct vm_hostpci *h, const struct vm_hostpci *old, const char *key,
                             struct berr *err)
{
    return 0;
}
static int complete_usbs(struct vm_usb *u, const struct vm_usb *old, const char *key,
                         struct berr *err)
{
    return 0;
}

static int set_device(struct vm_config *c, enum key k, int idx, const char *key, const char *v,
                      bool replace, struct berr *err)
{
    bool existed = false;
    int r;
    bool del = !*v;
    if (k <= K_IDE) {
        enum vm_bus bus = (enum vm_bus)(k - K_SCSI);
        struct vm_disk nd, *d = slot_disk(c, bus, idx, false, &existed);
        if (existed && !replace)
            return berr_set(err, EEXIST, "%s: duplicate device slot", key);
        if (del) {
            if (d) {
                vm_disk_clear(d);
                REMOVE_AT(c->disks, c->n_disks, (size_t)(d - c->disks));
            }
            return 0;
        }
        if ((r = vm_parse_disk(key, bus, idx, v, &nd, err)) < 0)
            return r;
        if (!d && !(d = slot_disk(c, bus, idx, true, &existed))) {
            vm_disk_clear(&nd);
            return berr_set(err, ENOMEM, "out of memory");
        }
        vm_disk_clear(d);
        *d = nd;
        return 0;
    }
    if (k == K_SERIAL) {
        if (c->serial_socket[idx] && !replace)
            return berr_set(err, EEXIST, "%s: duplicate device slot", key);
        if (!del && strcmp(v, "socket") != 0)
            return berr_set(err, EINVAL, "%s: only 'socket' is supported, not '%s'", key, v);
        c->serial_socket[idx] = !del;
        return 0;
    }
#define DEV_CASE(KIND, arr, n, type, parse, clear)                                               \
    if (k == KIND) {                                                                             \
        type nd, *d = slot_##arr(c, idx, false, &existed);                                       \
        if (existed && !replace)                                                                 \
            return berr_set(err, EEXIST, "%s: duplicate device slot", key);                      \
        if (del) {                                                                               \
            if (d) {                                                                             \
                clear(d);                                                                        \
                REMOVE_AT(c->arr, c->n, (size_t)(d - c->arr));                                   \
            }                                                                                    \
            return 0;                                                                            \
        }                                                                                        \
        if ((r = parse(key, idx, v, &nd, err)) < 0)                                              \
            return r;                                                                            \
        if (replace && (r = complete_##arr(&nd, d, key, err)) < 0) {                                \
            clear(&nd);                                                                          \
            return r;                                                                            \
        }                                                                                        \
        if (!d && !(d = slot_##arr(c, idx, true, &existed))) {                                   \
            clear(&nd);                                                                          \
            return berr_set(err, ENOMEM, "out of memory");                                       \
        }                                                                                        \
        clear(d);                                                                                \
        *d = nd;                                                                                 \
        return 0;                                                                                \
    }
#define NOCLEAR(x) ((void)(x))
    DEV_CASE(K_NET, nets, n_nets, struct vm_net, vm_parse_net, NOCLEAR)
    DEV_CASE(K_HOSTPCI, hostpcis, n_hostpcis, struct vm_hostpci, vm_parse_hostpci, vm_hostpci_clear)
    DEV_CASE(K_USB, usbs, n_usbs, struct vm_usb, vm_parse_usb, NOCLEAR)
    return berr_set(err, EINVAL, "%s: internal error", key);
}

/* Is the scalar key k already set in c? (for duplicate detection) */
static bool scalar_is_set(const struct vm_config *c, enum key k)
{
    switch (k) {
    case K_NAME: return c->name;
    case K_MEMORY: return c->memory >= 0;
    case K_BALLOON: return c->balloon >= 0;
    case K_CORES: return c->cores >= 0;
    case K_SOCKETS: return c->sockets >= 0;
    case K_CPU: return c->cpu;
    case K_MACHINE: return c->machine;
    case K_BIOS: return c->bios;
    case K_SCSIHW: return c->scsihw;
    case K_ACCEL: return c->accel_set;
    case K_VGA: return c->vga;
    case K_OSTYPE: return c->ostype;
    case K_ONBOOT: return c->onboot >= 0;
    case K_NUMA: return c->numa >= 0;
    case K_AGENT: return c->agent.enabled >= 0;
    case K_BOOT: return c->boot_set;
    case K_KERNEL: return c->kernel;
    case K_INITRD: return c->initrd;
    case K_APPEND: return c->append;
    case K_DESCRIPTION: return c->description;
    case K_SMBIOS1: return c->smbios1;
    case K_VMGENID: return c->vmgenid;
    case K_META: return c->meta;
    case K_EFIDISK0: return c->efidisk.present;
    case K_TPMSTATE0: return c->tpmstate.present;
    default: return false;
    }
}

static void scalar_unset(struct vm_config *c, enum key k)
{
    struct vm_config fresh;
    vm_config_init(&fresh);
    char **s = NULL;
    switch (k) {
    case K_NAME: s = &c->name; break;
    case K_MEMORY: c->memory = VM_UNSET; break;
    case K_BALLOON: c->balloon = VM_UNSET; break;
    case K_CORES: c->cores = VM_UNSET; break;
    case K_SOCKETS: c->sockets = VM_UNSET; break;
    case K_CPU: s = &c->cpu; free(c->cpu_flags); c->cpu_flags = NULL; break;
    case K_MACHINE: c->machine = VM_MACHINE_UNSET; break;
    case K_BIOS: c->bios = VM_BIOS_UNSET; break;
    case K_SCSIHW: c->scsihw = VM_SCSIHW_UNSET; break;
    case K_ACCEL: c->accel = VM_ACCEL_AUTO; c->accel_set = false; break;
    case K_VGA: c->vga = VM_VGA_UNSET; c->vga_memory = VM_UNSET; break;
    case K_OSTYPE: s = &c->ostype; break;
    case K_ONBOOT: c->onboot = VM_UNSET; break;
    case K_NUMA: c->numa = VM_UNSET; break;
    case K_AGENT: c->agent = fresh.agent; break;
    case K_BOOT: strv_free_all(c->boot_order); c->boot_order = NULL; c->boot_set = false; break;
    case K_KERNEL: s = &c->kernel; break;
    case K_INITRD: s = &c->initrd; break;
    case K_APPEND: s = &c->append; break;
    case K_DESCRIPTION: s = &c->description; break;
    case K_SMBIOS1: s = &c->smbios1; break;
    case K_VMGENID: s = &c->vmgenid; break;
    case K_META: s = &c->meta; break;
    case K_EFIDISK0: memset(&c->efidisk, 0, sizeof(c->efidisk)); break;
    case K_TPMSTATE0: memset(&c->tpmstate, 0, sizeof(c->tpmstate)); break;
    default: break;
    }
    if (s) {
        free(*s);
        *s = NULL;
    }
}

int vm_config_set_key(struct vm_config *c, const char *key, const char *v, bool replace,
                      struct berr *err)
{
    int k = vm_lookup(key, scalar_keys);
    if (k >= 0) {
        if (!replace && scalar_is_set(c, (enum key)k))
            return berr_set(err, EEXIST, "%s: duplicate key", key);
        if (!*v) {
            if (!replace)
                return berr_set(err, EINVAL, "%s: empty value", key);
            scalar_unset(c, (enum key)k);
            return 0;
        }
        return set_scalar(c, (enum key)k, key, v, replace, err);
    }
    char fam[16];
    int idx;
    if (vm_split_slot(key, fam, sizeof fam, &idx) && (k = vm_lookup(fam, families)) >= 0) {
        if (idx >= family_max[k])
            return berr_set(err, EINVAL, "%s: slot out of range (%s0..%s%d)", key, fam, fam,
                            family_max[k] - 1);
        if (!*v && !replace)
            return berr_set(err, EINVAL, "%s: empty value", key);
        return set_device(c, (enum key)(K_SCSI + k), idx, key, v, replace, err);
    }
    return vm_err_unknown(err, key, "key", key, all_keys);
}

int vm_config_set(struct vm_config *c, const char *key, const char *value, struct berr *err)
{
    return vm_config_set_key(c, key, value ? value : "", true, err);
}
