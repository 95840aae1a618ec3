/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parsers and canonical writers for the passthrough values of a VM config
 * (hostpciN: a host PCI function or slot; usbN: a host USB device by
 * vendor:product or bus-port) and for agent and boot. */
#include "vm/config_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool vm_split_slot(const char *key, char *family, size_t flen, int *index)
{
    size_t i = 0;
    while (key[i] && isalpha((unsigned char)key[i]))
        i++;
    if (i == 0 || i >= flen || !key[i])
        return false;
    const char *d = key + i;
    if (d[0] == '0' && d[1])
        return false; /* "scsi01" */
    long v = 0;
    for (const char *p = d; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > 1000)
            return false;
        v = v * 10 + (*p - '0');
    }
    memcpy(family, key, i);
    family[i] = '\0';
    *index = (int)v;
    return true;
}

/* ---- hostpciN --------------------------------------------------------- */

static const char *const pci_opts[] = {"host", "pcie", "x-vga", "rombar", "romfile", NULL};

static int hexfield(const char *s, size_t len, unsigned max, unsigned *out)
{
    if (len == 0 || len > 4)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return -1;
        v = v * 16 + (unsigned)(isdigit((unsigned char)s[i]) ? s[i] - '0'
                                                              : tolower((unsigned char)s[i]) - 'a' + 10);
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* [DDDD:]BB:SS[.F] */
static int parse_pci_addr(const char *s, struct vm_hostpci *h)
{
    unsigned dom = 0, bus, slot, fn;
    const char *p = s;
    const char *c1 = strchr(p, ':');
    if (!c1)
        return -1;
    const char *c2 = strchr(c1 + 1, ':');
    if (c2) {
        if (c1 - p != 4 || hexfield(p, 4, 0xffff, &dom) < 0)
            return -1;
        p = c1 + 1;
        c1 = c2;
    }
    if (c1 - p != 2 || hexfield(p, 2, 0xff, &bus) < 0)
        return -1;
    p = c1 + 1;
    const char *dot = strchr(p, '.');
    size_t sl = dot ? (size_t)(dot - p) : strlen(p);
    if (sl != 2 || hexfield(p, 2, 0x1f, &slot) < 0)
        return -1;
    h->function = -1;
    if (dot) {
        if (strlen(dot + 1) != 1 || hexfield(dot + 1, 1, 7, &fn) < 0)
            return -1;
        h->function = (int)fn;
    }
    h->domain = dom;
    h->bus = bus;
    h->slot = slot;
    return 0;
}

void vm_hostpci_clear(struct vm_hostpci *h)
{
    free(h->romfile);
    h->romfile = NULL;
}

int vm_parse_hostpci(const char *key, int index, const char *val, struct vm_hostpci *h,
                     struct berr *err)
{
    struct props p;
    int r = props_split(val, key, &p, err);
    if (r < 0)
        return r;
    memset(h, 0, sizeof(*h));
    h->index = index;
    h->pcie = h->x_vga = h->rombar = VM_UNSET;
    bool have = false;
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        const char *k = p.v[i].key, *v = p.v[i].val;
        int opt = k ? vm_lookup(k, pci_opts) : (i == 0 ? 0 : -2);
        switch (opt) {
        case 0:
            if (have) {
                r = berr_set(err, EINVAL, "%s: host address given twice", key);
                break;
            }
            have = true;
            if (strchr(v, ';'))
                r = berr_set(err, EINVAL, "%s: multiple host devices ('%s') are not supported; use one hostpciN per device", key, v);
            else if (parse_pci_addr(v, h) < 0)
                r = berr_set(err, EINVAL, "%s: invalid PCI address '%s' (expected BB:DD.F, BB:DD or DDDD:BB:DD.F as shown by lspci -D)", key, v);
            break;
        case 1: r = vm_parse_bool(key, k, v, &h->pcie, err); break;
        case 2: r = vm_parse_bool(key, k, v, &h->x_vga, err); break;
        case 3: r = vm_parse_bool(key, k, v, &h->rombar, err); break;
        case 4:
            if (!*v || strchr(v, '/') || !vm_text_ok(v) || strlen(v) > 255)
                r = berr_set(err, EINVAL, "%s: romfile must be a file name under /usr/share/kvm, not '%s'", key, v);
            else if (!(h->romfile = strdup(v)))
                r = berr_set(err, ENOMEM, "out of memory");
            break;
        case -2: r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, v); break;
        default: r = vm_err_unknown(err, key, "option", k, pci_opts);
        }
    }
    if (r >= 0 && !have)
        r = berr_set(err, EINVAL, "%s: missing the host PCI address (e.g. 0000:01:00.0,pcie=1)", key);
    props_free(&p);
    if (r < 0) {
        vm_hostpci_clear(h);
        return r;
    }
    return 0;
}

