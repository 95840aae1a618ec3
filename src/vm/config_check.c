/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Cross-key validation of a VM config: rules that no single value can check
 * (UEFI needs its vars disk, PCIe passthrough needs q35, one volume or MAC
 * used twice, boot order naming a missing device ...).  The first broken
 * rule is reported, naming the keys involved. */
#include "vm/config_int.h"

#include <stdio.h>
#include <string.h>

static bool volref_eq(const struct vm_volref *a, const struct vm_volref *b)
{
    return strcmp(a->pool, b->pool) == 0 && strcmp(a->vol, b->vol) == 0;
}

struct seen_vol {
    const char *key[VM_MAX_SCSI + VM_MAX_VIRTIO + VM_MAX_SATA + VM_MAX_IDE + 2];
    const struct vm_volref *vol[VM_MAX_SCSI + VM_MAX_VIRTIO + VM_MAX_SATA + VM_MAX_IDE + 2];
    char keybuf[VM_MAX_SCSI + VM_MAX_VIRTIO + VM_MAX_SATA + VM_MAX_IDE + 2][16];
    size_t n;
    struct berr *err;
};

static int check_vol(const char *key, const struct vm_volref *vol, void *opaque)
{
    struct seen_vol *s = opaque;
    for (size_t i = 0; i < s->n; i++)
        if (volref_eq(s->vol[i], vol))
            return berr_set(s->err, EINVAL, "%s: volume %s:%s is already used by %s", key,
                            vol->pool, vol->vol, s->key[i]);
    if (s->n >= sizeof(s->vol) / sizeof(s->vol[0]))
        return 0;
    snprintf(s->keybuf[s->n], sizeof(s->keybuf[0]), "%s", key);
    s->key[s->n] = s->keybuf[s->n];
    s->vol[s->n++] = vol;
    return 0;
}

static bool device_configured(const struct vm_config *c, const char *dev)
{
    char fam[16];
    int idx;
    if (!vm_split_slot(dev, fam, sizeof fam, &idx))
        return false;
    static const char *const buses[] = {"scsi", "virtio", "sata", "ide", NULL};
    int b = vm_lookup(fam, buses);
    if (b >= 0)
        return vm_config_find_disk(c, (enum vm_bus)b, idx) != NULL;
    if (strcmp(fam, "net") == 0) {
        for (size_t i = 0; i < c->n_nets; i++)
            if (c->nets[i].index == idx)
                return true;
    } else if (strcmp(fam, "hostpci") == 0) {
        for (size_t i = 0; i < c->n_hostpcis; i++)
            if (c->hostpcis[i].index == idx)
                return true;
    }
    return false;
}

static bool pci_overlap(const struct vm_hostpci *a, const struct vm_hostpci *b)
{
    return a->domain == b->domain && a->bus == b->bus && a->slot == b->slot &&
           (a->function < 0 || b->function < 0 || a->function == b->function);
}

int vm_config_validate(const struct vm_config *c, struct berr *err)
{
    enum vm_machine machine = vm_config_machine(c);
    int memory = vm_config_memory(c);
    int vcpus = vm_config_cores(c) * vm_config_sockets(c);
    int max_vcpus = machine == VM_MACHINE_Q35 ? 288 : 255;
    char dk[16];

    if (vcpus > max_vcpus)
        return berr_set(err, EINVAL, "cores: %d cores x %d sockets = %d vCPUs, more than machine %s allows (%d)",
                        vm_config_cores(c), vm_config_sockets(c), vcpus,
                        vm_machine_names[machine], max_vcpus);
    if (c->balloon > memory)
        return berr_set(err, EINVAL, "balloon: %d MB is more than memory (%d MB)", c->balloon, memory);
    if (c->numa == 1 && memory % vm_config_sockets(c))
        return berr_set(err, EINVAL, "numa: memory (%d MB) must divide evenly among %d sockets",
                        memory, vm_config_sockets(c));
    if (vm_config_bios(c) == VM_BIOS_OVMF && !c->efidisk.present)
        return berr_set(err, EINVAL, "bios: ovmf needs an efidisk0 (POOL:VOL,efitype=4m) to keep the UEFI variables");
    if (c->efidisk.present && c->efidisk.pre_enrolled_keys == 1 && c->efidisk.efitype_4m == 0)
        return berr_set(err, EINVAL, "efidisk0: pre-enrolled-keys=1 needs efitype=4m");
    if ((c->initrd || c->append) && !c->kernel)
        return berr_set(err, EINVAL, "%s: needs kernel (direct kernel boot)", c->initrd ? "initrd" : "append");
    if (c->vga == VM_VGA_SERIAL0 && !c->serial_socket[0])
        return berr_set(err, EINVAL, "vga: serial0 needs 'serial0: socket'");

    struct seen_vol sv = {.err = err};
    int r = vm_config_foreach_volume(c, check_vol, &sv);
    if (r)
        return r < 0 ? r : -EINVAL;

    for (size_t i = 0; i < c->n_disks; i++) {
        const struct vm_disk *d = &c->disks[i];
        if (d->bus == VM_BUS_SCSI && d->iothread == 1 &&
            vm_config_scsihw(c) != VM_SCSIHW_VIRTIO_SINGLE)
            return berr_set(err, EINVAL, "%s: iothread=1 needs scsihw: virtio-scsi-single (the controller is %s)",
                            vm_disk_key(d, dk, sizeof dk), vm_scsihw_names[vm_config_scsihw(c)]);
    }
    for (size_t i = 0; i < c->n_nets; i++)
        for (size_t j = 0; j < i; j++)
            if (c->nets[i].has_mac && c->nets[j].has_mac &&
                memcmp(c->nets[i].mac, c->nets[j].mac, 6) == 0) {
                char mac[18];
                return berr_set(err, EINVAL, "net%d: MAC address %s is already used by net%d",
                                c->nets[i].index, vm_format_mac(c->nets[i].mac, mac, sizeof mac),
                                c->nets[j].index);
            }
    int xvga = -1;
    for (size_t i = 0; i < c->n_hostpcis; i++) {
        const struct vm_hostpci *h = &c->hostpcis[i];
        if (h->pcie == 1 && machine != VM_MACHINE_Q35)
            return berr_set(err, EINVAL, "hostpci%d: pcie=1 needs machine: q35", h->index);
        if (h->x_vga == 1) {
            if (xvga >= 0)
                return berr_set(err, EINVAL, "hostpci%d: x-vga=1 is already set on hostpci%d (only one primary GPU)",
                                h->index, xvga);
            xvga = h->index;
        }
        for (size_t j = 0; j < i; j++)
            if (pci_overlap(h, &c->hostpcis[j]))
                return berr_set(err, EINVAL, "hostpci%d: the host device is already passed through by hostpci%d",
                                h->index, c->hostpcis[j].index);
    }
    for (size_t i = 0; i < c->n_usbs; i++)
        for (size_t j = 0; j < i; j++) {
            const struct vm_usb *a = &c->usbs[i], *b = &c->usbs[j];
            bool same = a->by_id == b->by_id &&
                        (a->by_id ? a->vendor == b->vendor && a->product == b->product
                                  : a->hostbus == b->hostbus && strcmp(a->hostport, b->hostport) == 0);
            if (same)
                return berr_set(err, EINVAL, "usb%d: the host device is already passed through by usb%d",
                                a->index, b->index);
        }
    for (size_t i = 0; c->boot_order && c->boot_order[i]; i++)
        if (!device_configured(c, c->boot_order[i]))
            return berr_set(err, EINVAL, "boot: order names '%s', which is not configured",
                            c->boot_order[i]);
    return 0;
}
