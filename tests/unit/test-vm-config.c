/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/vm config: parsing a full Proxmox-style config, the
 * canonical writer and round trip, `vm set` semantics, defaults, and many
 * bad inputs -- each rejection must name the key and the offending value. */
#include "vm/config.h"
#include "vm/defaults.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char full[] =
    "# my web server\n"
    "# second comment line\n"
    "agent: 1,fstrim_cloned_disks=1\n"
    "bios: ovmf\n"
    "boot: order=scsi0;ide2;net0\n"
    "cores: 4\n"
    "cpu: host,flags=+aes;-pcid\n"
    "efidisk0: tank:vm-100-disk-0,efitype=4m,pre-enrolled-keys=1,size=528K\n"
    "hostpci0: 0000:01:00.0,pcie=1,x-vga=1\n"
    "hostpci1: 02:00,rombar=0\n"
    "ide2: /var/lib/iso/debian.iso,media=cdrom\n"
    "machine: q35\n"
    "memory: 4096\n"
    "balloon: 1024\n"
    "meta: creation-qemu=7.2.0,ctime=1700000000\n"
    "name: web01.example\n"
    "net0: virtio=BC:24:11:12:34:56,bridge=vmbr0,firewall=1,tag=10\n"
    "net1: e1000,bridge=vmbr1,macaddr=BC:24:11:AA:BB:CC\n"
    "numa: 0\n"
    "onboot: 1\n"
    "ostype: l26\n"
    "scsi0: tank:vm-100-disk-1,discard=on,iothread=1,size=32G,ssd=1\n"
    "scsi1: tank:vm-100-disk-3,cache=writeback,discard=ignore\n"
    "scsihw: virtio-scsi-single\n"
    "serial0: socket\n"
    "smbios1: uuid=2d3f8a3c-1b52-4c3e-9a3e-0123456789ab\n"
    "sockets: 1\n"
    "tpmstate0: tank:vm-100-disk-2,size=4M,version=v2.0\n"
    "usb0: host=046d:c52b\n"
    "usb1: host=1-2.3,usb3=1\n"
    "vga: std,memory=32\n"
    "virtio0: tank:vm-100-disk-4,iothread=1\n"
    "sata0: tank:vm-100-disk-5\n"
    "vmgenid: 8b5a0c7e-3f44-4b2a-9e8a-6d1c2b3a4f50\n"
    "accel: auto\n"
    "description: the web server\n"
    "\n"
    "[snap1]\n"
    "memory: 2048\n"
    "snaptime: 1700000001\n";

/* Expect the config text to be rejected with a message containing every
 * given fragment. */
static void bad_len(const char *text, size_t len, const char *frag1, const char *frag2)
{
    struct vm_config c;
    struct berr e = {0};
    char shown[48];
    snprintf(shown, sizeof shown, "%s", text);
    for (char *p = shown; *p; p++)
        if (*p == '\n')
            *p = '|';
    int r = vm_config_parse(text, len, &c, &e);
    ok(r < 0 && strstr(e.msg, frag1) && (!frag2 || strstr(e.msg, frag2)), "reject '%s' -> %s",
       shown, e.msg);
    vm_config_free(&c);
}

static void bad(const char *text, const char *frag1, const char *frag2)
{
    bad_len(text, strlen(text), frag1, frag2);
}

