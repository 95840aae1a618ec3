/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QEMU arguments for a VM's devices: disks (NBD blockdevs on berthd's socket
 * behind virtio-scsi / lsi / virtio-blk / AHCI / IDE), ISO cdroms, tap NICs,
 * and host passthrough (vfio-pci under pcie-root-ports, usb-host on xhci). */
#include "vm/argv_int.h"
#include "vm/config_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const nic_devices[] = {"virtio-net-pci", "e1000", "e1000e", "rtl8139", "vmxnet3"};

static void nbd_blockdev(struct argv_state *s, const char *node, const struct vm_volref *v,
                         bool ro, enum vm_discard discard, enum vm_cache cache)
{
    struct sbuf b = {0};
    sbuf_printf(&b, "driver=nbd,node-name=%s,server.type=unix,server.path=", node);
    sbuf_add_qemu(&b, s->ctx->nbd_socket);
    /* berthd restarting (or an upgrade) drops the connection: QEMU pauses the
     * requests and reconnects instead of failing them to the guest */
    sbuf_printf(&b, ",export=%s/%s,reconnect-delay=%d", v->pool, v->vol, VM_NBD_RECONNECT_DELAY);
    if (ro)
        sbuf_add(&b, ",read-only=on");
    else if (discard == VM_DISCARD_ON)
        sbuf_add(&b, ",discard=unmap,detect-zeroes=unmap");
    else
        sbuf_add(&b, ",discard=ignore");
    if (cache == VM_CACHE_UNSAFE)
        sbuf_add(&b, ",cache.no-flush=on");
    strv_add(&s->sv, "-blockdev");
    strv_take(&s->sv, sbuf_steal(&b));
}

/* The backing node of a disk; false if the drive is empty (cdrom "none"). */
static bool disk_backend(struct argv_state *s, const struct vm_disk *d, const char *key)
{
    char node[32];
    snprintf(node, sizeof node, "drive-%s", key);
    if (d->kind == VM_DISK_NONE)
        return false;
    if (d->kind == VM_DISK_VOLUME) {
        nbd_blockdev(s, node, &d->vol, d->cdrom, d->discard, d->cache);
        return true;
    }
    struct sbuf b = {0};
    sbuf_printf(&b, "driver=file,node-name=%s-file,read-only=on,filename=", node);
    sbuf_add_qemu(&b, d->path);
    strv_add(&s->sv, "-blockdev");
    strv_take(&s->sv, sbuf_steal(&b));
    argv_opt(s, "-blockdev", "driver=raw,node-name=%s,file=%s-file,read-only=on", node, node);
    return true;
}

/* Common tail of a disk -device: drive, id, cache, ssd, bootindex. */
static void disk_tail(struct argv_state *s, struct sbuf *b, const struct vm_disk *d,
                      const char *key, bool has_drive)
{
    if (has_drive)
        sbuf_printf(b, ",drive=drive-%s", key);
    sbuf_printf(b, ",id=%s", key);
    if (!d->cdrom && (d->cache == VM_CACHE_WRITETHROUGH || d->cache == VM_CACHE_DIRECTSYNC))
        sbuf_add(b, ",write-cache=off");
    if (!d->cdrom && d->ssd == 1)
        sbuf_add(b, ",rotation_rate=1");
    argv_bootindex(s, b, key);
}

static void scsi_disk(struct argv_state *s, const struct vm_disk *d, const char *key,
                      bool *lsi_ctrl, bool *vpci_ctrl)
{
    enum vm_scsihw hw = vm_config_scsihw(s->c);
    struct sbuf b = {0};
    bool drive = disk_backend(s, d, key);
    const char *dev = d->cdrom ? "scsi-cd" : "scsi-hd";
    if (hw == VM_SCSIHW_VIRTIO_SINGLE) {
        /* one controller per disk, so each disk can have its own iothread */
        if (d->iothread == 1) {
            argv_opt(s, "-object", "iothread,id=iothread-virtioscsi%d", d->index);
            argv_opt(s, "-device", "virtio-scsi-pci,id=virtioscsi%d,iothread=iothread-virtioscsi%d",
                     d->index, d->index);
        } else {
            argv_opt(s, "-device", "virtio-scsi-pci,id=virtioscsi%d", d->index);
        }
        s->pci++;
        sbuf_printf(&b, "%s,bus=virtioscsi%d.0,channel=0,scsi-id=0,lun=%d", dev, d->index, d->index);
    } else if (hw == VM_SCSIHW_VIRTIO_PCI) {
        if (!*vpci_ctrl) {
            argv_opt(s, "-device", "virtio-scsi-pci,id=scsihw0");
            s->pci++;
            *vpci_ctrl = true;
        }
        sbuf_printf(&b, "%s,bus=scsihw0.0,channel=0,scsi-id=%d,lun=0", dev, d->index);
    } else {
        /* lsi53c895a: 7 targets per controller */
        int ctrl = d->index / 7;
        if (!lsi_ctrl[ctrl]) {
            argv_opt(s, "-device", "lsi,id=scsihw%d", ctrl);
            s->pci++;
            lsi_ctrl[ctrl] = true;
        }
        sbuf_printf(&b, "%s,bus=scsihw%d.0,scsi-id=%d", dev, ctrl, d->index % 7);
    }
    disk_tail(s, &b, d, key, drive);
    strv_add(&s->sv, "-device");
    strv_take(&s->sv, sbuf_steal(&b));
}