void vm_format_hostpci(struct sbuf *b, const struct vm_hostpci *h)
{
    sbuf_printf(b, "%04x:%02x:%02x", h->domain, h->bus, h->slot);
    if (h->function >= 0)
        sbuf_printf(b, ".%d", h->function);
    if (h->pcie >= 0)
        sbuf_printf(b, ",pcie=%d", h->pcie);
    if (h->rombar >= 0)
        sbuf_printf(b, ",rombar=%d", h->rombar);
    if (h->romfile)
        sbuf_printf(b, ",romfile=%s", h->romfile);
    if (h->x_vga >= 0)
        sbuf_printf(b, ",x-vga=%d", h->x_vga);
}

/* ---- usbN --------------------------------------------------------------- */

static const char *const usb_opts[] = {"host", "usb3", NULL};

/* "VVVV:PPPP" or "BUS-PORT[.PORT]..." */
static int parse_usb_host(const char *v, struct vm_usb *u)
{
    const char *c = strchr(v, ':');
    if (c) {
        if (c - v != 4 || strlen(c + 1) != 4 || hexfield(v, 4, 0xffff, &u->vendor) < 0 ||
            hexfield(c + 1, 4, 0xffff, &u->product) < 0)
            return -1;
        u->by_id = true;
        return 0;
    }
    const char *dash = strchr(v, '-');
    if (!dash || dash == v || dash - v > 3)
        return -1;
    unsigned bus = 0;
    for (const char *p = v; p < dash; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        bus = bus * 10 + (unsigned)(*p - '0');
    }
    const char *port = dash + 1;
    size_t pl = strlen(port);
    if (bus == 0 || pl == 0 || pl >= sizeof(u->hostport))
        return -1;
    bool need_digit = true;
    for (const char *p = port; *p; p++) {
        if (isdigit((unsigned char)*p))
            need_digit = false;
        else if (*p == '.' && !need_digit)
            need_digit = true;
        else
            return -1;
    }
    if (need_digit)
        return -1;
    u->hostbus = bus;
    strcpy(u->hostport, port);
    return 0;
}

int vm_parse_usb(const char *key, int index, const char *val, struct vm_usb *u, struct berr *err)
{
    struct props p;
    int r = props_split(val, key, &p, err);
    if (r < 0)
        return r;
    memset(u, 0, sizeof(*u));
    u->index = index;
    u->usb3 = VM_UNSET;
    bool have = false;
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        const char *k = p.v[i].key, *v = p.v[i].val;
        int opt = k ? vm_lookup(k, usb_opts) : (i == 0 ? 0 : -2);
        switch (opt) {
        case 0:
            if (strcmp(v, "spice") == 0)
                r = berr_set(err, EINVAL, "%s: spice USB redirection is not supported", key);
            else if (parse_usb_host(v, u) < 0)
                r = berr_set(err, EINVAL, "%s: invalid USB host device '%s' (expected host=VVVV:PPPP as lsusb shows, or host=BUS-PORT like 1-2.3)", key, v);
            have = true;
            break;
        case 1: r = vm_parse_bool(key, k, v, &u->usb3, err); break;
        case -2: r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, v); break;
        default: r = vm_err_unknown(err, key, "option", k, usb_opts);
        }
    }
    if (r >= 0 && !have)
        r = berr_set(err, EINVAL, "%s: missing host= (host=VVVV:PPPP or host=BUS-PORT)", key);
    props_free(&p);
    return r < 0 ? r : 0;
}

void vm_format_usb(struct sbuf *b, const struct vm_usb *u)
{
    if (u->by_id)
        sbuf_printf(b, "host=%04x:%04x", u->vendor, u->product);
    else
        sbuf_printf(b, "host=%u-%s", u->hostbus, u->hostport);
    if (u->usb3 >= 0)
        sbuf_printf(b, ",usb3=%d", u->usb3);
}