static void test_full(void)
{
    struct vm_config c, c2;
    struct berr e = {0};
    int r = vm_config_parse(full, strlen(full), &c, &e);
    ok(r == 0, "full config parses: %s", e.msg);
    if (r < 0)
        return;
    is_int(c.memory, 4096, "memory");
    is_int(c.cores, 4, "cores");
    ok(c.machine == VM_MACHINE_Q35 && c.bios == VM_BIOS_OVMF, "q35 + ovmf");
    ok(strcmp(c.cpu, "host") == 0 && strcmp(c.cpu_flags, "+aes;-pcid") == 0, "cpu flags");
    is_int(c.n_disks, 5, "5 disks");
    const struct vm_disk *d = vm_config_find_disk(&c, VM_BUS_SCSI, 0);
    ok(d && d->discard == VM_DISCARD_ON && d->iothread == 1 && d->ssd == 1 &&
           d->size == 32ULL << 30 && strcmp(d->vol.pool, "tank") == 0 &&
           strcmp(d->vol.vol, "vm-100-disk-1") == 0, "scsi0 options");
    d = vm_config_find_disk(&c, VM_BUS_IDE, 2);
    ok(d && d->kind == VM_DISK_ISO && d->cdrom && strcmp(d->path, "/var/lib/iso/debian.iso") == 0,
       "ide2 iso");
    is_int(c.n_nets, 2, "2 nics");
    ok(c.nets[0].has_mac && c.nets[0].mac[0] == 0xBC && c.nets[0].tag == 10, "net0 mac+tag");
    ok(c.nets[1].model == VM_NIC_E1000 && c.nets[1].mac[5] == 0xCC, "net1 macaddr=");
    ok(c.n_hostpcis == 2 && c.hostpcis[0].bus == 1 && c.hostpcis[0].function == 0 &&
           c.hostpcis[0].x_vga == 1 && c.hostpcis[1].function == -1, "hostpci");
    ok(c.n_usbs == 2 && c.usbs[0].by_id && c.usbs[0].vendor == 0x046d && !c.usbs[1].by_id &&
           c.usbs[1].hostbus == 1 && strcmp(c.usbs[1].hostport, "2.3") == 0, "usb");
    ok(c.efidisk.present && c.efidisk.efitype_4m == 1 && c.efidisk.pre_enrolled_keys == 1, "efidisk0");
    ok(c.tpmstate.present && c.tpmstate.version == 20, "tpmstate0");
    ok(c.agent.enabled == 1 && c.agent.fstrim_cloned_disks == 1, "agent");
    ok(c.boot_order && strcmp(c.boot_order[1], "ide2") == 0 && !c.boot_order[3], "boot order");
    is_int(c.n_comments, 2, "comments kept");
    ok(c.sections && strncmp(c.sections, "[snap1]\n", 8) == 0, "snapshot section kept");

    _cleanup_free_ char *t1 = NULL, *t2 = NULL;
    ok(vm_config_format(&c, &t1, &e) == 0, "format");
    int sorted = strncmp(t1, "# my web server\n# second comment line\naccel: auto\nagent: 1,", 59) == 0;
    ok(sorted, "comments first, then keys sorted");
    if (!sorted)
        diag("%s", t1);
    ok(strstr(t1, "scsi0: tank:vm-100-disk-1,discard=on,iothread=1,size=32G,ssd=1\n") &&
           strstr(t1, "net0: virtio=BC:24:11:12:34:56,bridge=vmbr0,firewall=1,tag=10\n") &&
           strstr(t1, "net1: e1000=BC:24:11:AA:BB:CC,bridge=vmbr1\n") &&
           strstr(t1, "hostpci1: 0000:02:00,rombar=0\n") && strstr(t1, "\n[snap1]\nmemory: 2048\n"),
       "canonical values");
    ok(strstr(t1, "hostpci0") < strstr(t1, "hostpci1") && strstr(t1, "ide2") < strstr(t1, "machine"),
       "key order");
    r = vm_config_parse(t1, strlen(t1), &c2, &e);
    ok(r == 0, "canonical text parses: %s", e.msg);
    if (r == 0) {
        ok(vm_config_format(&c2, &t2, &e) == 0 && strcmp(t1, t2) == 0, "round trip is stable");
        vm_config_free(&c2);
    }
    vm_config_free(&c);
}