void argv_disks(struct argv_state *s)
{
    const struct vm_config *c = s->c;
    bool lsi_ctrl[(VM_MAX_SCSI + 6) / 7] = {0}, vpci_ctrl = false, ahci = false;
    char key[16];
    /* deterministic order: by bus, then slot */
    for (int bus = VM_BUS_SCSI; bus <= VM_BUS_IDE; bus++)
        for (int idx = 0; idx < VM_MAX_SCSI; idx++) {
            const struct vm_disk *d = vm_config_find_disk(c, (enum vm_bus)bus, idx);
            if (!d)
                continue;
            vm_disk_key(d, key, sizeof key);
            if (d->bus == VM_BUS_SCSI) {
                scsi_disk(s, d, key, lsi_ctrl, &vpci_ctrl);
                continue;
            }
            struct sbuf b = {0};
            bool drive = disk_backend(s, d, key);
            if (d->bus == VM_BUS_VIRTIO) {
                if (d->iothread == 1)
                    argv_opt(s, "-object", "iothread,id=iothread-%s", key);
                sbuf_add(&b, "virtio-blk-pci");
                if (d->iothread == 1)
                    sbuf_printf(&b, ",iothread=iothread-%s", key);
                s->pci++;
            } else if (d->bus == VM_BUS_SATA) {
                if (!ahci) {
                    argv_opt(s, "-device", "ahci,id=ahci0");
                    s->pci++;
                    ahci = true;
                }
                sbuf_printf(&b, "%s,bus=ahci0.%d", d->cdrom ? "ide-cd" : "ide-hd", d->index);
            } else {
                /* q35: the ICH9 AHCI ports ide.0-5, one unit each; pc: PIIX ide.0/1, 2 units */
                int ctrl = s->q35 ? d->index : d->index / 2, unit = s->q35 ? 0 : d->index % 2;
                sbuf_printf(&b, "%s,bus=ide.%d,unit=%d", d->cdrom ? "ide-cd" : "ide-hd", ctrl, unit);
            }
            disk_tail(s, &b, d, key, drive);
            strv_add(&s->sv, "-device");
            strv_take(&s->sv, sbuf_steal(&b));
        }
}

void vm_tap_name(uint32_t vmid, int n, char *buf, size_t len)
{
    snprintf(buf, len, "tap%ui%d", vmid, n);
}

void argv_nets(struct argv_state *s)
{
    for (int idx = 0; idx < VM_MAX_NET; idx++) {
        const struct vm_net *n = NULL;
        for (size_t i = 0; i < s->c->n_nets; i++)
            if (s->c->nets[i].index == idx)
                n = &s->c->nets[i];
        if (!n)
            continue;
        if (!n->has_mac) {
            argv_fail(s, EINVAL, "net%d: no MAC address (berth writes one into the config when the NIC is added)", idx);
            return;
        }
        char tap[16], mac[18], key[16];
        vm_tap_name(s->ctx->vmid, idx, tap, sizeof tap);
        snprintf(key, sizeof key, "net%d", idx);
        bool virtio = n->model == VM_NIC_VIRTIO;
        struct sbuf b = {0};
        sbuf_printf(&b, "tap,id=%s,ifname=%s,script=no,downscript=no", key, tap);
        if (virtio && s->ctx->accel == VM_ACCEL_KVM)
            sbuf_add(&b, ",vhost=on");
        if (virtio && n->queues > 1)
            sbuf_printf(&b, ",queues=%d", n->queues);
        strv_add(&s->sv, "-netdev");
        strv_take(&s->sv, sbuf_steal(&b));
        sbuf_printf(&b, "%s,netdev=%s,mac=%s,id=%s", nic_devices[n->model], key,
                    vm_format_mac(n->mac, mac, sizeof mac), key);
        if (virtio && n->queues > 1)
            sbuf_printf(&b, ",mq=on,vectors=%d", 2 * n->queues + 2);
        if (virtio && n->mtu > 0)
            sbuf_printf(&b, ",host_mtu=%d", n->mtu);
        argv_bootindex(s, &b, key);
        strv_add(&s->sv, "-device");
        strv_take(&s->sv, sbuf_steal(&b));
        s->pci++;
    }
}

