/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parsers and canonical writers for the device values of a VM config: disks
 * (scsiN/virtioN/sataN/ideN), efidisk0, tpmstate0, netN, hostpciN, usbN,
 * agent and boot.  Every value is a Proxmox property string; unknown options
 * get a "did you mean" from the option table of that value type. */
#include "vm/config_int.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const vm_nic_models[] = {"virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", NULL};

int vm_parse_volref(const char *key, const char *s, struct vm_volref *v, struct berr *err)
{
    const char *colon = strchr(s, ':');
    if (!colon)
        return berr_set(err, EINVAL, "%s: '%s' is not a volume (expected POOL:VOLUME)", key, s);
    size_t pl = (size_t)(colon - s);
    if (pl == 0 || pl >= sizeof(v->pool) || strlen(colon + 1) >= sizeof(v->vol))
        return berr_set(err, EINVAL, "%s: '%s' is not a volume (expected POOL:VOLUME)", key, s);
    memcpy(v->pool, s, pl);
    v->pool[pl] = '\0';
    strcpy(v->vol, colon + 1);
    struct berr e = {0};
    if (validate_name(v->pool, "pool", &e) < 0 || validate_name(v->vol, "volume", &e) < 0)
        return berr_set(err, EINVAL, "%s: %s", key, e.msg);
    return 0;
}

void vm_format_volref(struct sbuf *b, const struct vm_volref *v)
{
    sbuf_printf(b, "%s:%s", v->pool, v->vol);
}

void vm_format_size(struct sbuf *b, uint64_t bytes)
{
    static const char u[] = "KMGTP";
    int i = -1;
    while (i < 4 && bytes >= 1024 && bytes % 1024 == 0) {
        bytes /= 1024;
        i++;
    }
    if (i < 0)
        sbuf_printf(b, "%llu", (unsigned long long)bytes);
    else
        sbuf_printf(b, "%llu%c", (unsigned long long)bytes, u[i]);
}

static int parse_size_opt(const char *key, const char *s, uint64_t *out, struct berr *err)
{
    struct berr e = {0};
    if (parse_size(s, out, &e) < 0 || *out == 0)
        return berr_set(err, EINVAL, "%s: invalid size '%s'", key, s);
    return 0;
}

static bool abs_path_ok(const char *s)
{
    return s[0] == '/' && strlen(s) < 4096 && vm_text_ok(s) && !strstr(s, "/../");
}

/* ---- disks ---------------------------------------------------------- */

static const char *const disk_opts[] = {"discard", "iothread", "ssd", "cache", "media", "size",
                                        "backup", NULL};
static const char *const cache_modes[] = {"", "none", "writeback", "writethrough", "directsync",
                                          "unsafe", NULL};

void vm_disk_clear(struct vm_disk *d)
{
    free(d->path);
    d->path = NULL;
}

