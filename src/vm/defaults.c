/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A new VM's defaults (see defaults.h and docs/VMS.md for the reasons). */
#include "vm/defaults.h"
#include "vm/config_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int vm_generate_mac(uint8_t mac[6])
{
    mac[0] = 0xBC;
    mac[1] = 0x24;
    mac[2] = 0x11;
    return random_bytes(mac + 3, 3);
}

int vm_generate_uuid(char *buf, size_t len)
{
    uint8_t u[16];
    int r = random_bytes(u, sizeof u);
    if (r < 0)
        return r;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    snprintf(buf, len,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    return 0;
}

static int setf(struct vm_config *c, const char *key, struct berr *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int setf(struct vm_config *c, const char *key, struct berr *err, const char *fmt, ...)
{
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    return vm_config_set(c, key, v, err);
}

int vm_config_defaults(struct vm_config *c, const struct vm_defaults_opts *o, struct berr *err)
{
    vm_config_init(c);
    unsigned host = o->host_cores;
    if (!host) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        host = n > 0 ? (unsigned)n : 1;
    }
    unsigned cores = host / 2 ? host / 2 : 1;
    if (cores > VM_CORES_MAX)
        cores = VM_CORES_MAX;
    char uuid[40], genid[40];
    uint8_t mac[6];
    int r;
    if (vm_generate_uuid(uuid, sizeof uuid) < 0 || vm_generate_uuid(genid, sizeof genid) < 0 ||
        vm_generate_mac(mac) < 0)
        return berr_set(err, EIO, "cannot get random bytes for the VM's MAC/UUID");
    char macs[18];
    vm_format_mac(mac, macs, sizeof macs);
    const char *bridge = o->bridge ? o->bridge : VM_DEFAULT_BRIDGE;
    if ((r = setf(c, "machine", err, "q35")) < 0 || (r = setf(c, "bios", err, "ovmf")) < 0 ||
        (r = setf(c, "scsihw", err, "virtio-scsi-single")) < 0 ||
        (r = setf(c, "memory", err, "%d", VM_DEFAULT_MEMORY)) < 0 ||
        (r = setf(c, "cores", err, "%u", cores)) < 0 || (r = setf(c, "sockets", err, "1")) < 0 ||
        (r = setf(c, "agent", err, "1")) < 0 || (r = setf(c, "ostype", err, "l26")) < 0 ||
        (r = setf(c, "smbios1", err, "uuid=%s", uuid)) < 0 ||
        (r = setf(c, "vmgenid", err, "%s", genid)) < 0)
        goto fail;
    if (o->name && (r = setf(c, "name", err, "%s", o->name)) < 0)
        goto fail;
    if (*bridge && (r = setf(c, "net0", err, "virtio=%s,bridge=%s", macs, bridge)) < 0)
        goto fail;
    if (o->pool) {
        if ((r = setf(c, "efidisk0", err, "%s:vm-%u-efidisk0,efitype=4m,pre-enrolled-keys=0,size=%u",
                      o->pool, o->vmid, VM_EFIVARS_4M_SIZE)) < 0 ||
            (r = setf(c, "tpmstate0", err, "%s:vm-%u-tpmstate0,size=%u,version=v2.0", o->pool,
                      o->vmid, VM_TPMSTATE_SIZE)) < 0)
            goto fail;
        if (o->disk_size &&
            ((r = setf(c, "scsi0", err, "%s:vm-%u-disk-0,discard=on,iothread=1,size=%llu", o->pool,
                       o->vmid, (unsigned long long)o->disk_size)) < 0 ||
             (r = setf(c, "boot", err, "order=scsi0%s", *bridge ? ";net0" : "")) < 0))
            goto fail;
    } else {
        /* no pool: no efidisk, so UEFI cannot keep its variables */
        if ((r = setf(c, "bios", err, "seabios")) < 0)
            goto fail;
    }
    return 0;
fail:
    vm_config_free(c);
    return r;
}

void vm_ovmf_files(const struct vm_efidisk *e, const char *ovmf_dir, struct vm_ovmf_files *out)
{
    const char *d = ovmf_dir ? ovmf_dir : VM_OVMF_DIR;
    bool m4 = e->efitype_4m != 0; /* unset: 4m, what berth creates */
    out->secure = m4 && e->pre_enrolled_keys == 1;
    out->vars_size = m4 ? VM_EFIVARS_4M_SIZE : VM_EFIVARS_2M_SIZE;
    if (out->secure) {
        snprintf(out->code, sizeof out->code, "%s/OVMF_CODE_4M.secboot.fd", d);
        snprintf(out->vars_template, sizeof out->vars_template, "%s/OVMF_VARS_4M.ms.fd", d);
    } else {
        snprintf(out->code, sizeof out->code, "%s/OVMF_CODE%s.fd", d, m4 ? "_4M" : "");
        snprintf(out->vars_template, sizeof out->vars_template, "%s/OVMF_VARS%s.fd", d, m4 ? "_4M" : "");
    }
}