static int sysfs_pci_functions(unsigned dom, unsigned bus, unsigned slot, int fns[8], void *opaque)
{
    int n = 0;
    for (int f = 0; f < 8; f++) {
        char p[96];
        struct stat st;
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%04x:%02x:%02x.%d", dom, bus, slot, f);
        if (stat(p, &st) == 0)
            fns[n++] = f;
    }
    return n;
}

void argv_hostpci(struct argv_state *s)
{
    for (int idx = 0; idx < VM_MAX_HOSTPCI && !s->rc; idx++) {
        const struct vm_hostpci *h = NULL;
        for (size_t i = 0; i < s->c->n_hostpcis; i++)
            if (s->c->hostpcis[i].index == idx)
                h = &s->c->hostpcis[i];
        if (!h)
            continue;
        int fns[8], nf = 1;
        fns[0] = h->function;
        if (h->function < 0) {
            vm_pci_functions_fn fn = s->ctx->pci_functions ? s->ctx->pci_functions : sysfs_pci_functions;
            nf = fn(h->domain, h->bus, h->slot, fns, s->ctx->opaque);
            if (nf <= 0) {
                argv_fail(s, ENODEV, "hostpci%d: no PCI device at %04x:%02x:%02x (see lspci -D)",
                          idx, h->domain, h->bus, h->slot);
                return;
            }
        }
        char bus[32] = "";
        if (h->pcie == 1) {
            argv_opt(s, "-device", "pcie-root-port,id=hostpci%d-rp,bus=pcie.0,chassis=%d,slot=%d",
                     idx, idx + 1, idx + 1);
            s->pci++;
            snprintf(bus, sizeof bus, ",bus=hostpci%d-rp,addr=0x0", idx);
        } else if (nf > 1) {
            /* all functions must share one slot: pin it (0x10 + N, kept free) */
            snprintf(bus, sizeof bus, ",bus=%s,addr=0x%x", s->q35 ? "pcie.0" : "pci.0", 0x10 + idx);
            s->pci++;
        } else {
            s->pci++;
        }
        for (int f = 0; f < nf; f++) {
            struct sbuf b = {0};
            sbuf_printf(&b, "vfio-pci,host=%04x:%02x:%02x.%d,id=hostpci%d", h->domain, h->bus,
                        h->slot, fns[f], idx);
            if (nf > 1)
                sbuf_printf(&b, ".%d", fns[f]);
            if (bus[0]) {
                sbuf_add(&b, bus);
                if (nf > 1)
                    sbuf_printf(&b, ".%d", fns[f]);
            }
            if (nf > 1 && f == 0)
                sbuf_add(&b, ",multifunction=on");
            if (h->x_vga == 1 && f == 0)
                sbuf_add(&b, ",x-vga=on");
            if (h->rombar == 0)
                sbuf_add(&b, ",rombar=0");
            if (h->romfile) {
                sbuf_add(&b, ",romfile=/usr/share/kvm/");
                sbuf_add_qemu(&b, h->romfile);
            }
            if (f == 0) {
                char key[16];
                snprintf(key, sizeof key, "hostpci%d", idx);
                argv_bootindex(s, &b, key);
            }
            strv_add(&s->sv, "-device");
            strv_take(&s->sv, sbuf_steal(&b));
        }
    }
}

void argv_usb(struct argv_state *s)
{
    if (!s->c->n_usbs)
        return;
    argv_opt(s, "-device", "qemu-xhci,id=xhci,p2=15,p3=15");
    s->pci++;
    for (int idx = 0; idx < VM_MAX_USB; idx++)
        for (size_t i = 0; i < s->c->n_usbs; i++) {
            const struct vm_usb *u = &s->c->usbs[i];
            if (u->index != idx)
                continue;
            if (u->by_id)
                argv_opt(s, "-device", "usb-host,bus=xhci.0,vendorid=0x%04x,productid=0x%04x,id=usb%d",
                         u->vendor, u->product, idx);
            else
                argv_opt(s, "-device", "usb-host,bus=xhci.0,hostbus=%u,hostport=%s,id=usb%d",
                         u->hostbus, u->hostport, idx);
        }
}