int vm_parse_disk(const char *key, enum vm_bus bus, int index, const char *val, struct vm_disk *d,
                  struct berr *err)
{
    struct props p;
    int r = props_split(val, key, &p, err);
    if (r < 0)
        return r;
    memset(d, 0, sizeof(*d));
    d->bus = bus;
    d->index = index;
    d->iothread = d->ssd = d->backup = VM_UNSET;
    const char *src = NULL;
    bool media_set = false;
    for (size_t i = 0; i < p.n; i++) {
        const char *k = p.v[i].key, *v = p.v[i].val;
        long n;
        if (!k) {
            if (i != 0) {
                r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, v);
                goto out;
            }
            src = v;
            continue;
        }
        switch (vm_lookup(k, disk_opts)) {
        case 0:
            if (strcmp(v, "on") == 0)
                d->discard = VM_DISCARD_ON;
            else if (strcmp(v, "ignore") == 0)
                d->discard = VM_DISCARD_IGNORE;
            else {
                r = berr_set(err, EINVAL, "%s: discard must be 'on' or 'ignore', not '%s'", key, v);
                goto out;
            }
            break;
        case 1: r = vm_parse_bool(key, k, v, &d->iothread, err); break;
        case 2: r = vm_parse_bool(key, k, v, &d->ssd, err); break;
        case 3:
            n = vm_lookup(v, cache_modes);
            if (n <= 0) {
                r = vm_err_unknown(err, key, "cache mode", v, cache_modes + 1);
                goto out;
            }
            d->cache = (enum vm_cache)n;
            break;
        case 4:
            if (strcmp(v, "cdrom") == 0)
                d->cdrom = true;
            else if (strcmp(v, "disk") != 0) {
                r = berr_set(err, EINVAL, "%s: media must be 'disk' or 'cdrom', not '%s'", key, v);
                goto out;
            }
            media_set = true;
            break;
        case 5: r = parse_size_opt(key, v, &d->size, err); break;
        case 6: r = vm_parse_bool(key, k, v, &d->backup, err); break;
        default: r = vm_err_unknown(err, key, "option", k, disk_opts); goto out;
        }
        if (r < 0)
            goto out;
    }
    (void)media_set;
    if (!src) {
        r = berr_set(err, EINVAL, "%s: missing the volume (expected POOL:VOLUME[,options])", key);
        goto out;
    }
    if (strcmp(src, "none") == 0) {
        d->kind = VM_DISK_NONE;
    } else if (src[0] == '/') {
        if (!abs_path_ok(src)) {
            r = berr_set(err, EINVAL, "%s: invalid image path '%s'", key, src);
            goto out;
        }
        d->kind = VM_DISK_ISO;
        d->path = strdup(src);
        if (!d->path) {
            r = berr_set(err, ENOMEM, "out of memory");
            goto out;
        }
    } else {
        d->kind = VM_DISK_VOLUME;
        r = vm_parse_volref(key, src, &d->vol, err);
        if (r < 0)
            goto out;
    }
    if (d->kind != VM_DISK_VOLUME && !d->cdrom) {
        r = berr_set(err, EINVAL, "%s: '%s' needs media=cdrom (only a cdrom can be a file or empty)",
                     key, src);
        goto out;
    }
    if (d->cdrom && bus == VM_BUS_VIRTIO) {
        r = berr_set(err, EINVAL, "%s: a virtio disk cannot be a cdrom (use ide2 or scsiN)", key);
        goto out;
    }
    if (d->ssd == 1 && bus == VM_BUS_VIRTIO) {
        r = berr_set(err, EINVAL, "%s: ssd=1 is not available on virtio disks (use scsiN)", key);
        goto out;
    }
    if (d->cdrom && d->discard == VM_DISCARD_ON) {
        r = berr_set(err, EINVAL, "%s: discard=on makes no sense on a cdrom", key);
        goto out;
    }
    if (d->iothread == 1 && (bus == VM_BUS_SATA || bus == VM_BUS_IDE)) {
        r = berr_set(err, EINVAL, "%s: iothread=1 needs a scsi or virtio disk", key);
        goto out;
    }
    r = 0;
out:
    if (r < 0)
        vm_disk_clear(d);
    props_free(&p);
    return r;
}

void vm_format_disk(struct sbuf *b, const struct vm_disk *d)
{
    switch (d->kind) {
    case VM_DISK_VOLUME: vm_format_volref(b, &d->vol); break;
    case VM_DISK_ISO: sbuf_add(b, d->path); break;
    case VM_DISK_NONE: sbuf_add(b, "none"); break;
    }
    if (d->backup >= 0)
        sbuf_printf(b, ",backup=%d", d->backup);
    if (d->cache)
        sbuf_printf(b, ",cache=%s", cache_modes[d->cache]);
    if (d->discard)
        sbuf_printf(b, ",discard=%s", d->discard == VM_DISCARD_ON ? "on" : "ignore");
    if (d->iothread >= 0)
        sbuf_printf(b, ",iothread=%d", d->iothread);
    if (d->cdrom)
        sbuf_add(b, ",media=cdrom");
    if (d->size) {
        sbuf_add(b, ",size=");
        vm_format_size(b, d->size);
    }
    if (d->ssd >= 0)
        sbuf_printf(b, ",ssd=%d", d->ssd);
}

/* ---- efidisk0, tpmstate0 --------------------------------------------- */

static const char *const efi_opts[] = {"efitype", "pre-enrolled-keys", "size", NULL};