static void test_set(void)
{
    struct vm_config c;
    struct berr e = {0};
    const char *t = "memory: 1024\nscsi0: tank:a\n";
    ok(vm_config_parse(t, strlen(t), &c, &e) == 0, "small config");
    ok(vm_config_set(&c, "memory", "2048", &e) == 0 && c.memory == 2048, "set replaces");
    ok(vm_config_set(&c, "scsi0", "tank:b,discard=on", &e) == 0 && c.n_disks == 1 &&
           strcmp(c.disks[0].vol.vol, "b") == 0, "set replaces a disk");
    ok(vm_config_set(&c, "scsi0", "", &e) == 0 && c.n_disks == 0, "empty value deletes");
    ok(vm_config_set(&c, "memory", "", &e) == 0 && c.memory == VM_UNSET, "delete scalar");
    ok(vm_config_set(&c, "memory", "8", &e) == -ERANGE && strstr(e.msg, "memory") &&
           strstr(e.msg, "'8'"), "set validates: %s", e.msg);
    ok(vm_config_set(&c, "net0", "virtio,bridge=vmbr0", &e) == 0 && c.nets[0].has_mac &&
           c.nets[0].mac[0] == 0xBC, "set generates a MAC");
    uint8_t mac[6];
    memcpy(mac, c.nets[0].mac, 6);
    ok(vm_config_set(&c, "net0", "e1000,bridge=vmbr1", &e) == 0 && c.n_nets == 1 &&
           strcmp(c.nets[0].bridge, "vmbr1") == 0 && memcmp(mac, c.nets[0].mac, 6) == 0,
       "set replaces a nic and keeps its MAC");
    ok(vm_config_set(&c, "vmgenid", "1", &e) == 0 && strlen(c.vmgenid) == 36, "vmgenid 1 generates");
    ok(vm_config_set(&c, "bogus", "1", &e) == -EINVAL, "set unknown key");
    vm_config_free(&c);
}

static int count_vol(const char *key, const struct vm_volref *v, void *opaque)
{
    (*(int *)opaque)++;
    return 0;
}

static void test_defaults(void)
{
    struct vm_config c;
    struct berr e = {0};
    struct vm_defaults_opts o = {.vmid = 123, .pool = "tank", .bridge = "vmbr0",
                                 .host_cores = 8, .disk_size = 32ULL << 30};
    ok(vm_config_defaults(&c, &o, &e) == 0, "defaults: %s", e.msg);
    ok(c.machine == VM_MACHINE_Q35 && c.bios == VM_BIOS_OVMF && c.efidisk.present &&
           c.scsihw == VM_SCSIHW_VIRTIO_SINGLE && c.memory == 2048 && c.cores == 4 &&
           c.agent.enabled == 1 && c.tpmstate.present && c.tpmstate.version == 20,
       "q35/ovmf/efidisk/virtio-scsi-single/2048/half cores/agent/tpm");
    const struct vm_disk *d = vm_config_find_disk(&c, VM_BUS_SCSI, 0);
    ok(d && d->discard == VM_DISCARD_ON && d->iothread == 1 && d->size == 32ULL << 30 &&
           strcmp(d->vol.vol, "vm-123-disk-0") == 0, "scsi0 discard+iothread: %s", d ? d->vol.vol : "");
    ok(c.n_nets == 1 && c.nets[0].has_mac && c.nets[0].mac[0] == 0xBC && c.nets[0].mac[1] == 0x24 &&
           c.nets[0].mac[2] == 0x11 && strcmp(c.nets[0].bridge, "vmbr0") == 0, "net0 BC:24:11 mac");
    int n = 0;
    vm_config_foreach_volume(&c, count_vol, &n);
    is_int(n, 3, "3 volumes (efidisk, tpm, disk)");
    ok(vm_config_validate(&c, &e) == 0, "defaults validate: %s", e.msg);
    struct vm_config c2;
    ok(vm_config_defaults(&c2, &o, &e) == 0 && memcmp(c.nets[0].mac, c2.nets[0].mac, 6) != 0,
       "each VM gets its own MAC");
    vm_config_free(&c2);
    o.host_cores = 1;
    ok(vm_config_defaults(&c2, &o, &e) == 0 && c2.cores == 1, "1 host core -> 1");
    vm_config_free(&c2);
    o.host_cores = 0;
    ok(vm_config_defaults(&c2, &o, &e) == 0 && c2.cores >= 1, "host cores probed: %d", c2.cores);
    vm_config_free(&c2);

    char dir[] = "/tmp/berth-vmcfg-XXXXXX";
    ok(mkdtemp(dir) != NULL, "tmpdir");
    char path[256];
    snprintf(path, sizeof path, "%s/123.conf", dir);
    ok(vm_config_save(path, &c, &e) == 0, "save: %s", e.msg);
    ok(vm_config_load(path, &c2, &e) == 0 && memcmp(c.nets[0].mac, c2.nets[0].mac, 6) == 0,
       "load: MAC kept across save/load");
    vm_config_free(&c2);
    snprintf(path, sizeof path, "%s/nope.conf", dir);
    ok(vm_config_load(path, &c2, &e) == -ENOENT, "load missing: %s", e.msg);
    snprintf(path, sizeof path, "%s/123.conf", dir);
    unlink(path);
    rmdir(dir);
    vm_config_free(&c);
}