/* ---- agent, boot ------------------------------------------------------- */

static const char *const agent_opts[] = {"enabled", "fstrim_cloned_disks", "type", NULL};

int vm_parse_agent(const char *key, const char *val, struct vm_agent *a, struct berr *err)
{
    struct props p;
    int r = props_split(val, key, &p, err);
    if (r < 0)
        return r;
    a->enabled = a->fstrim_cloned_disks = VM_UNSET;
    for (size_t i = 0; i < p.n && r >= 0; i++) {
        const char *k = p.v[i].key, *v = p.v[i].val;
        int opt = k ? vm_lookup(k, agent_opts) : (i == 0 ? 0 : -2);
        switch (opt) {
        case 0:
            if (a->enabled >= 0)
                r = berr_set(err, EINVAL, "%s: enabled given twice", key);
            else
                r = vm_parse_bool(key, k, v, &a->enabled, err);
            break;
        case 1: r = vm_parse_bool(key, k, v, &a->fstrim_cloned_disks, err); break;
        case 2:
            if (strcmp(v, "virtio") != 0)
                r = berr_set(err, EINVAL, "%s: only type=virtio is supported, not '%s'", key, v);
            break;
        case -2: r = berr_set(err, EINVAL, "%s: '%s' is not an option (expected name=value)", key, v); break;
        default: r = vm_err_unknown(err, key, "option", k, agent_opts);
        }
    }
    if (r >= 0 && a->enabled < 0)
        r = berr_set(err, EINVAL, "%s: missing enabled (e.g. 'agent: 1')", key);
    props_free(&p);
    return r < 0 ? r : 0;
}

void vm_format_agent(struct sbuf *b, const struct vm_agent *a)
{
    sbuf_printf(b, "%d", a->enabled);
    if (a->fstrim_cloned_disks >= 0)
        sbuf_printf(b, ",fstrim_cloned_disks=%d", a->fstrim_cloned_disks);
}

static const char *const boot_families[] = {"scsi", "virtio", "sata", "ide", "net", "hostpci", NULL};

int vm_parse_boot(const char *key, const char *val, char ***order, struct berr *err)
{
    if (strncmp(val, "order=", 6) != 0) {
        if (strchr(val, '=')) {
            char opt[32];
            snprintf(opt, sizeof opt, "%.*s", (int)(strchr(val, '=') - val), val);
            static const char *const o[] = {"order", NULL};
            return vm_err_unknown(err, key, "option", opt, o);
        }
        return berr_set(err, EINVAL, "%s: expected order=DEV;DEV... (e.g. order=scsi0;ide2;net0), not '%s'", key, val);
    }
    struct strv sv = {0};
    const char *p = val + 6;
    while (*p) {
        const char *e = strchr(p, ';');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char dev[32], fam[16];
        int idx;
        if (l == 0 || l >= sizeof dev) {
            strv_free_all(sv.v);
            return berr_set(err, EINVAL, "%s: empty or overlong device in '%s'", key, val);
        }
        memcpy(dev, p, l);
        dev[l] = '\0';
        if (!vm_split_slot(dev, fam, sizeof fam, &idx) || vm_lookup(fam, boot_families) < 0) {
            strv_free_all(sv.v);
            return berr_set(err, EINVAL, "%s: '%s' is not a bootable device key (scsiN, virtioN, sataN, ideN, netN, hostpciN)", key, dev);
        }
        for (size_t i = 0; i < sv.n; i++)
            if (strcmp(sv.v[i], dev) == 0) {
                strv_free_all(sv.v);
                return berr_set(err, EINVAL, "%s: '%s' listed twice", key, dev);
            }
        strv_add(&sv, dev);
        p += l;
        if (*p == ';')
            p++;
    }
    if (sv.oom) {
        strv_free_all(sv.v);
        return berr_set(err, ENOMEM, "out of memory");
    }
    if (!sv.v) {
        /* "order=" : an empty order is allowed and means "no boot devices" */
        sv.v = calloc(1, sizeof(char *));
        if (!sv.v)
            return berr_set(err, ENOMEM, "out of memory");
    }
    *order = sv.v;
    return 0;
}