int vm_parse_efidisk(const char *key, const char *val, struct vm_efidisk *e, struct berr *err)
{
    struct props p;
    int r = props_split(val, key, &p, err);
    if (r < 0)
        return r;
    memset(e, 0, sizeof(*e));
    e->efitype_4m = e->pre_enrolled_keys = VM_UNSET;
    bool have = false;
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        const char *k = p.v[i].key, *v = p.v[i].val;
        if (!k) {
            if (i != 0)
                r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, v);
            else
                r = vm_parse_volref(key, v, &e->vol, err);
            have = true;
            continue;
        }
        switch (vm_lookup(k, efi_opts)) {
        case 0:
            if (strcmp(v, "4m") == 0)
                e->efitype_4m = 1;
            else if (strcmp(v, "2m") == 0)
                e->efitype_4m = 0;
            else
                r = berr_set(err, EINVAL, "%s: efitype must be '4m' or '2m', not '%s'", key, v);
            break;
        case 1: r = vm_parse_bool(key, k, v, &e->pre_enrolled_keys, err); break;
        case 2: r = parse_size_opt(key, v, &e->size, err); break;
        default: r = vm_err_unknown(err, key, "option", k, efi_opts);
        }
    }
    if (r >= 0 && !have)
        r = berr_set(err, EINVAL, "%s: missing the volume (expected POOL:VOLUME[,options])", key);
    props_free(&p);
    if (r < 0)
        return r;
    e->present = true;
    return 0;
}

void vm_format_efidisk(struct sbuf *b, const struct vm_efidisk *e)
{
    vm_format_volref(b, &e->vol);
    if (e->efitype_4m >= 0)
        sbuf_printf(b, ",efitype=%s", e->efitype_4m ? "4m" : "2m");
    if (e->pre_enrolled_keys >= 0)
        sbuf_printf(b, ",pre-enrolled-keys=%d", e->pre_enrolled_keys);
    if (e->size) {
        sbuf_add(b, ",size=");
        vm_format_size(b, e->size);
    }
}

static const char *const tpm_opts[] = {"version", "size", NULL};

int vm_parse_tpmstate(const char *key, const char *val, struct vm_tpmstate *t, struct berr *err)
{
    struct props p;
    int r = props_split(val, key, &p, err);
    if (r < 0)
        return r;
    memset(t, 0, sizeof(*t));
    t->version = VM_UNSET;
    bool have = false;
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        const char *k = p.v[i].key, *v = p.v[i].val;
        if (!k) {
            if (i != 0)
                r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, v);
            else
                r = vm_parse_volref(key, v, &t->vol, err);
            have = true;
            continue;
        }
        switch (vm_lookup(k, tpm_opts)) {
        case 0:
            if (strcmp(v, "v2.0") == 0)
                t->version = 20;
            else if (strcmp(v, "v1.2") == 0)
                t->version = 12;
            else
                r = berr_set(err, EINVAL, "%s: version must be 'v2.0' or 'v1.2', not '%s'", key, v);
            break;
        case 1: r = parse_size_opt(key, v, &t->size, err); break;
        default: r = vm_err_unknown(err, key, "option", k, tpm_opts);
        }
    }
    if (r >= 0 && !have)
        r = berr_set(err, EINVAL, "%s: missing the volume (expected POOL:VOLUME,version=v2.0)", key);
    props_free(&p);
    if (r < 0)
        return r;
    t->present = true;
    return 0;
}

void vm_format_tpmstate(struct sbuf *b, const struct vm_tpmstate *t)
{
    vm_format_volref(b, &t->vol);
    if (t->size) {
        sbuf_add(b, ",size=");
        vm_format_size(b, t->size);
    }
    if (t->version > 0)
        sbuf_printf(b, ",version=%s", t->version == 20 ? "v2.0" : "v1.2");
}

/* ---- netN ------------------------------------------------------------ */

static const char *const net_opts[] = {"bridge", "firewall", "tag", "link_down", "queues", "mtu",
                                       "macaddr", "model", NULL};

const char *vm_format_mac(const uint8_t m[6], char *buf, size_t len)
{
    snprintf(buf, len, "%02X:%02X:%02X:%02X:%02X:%02X", m[0], m[1], m[2], m[3], m[4], m[5]);
    return buf;
}

int vm_parse_mac(const char *s, uint8_t mac[6])
{
    if (strlen(s) != 17)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        const char *h = s + i * 3;
        if (!isxdigit((unsigned char)h[0]) || !isxdigit((unsigned char)h[1]) ||
            (i < 5 && h[2] != ':'))
            return -EINVAL;
        char tmp[3] = {h[0], h[1], 0};
        mac[i] = (uint8_t)strtoul(tmp, NULL, 16);
    }
    if (mac[0] & 1)
        return -EINVAL; /* multicast */
    static const uint8_t zero[6];
    if (memcmp(mac, zero, 6) == 0)
        return -EINVAL;
    return 0;
}