static void test_vmid(void)
{
    uint32_t id;
    struct berr e = {0};
    ok(vm_parse_vmid("100", &id, &e) == 0 && id == 100, "vmid 100");
    ok(vm_parse_vmid("999999999", &id, &e) == 0, "vmid max");
    ok(vm_parse_vmid("99", &id, &e) < 0 && strstr(e.msg, "'99'"), "vmid 99: %s", e.msg);
    ok(vm_parse_vmid("1000000000", &id, &e) < 0, "vmid too large");
    ok(vm_parse_vmid("0100", &id, &e) < 0, "vmid leading zero");
    ok(vm_parse_vmid("-100", &id, &e) < 0, "vmid negative");
    ok(vm_parse_vmid("12a", &id, &e) < 0, "vmid garbage");
}

int main(void)
{
    test_full();
    test_set();
    test_defaults();
    test_vmid();

    /* line level */
    bad("memory 1024\n", "line 1", "expected 'key: value'");
    bad("memory: 1024\nmemory: 2048\n", "line 2", "memory: duplicate key");
    bad("scsi0: tank:a\nscsi0: tank:b\n", "scsi0: duplicate device slot", NULL);
    bad("memroy: 1024\n", "memroy", "did you mean 'memory'");
    bad("frobnicate: 1\n", "unknown key 'frobnicate'", NULL);
    bad("memory:\n", "memory: empty value", NULL);
    bad_len("memory: 10\0 24\n", 15, "NUL", NULL);
    /* scalar ranges */
    bad("memory: 8\n", "memory", "'8' out of range 16..4194304");
    bad("memory: 4194305\n", "memory", "4194305");
    bad("memory: 2G\n", "memory", "'2G'");
    bad("memory: -5\n", "memory", "'-5'");
    bad("cores: 0\n", "cores", "'0'");
    bad("cores: 513\n", "cores", "'513'");
    bad("cores: 99999999999999999999\n", "cores", "99999999999999999999");
    bad("sockets: 17\n", "sockets", "'17'");
    bad("cores: 200\nsockets: 2\n", "cores", "400 vCPUs");
    bad("balloon: 4096\nmemory: 2048\n", "balloon", "4096");
    bad("machine: i440\n", "machine: unknown value 'i440'", NULL);
    bad("machine: q53\n", "did you mean 'q35'", NULL);
    bad("bios: uefi\n", "bios: unknown value 'uefi'", "ovmf");
    bad("bios: ovmf\n", "bios: ovmf needs an efidisk0", NULL);
    bad("scsihw: virtio-scsi-singel\n", "scsihw", "did you mean 'virtio-scsi-single'");
    bad("accel: hvf\n", "accel: unknown value 'hvf'", NULL);
    bad("vga: vmware\n", "vga: unknown value 'vmware'", NULL);
    bad("vga: std,mem=4\n", "vga: unknown option 'mem'", NULL);
    bad("vga: serial0\n", "vga: serial0 needs", NULL);
    bad("ostype: win12\n", "ostype: unknown value 'win12'", "did you mean");
    bad("onboot: maybe\n", "onboot", "'maybe'");
    bad("numa: 1\nmemory: 1025\nsockets: 2\n", "numa", "1025");
    bad("name: -bad\n", "name", "'-bad'");
    bad("name: a b\n", "name", "'a b'");
    bad("cpu: ho st\n", "cpu", "'ho st'");
    bad("cpu: host,flags=aes\n", "cpu", "'aes'");
    bad("cpu: host,flag=+aes\n", "cpu: unknown option 'flag'", "did you mean 'flags'");
    bad("kernel: vmlinuz\n", "kernel", "'vmlinuz'");
    bad("initrd: /boot/initrd\n", "initrd: needs kernel", NULL);
    bad("append: console=ttyS0\n", "append: needs kernel", NULL);
    bad("vmgenid: xyz\n", "vmgenid", "'xyz'");
    bad("smbios1: uuid=nope\n", "smbios1", "'nope'");
    bad("smbios1: vendor=x\n", "smbios1: unknown option 'vendor'", NULL);
    bad("agent: 2\n", "agent", "'2'");
    bad("agent: enabled=1,fstrim=1\n", "agent: unknown option 'fstrim'", "fstrim_cloned_disks");
    bad("agent: type=isa,enabled=1\n", "agent", "'isa'");
    bad("boot: cdn\n", "boot", "'cdn'");
    bad("boot: order=scsi0\n", "boot: order names 'scsi0'", "not configured");
    bad("boot: order=floppy0\n", "boot", "'floppy0'");
    bad("boot: order=scsi0;scsi0\nscsi0: a:b\n", "boot", "listed twice");
    bad("boot: ordre=scsi0\n", "boot: unknown option 'ordre'", "did you mean 'order'");
    /* disks */
    bad("scsi0: tank:vm-100-disk-0,dicard=on\n", "scsi0: unknown option 'dicard'", "did you mean 'discard'");
    bad("scsi0: tank:vm,discard=yes\n", "scsi0", "'yes'");
    bad("scsi0: tank:vm,cache=wb\n", "scsi0: unknown cache mode 'wb'", NULL);
    bad("scsi0: tank:vm,iothread=2\n", "scsi0", "iothread");
    bad("scsi0: tank:vm,iothread=1\n", "scsi0: iothread=1 needs scsihw: virtio-scsi-single", NULL);
    bad("scsi0: tankvm\n", "scsi0", "'tankvm'");
    bad("scsi0: tank:bad/vol\n", "scsi0", "bad/vol");
    bad("scsi0: :vol\n", "scsi0", "':vol'");
    bad("scsi0: tank:vm,size=12Q\n", "scsi0", "'12Q'");
    bad("scsi0: tank:vm,,discard=on\n", "scsi0: empty option", NULL);
    bad("scsi0: tank:vm,discard=on,discard=on\n", "scsi0: option 'discard' given twice", NULL);
    bad("scsi0: tank:vm,media=tape\n", "scsi0", "'tape'");
    bad("scsi0: discard=on\n", "scsi0: missing the volume", NULL);
    bad("scsi31: tank:vm\n", "scsi31: slot out of range", "scsi30");
    bad("scsi01: tank:vm\n", "scsi01", NULL);
    bad("virtio16: tank:vm\n", "virtio16: slot out of range", NULL);
    bad("sata6: tank:vm\n", "sata6", NULL);
    bad("ide4: tank:vm\n", "ide4", NULL);
    bad("ide2: /iso/x.iso\n", "ide2", "media=cdrom");
    bad("ide2: none\n", "ide2", "media=cdrom");
    bad("ide2: iso/x.iso,media=cdrom\n", "ide2", "'iso/x.iso'");
    bad("virtio0: tank:vm,media=cdrom\n", "virtio0: a virtio disk cannot be a cdrom", NULL);
    bad("virtio0: tank:vm,ssd=1\n", "virtio0: ssd=1", NULL);
    bad("ide2: none,media=cdrom,discard=on\n", "ide2: discard", NULL);
    bad("sata0: tank:vm,iothread=1\n", "sata0: iothread=1", NULL);
    bad("scsi0: tank:a\nscsi1: tank:a\n", "scsi1: volume tank:a is already used by scsi0", NULL);
    bad("efidisk0: tank:a\nscsi1: tank:a\n", "scsi1: volume tank:a is already used by efidisk0", NULL);
    bad("efidisk0: tank:e,efitype=8m\n", "efidisk0", "'8m'");
    bad("efidisk0: tank:e,efitype=2m,pre-enrolled-keys=1\n", "efidisk0: pre-enrolled-keys=1 needs efitype=4m", NULL);
    bad("efidisk0: tank:e,enrolled=1\n", "efidisk0: unknown option 'enrolled'", NULL);
    bad("efidisk0: efitype=4m\n", "efidisk0: missing the volume", NULL);
    bad("tpmstate0: tank:t,version=v3.0\n", "tpmstate0", "'v3.0'");
    bad("tpmstate0: tank:t,verison=v2.0\n", "tpmstate0: unknown option 'verison'", "did you mean 'version'");
    /* nics */
    bad("net0: virtio,bridge=vmbr0,tag=4095\n", "net0", "'4095'");
    bad("net0: virtio=BC:24:11:12:34\n", "net0: invalid MAC address 'BC:24:11:12:34'", NULL);
    bad("net0: virtio=01:24:11:12:34:56,bridge=b\n", "net0", "01:24:11:12:34:56");
    bad("net0: virtio=00:00:00:00:00:00,bridge=b\n", "net0", "00:00:00:00:00:00");
    bad("net0: virtio=BC-24-11-12-34-56,bridge=b\n", "net0", "BC-24-11-12-34-56");
    bad("net0: virtio\n", "net0: missing bridge=", NULL);
    bad("net0: bridge=vmbr0\n", "net0: missing the NIC model", NULL);
    bad("net0: virtoi,bridge=vmbr0\n", "net0: unknown NIC model 'virtoi'", "did you mean 'virtio'");
    bad("net0: virtio,bridge=a-very-long-bridge-name\n", "net0", "a-very-long-bridge-name");
    bad("net0: virtio,brige=vmbr0\n", "net0: unknown option 'brige'", "did you mean 'bridge'");
    bad("net0: virtio=BC:24:11:00:00:01,bridge=b\nnet1: virtio=BC:24:11:00:00:01,bridge=b\n",
        "net1: MAC address BC:24:11:00:00:01 is already used by net0", NULL);
    bad("net32: virtio,bridge=b\n", "net32: slot out of range", NULL);
    /* passthrough */
    bad("hostpci0: 01:00.0,pcie=1\n", "hostpci0: pcie=1 needs machine: q35", NULL);
    bad("hostpci0: 1:0.0\n", "hostpci0: invalid PCI address '1:0.0'", NULL);
    bad("hostpci0: 01:00.8\n", "hostpci0", "'01:00.8'");
    bad("hostpci0: 01:20.0\n", "hostpci0", "'01:20.0'");
    bad("hostpci0: 01:00.0;02:00.0\n", "hostpci0: multiple host devices", NULL);
    bad("hostpci0: 01:00.0,xvga=1\n", "hostpci0: unknown option 'xvga'", "did you mean 'x-vga'");
    bad("hostpci0: 01:00.0,romfile=../x\n", "hostpci0: romfile", "'../x'");
    bad("hostpci0: pcie=1\n", "hostpci0: missing the host PCI address", NULL);
    bad("hostpci0: 01:00\nhostpci1: 01:00.1\n", "hostpci1: the host device is already passed through by hostpci0", NULL);
    bad("machine: q35\nhostpci0: 01:00.0,x-vga=1\nhostpci1: 02:00.0,x-vga=1\n", "hostpci1: x-vga=1", NULL);
    bad("usb0: host=46d:c52b\n", "usb0: invalid USB host device '46d:c52b'", NULL);
    bad("usb0: host=1-\n", "usb0", "'1-'");
    bad("usb0: host=0-1\n", "usb0", "'0-1'");
    bad("usb0: host=1-2..3\n", "usb0", "'1-2..3'");
    bad("usb0: spice\n", "usb0: spice", NULL);
    bad("usb0: host=046d:c52b,usb2=1\n", "usb0: unknown option 'usb2'", "did you mean 'usb3'");
    bad("usb0: host=046d:c52b\nusb1: host=046d:c52b\n", "usb1: the host device is already passed through by usb0", NULL);
    bad("usb14: host=046d:c52b\n", "usb14: slot out of range", NULL);
    bad("serial0: /dev/ttyS0\n", "serial0: only 'socket'", NULL);
    bad("serial4: socket\n", "serial4: slot out of range", NULL);
    return done_testing();
}