static int net_mac(const char *key, const char *v, struct vm_net *n, struct berr *err)
{
    if (vm_parse_mac(v, n->mac) < 0)
        return berr_set(err, EINVAL,
                        "%s: invalid MAC address '%s' (expected XX:XX:XX:XX:XX:XX, unicast, not zero)",
                        key, v);
    n->has_mac = true;
    return 0;
}

static bool ifname_ok(const char *s)
{
    size_t l = strlen(s);
    if (l == 0 || l > 15)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return false;
    return true;
}

int vm_parse_net(const char *key, int index, const char *val, struct vm_net *n, struct berr *err)
{
    struct props p;
    int r = props_split(val, key, &p, err);
    if (r < 0)
        return r;
    memset(n, 0, sizeof(*n));
    n->index = index;
    n->firewall = n->tag = n->link_down = n->queues = n->mtu = VM_UNSET;
    bool have_model = false;
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        const char *k = p.v[i].key, *v = p.v[i].val;
        long num;
        int model = vm_lookup(k ? k : v, vm_nic_models);
        if (i == 0 && model >= 0) {
            n->model = (enum vm_nic_model)model;
            have_model = true;
            if (k)
                r = net_mac(key, v, n, err);
            continue;
        }
        if (!k) {
            if (i == 0)
                r = vm_err_unknown(err, key, "NIC model", v, vm_nic_models);
            else
                r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, v);
            break;
        }
        switch (vm_lookup(k, net_opts)) {
        case 0:
            if (!ifname_ok(v))
                r = berr_set(err, EINVAL, "%s: invalid bridge name '%s' (1-15 of A-Z a-z 0-9 _ - .)",
                             key, v);
            else
                strcpy(n->bridge, v);
            break;
        case 1: r = vm_parse_bool(key, k, v, &n->firewall, err); break;
        case 2:
            if ((r = vm_parse_int(key, k, v, 1, 4094, &num, err)) >= 0)
                n->tag = (int)num;
            break;
        case 3: r = vm_parse_bool(key, k, v, &n->link_down, err); break;
        case 4:
            if ((r = vm_parse_int(key, k, v, 1, 64, &num, err)) >= 0)
                n->queues = (int)num;
            break;
        case 5:
            if ((r = vm_parse_int(key, k, v, 576, 65520, &num, err)) >= 0)
                n->mtu = (int)num;
            break;
        case 6:
            if (n->has_mac)
                r = berr_set(err, EINVAL, "%s: MAC address given twice", key);
            else
                r = net_mac(key, v, n, err);
            break;
        case 7:
            if (have_model)
                r = berr_set(err, EINVAL, "%s: NIC model given twice", key);
            else if ((model = vm_lookup(v, vm_nic_models)) < 0)
                r = vm_err_unknown(err, key, "NIC model", v, vm_nic_models);
            else {
                n->model = (enum vm_nic_model)model;
                have_model = true;
            }
            break;
        default: r = vm_err_unknown(err, key, "option", k, net_opts);
        }
    }
    if (r >= 0 && !have_model)
        r = berr_set(err, EINVAL, "%s: missing the NIC model (e.g. virtio,bridge=vmbr0)", key);
    if (r >= 0 && !n->bridge[0])
        r = berr_set(err, EINVAL, "%s: missing bridge= (e.g. virtio,bridge=vmbr0)", key);
    props_free(&p);
    return r < 0 ? r : 0;
}

void vm_format_net(struct sbuf *b, const struct vm_net *n)
{
    sbuf_add(b, vm_nic_models[n->model]);
    if (n->has_mac) {
        char mac[18];
        sbuf_printf(b, "=%s", vm_format_mac(n->mac, mac, sizeof mac));
    }
    sbuf_printf(b, ",bridge=%s", n->bridge);
    if (n->firewall >= 0)
        sbuf_printf(b, ",firewall=%d", n->firewall);
    if (n->link_down >= 0)
        sbuf_printf(b, ",link_down=%d", n->link_down);
    if (n->mtu >= 0)
        sbuf_printf(b, ",mtu=%d", n->mtu);
    if (n->queues >= 0)
        sbuf_printf(b, ",queues=%d", n->queues);
    if (n->tag >= 0)
        sbuf_printf(b, ",tag=%d", n->tag);
}
