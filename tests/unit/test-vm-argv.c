/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for the QEMU command line of a VM: a full-featured config
 * (UEFI + secure boot, TPM, agent, virtio-scsi single with iothreads, every
 * disk bus, ISO cdrom, NICs, PCIe/GPU and USB passthrough, direct kernel
 * boot) is checked element by element; then the accelerator decision, the
 * TCG CPU fallback and argv errors.
 *
 * `test-vm-argv --print CONFIG RUNDIR NBDSOCK` prints the argv of a config
 * file, one element per line (used by tests/guest/argv-qemu.sh to feed the
 * real QEMU). */
#include "vm/accel.h"
#include "vm/config.h"
#include "vm/qemu_argv.h"
#include "common/cleanup.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char full[] =
    "name: full\n"
    "machine: q35\n"
    "bios: ovmf\n"
    "efidisk0: tank:vm-100-efidisk0,efitype=4m,pre-enrolled-keys=1\n"
    "tpmstate0: tank:vm-100-tpmstate0,version=v2.0\n"
    "scsihw: virtio-scsi-single\n"
    "scsi0: tank:vm-100-disk-0,discard=on,iothread=1,ssd=1\n"
    "scsi1: tank:vm-100-disk-1,cache=writethrough\n"
    "virtio0: tank:vm-100-disk-2,iothread=1,discard=on\n"
    "sata0: tank:vm-100-disk-3,cache=unsafe\n"
    "ide2: /srv/iso/debian 12.iso,media=cdrom\n"
    "ide0: none,media=cdrom\n"
    "net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,queues=4\n"
    "net1: e1000=BC:24:11:00:00:02,bridge=vmbr0\n"
    "agent: 1\n"
    "cores: 4\n"
    "sockets: 2\n"
    "memory: 4096\n"
    "balloon: 0\n"
    "numa: 1\n"
    "cpu: host,flags=+aes\n"
    "serial0: socket\n"
    "vga: virtio\n"
    "boot: order=scsi0;ide2;net0\n"
    "hostpci0: 0000:01:00.0,pcie=1,x-vga=1\n"
    "hostpci1: 02:00,rombar=0\n"
    "usb0: host=046d:c52b\n"
    "usb1: host=1-2.3\n"
    "kernel: /boot/vmlinuz\n"
    "initrd: /boot/initrd.img\n"
    "append: console=ttyS0 root=/dev/sda\n"
    "smbios1: uuid=2d3f8a3c-1b52-4c3e-9a3e-0123456789ab\n"
    "vmgenid: 8b5a0c7e-3f44-4b2a-9e8a-6d1c2b3a4f50\n"
    "ostype: l26\n";

#define NBD "/run/berth/nbd.sock"
#define RUN "/run/berth/vm/100"

static const char *const expect_full[] = {
    "qemu-system-x86_64", "-nodefaults", "-no-user-config",
    "-name", "full,debug-threads=on",
    "-machine", "type=q35,accel=kvm,smm=on,pflash0=pflash0,pflash1=drive-efidisk0",
    "-global", "driver=cfi.pflash01,property=secure,value=on",
    "-blockdev", "driver=file,node-name=pflash0-file,read-only=on,filename=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
    "-blockdev", "driver=raw,node-name=pflash0,file=pflash0-file,read-only=on",
    "-blockdev", "driver=raw,node-name=drive-efidisk0,size=540672,file.driver=nbd,file.server.type=unix,"
                 "file.server.path=" NBD ",file.export=tank/vm-100-efidisk0,file.reconnect-delay=300",
    "-cpu", "host,+aes",
    "-smp", "8,sockets=2,cores=4,maxcpus=8",
    "-m", "4096",
    "-object", "memory-backend-ram,id=ram-node0,size=2048M",
    "-numa", "node,nodeid=0,cpus=0-3,memdev=ram-node0",
    "-object", "memory-backend-ram,id=ram-node1,size=2048M",
    "-numa", "node,nodeid=1,cpus=4-7,memdev=ram-node1",
    "-smbios", "type=1,uuid=2d3f8a3c-1b52-4c3e-9a3e-0123456789ab",
    "-device", "vmgenid,guid=8b5a0c7e-3f44-4b2a-9e8a-6d1c2b3a4f50,id=vmgenid0",
    "-qmp", "unix:" RUN "/qmp.sock,server=on,wait=off",
    "-pidfile", RUN "/qemu.pid",
    "-chardev", "socket,id=serial0,path=" RUN "/serial0.sock,server=on,wait=off",
    "-device", "isa-serial,chardev=serial0,id=serial0-dev",
    "-chardev", "socket,id=qga0,path=" RUN "/qga.sock,server=on,wait=off",
    "-device", "virtio-serial-pci,id=qga0-serial",
    "-device", "virtserialport,bus=qga0-serial.0,chardev=qga0,name=org.qemu.guest_agent.0",
    "-vnc", "unix:" RUN "/vnc.sock",
    /* no emulated VGA: hostpci0 is the primary GPU (x-vga=1) */
    "-chardev", "socket,id=chrtpm,path=/run/berth/swtpm/100.sock",
    "-tpmdev", "emulator,id=tpmdev0,chardev=chrtpm",
    "-device", "tpm-crb,tpmdev=tpmdev0,id=tpm0",
    "-device", "pcie-root-port,id=hostpci0-rp,bus=pcie.0,chassis=1,slot=1",
    "-device", "vfio-pci,host=0000:01:00.0,id=hostpci0,bus=hostpci0-rp,addr=0x0,x-vga=on",
    "-device", "vfio-pci,host=0000:02:00.0,id=hostpci1.0,bus=pcie.0,addr=0x11.0,multifunction=on,rombar=0",
    "-device", "vfio-pci,host=0000:02:00.1,id=hostpci1.1,bus=pcie.0,addr=0x11.1,rombar=0",
    "-blockdev", "driver=nbd,node-name=drive-scsi0,server.type=unix,server.path=" NBD
                 ",export=tank/vm-100-disk-0,reconnect-delay=300,discard=unmap,detect-zeroes=unmap",
    "-object", "iothread,id=iothread-virtioscsi0",
    "-device", "virtio-scsi-pci,id=virtioscsi0,iothread=iothread-virtioscsi0",
    "-device", "scsi-hd,bus=virtioscsi0.0,channel=0,scsi-id=0,lun=0,drive=drive-scsi0,id=scsi0,rotation_rate=1,bootindex=100",
    "-blockdev", "driver=nbd,node-name=drive-scsi1,server.type=unix,server.path=" NBD
                 ",export=tank/vm-100-disk-1,reconnect-delay=300,discard=ignore",
    "-device", "virtio-scsi-pci,id=virtioscsi1",
    "-device", "scsi-hd,bus=virtioscsi1.0,channel=0,scsi-id=0,lun=1,drive=drive-scsi1,id=scsi1,write-cache=off",
    "-blockdev", "driver=nbd,node-name=drive-virtio0,server.type=unix,server.path=" NBD
                 ",export=tank/vm-100-disk-2,reconnect-delay=300,discard=unmap,detect-zeroes=unmap",
    "-object", "iothread,id=iothread-virtio0",
    "-device", "virtio-blk-pci,iothread=iothread-virtio0,drive=drive-virtio0,id=virtio0",
    "-blockdev", "driver=nbd,node-name=drive-sata0,server.type=unix,server.path=" NBD
                 ",export=tank/vm-100-disk-3,reconnect-delay=300,discard=ignore,cache.no-flush=on",
    "-device", "ahci,id=ahci0",
    "-device", "ide-hd,bus=ahci0.0,drive=drive-sata0,id=sata0",
    "-device", "ide-cd,bus=ide.0,unit=0,id=ide0",
    "-blockdev", "driver=file,node-name=drive-ide2-file,read-only=on,filename=/srv/iso/debian 12.iso",
    "-blockdev", "driver=raw,node-name=drive-ide2,file=drive-ide2-file,read-only=on",
    "-device", "ide-cd,bus=ide.2,unit=0,drive=drive-ide2,id=ide2,bootindex=200",
    "-netdev", "tap,id=net0,ifname=tap100i0,script=no,downscript=no,vhost=on,queues=4",
    "-device", "virtio-net-pci,netdev=net0,mac=BC:24:11:00:00:01,id=net0,mq=on,vectors=10,bootindex=300",
    "-netdev", "tap,id=net1,ifname=tap100i1,script=no,downscript=no",
    "-device", "e1000,netdev=net1,mac=BC:24:11:00:00:02,id=net1",
    "-device", "qemu-xhci,id=xhci,p2=15,p3=15",
    "-device", "usb-host,bus=xhci.0,vendorid=0x046d,productid=0xc52b,id=usb0",
    "-device", "usb-host,bus=xhci.0,hostbus=1,hostport=2.3,id=usb1",
    "-boot", "menu=on,strict=on,reboot-timeout=1000",
    "-kernel", "/boot/vmlinuz",
    "-initrd", "/boot/initrd.img",
    "-append", "console=ttyS0 root=/dev/sda",
    NULL,
};

static int fake_pci_functions(unsigned dom, unsigned bus, unsigned slot, int fns[8], void *opaque)
{
    if (bus != 2)
        return 0;
    fns[0] = 0;
    fns[1] = 1; /* a GPU and its audio function */
    return 2;
}

static int parse(const char *text, struct vm_config *c)
{
    struct berr e = {0};
    int r = vm_config_parse(text, strlen(text), c, &e);
    if (r < 0)
        diag("parse: %s", e.msg);
    return r;
}

static void compare(char **got, const char *const *want, const char *what)
{
    size_t i = 0;
    int bad = 0;
    for (; want[i] && got[i]; i++) {
        if (strcmp(got[i], want[i]) != 0) {
            ok(0, "%s argv[%zu]", what, i);
            diag("got:  %s", got[i]);
            diag("want: %s", want[i]);
            bad++;
        }
    }
    ok(!want[i] && !got[i], "%s: %zu elements, same length", what, i);
    if (want[i] || got[i])
        diag("extra: %s", want[i] ? want[i] : got[i]);
    ok(bad == 0, "%s: every element as expected", what);
}

static bool has(char **argv, const char *s)
{
    for (; *argv; argv++)
        if (strcmp(*argv, s) == 0)
            return true;
    return false;
}
static bool has_sub(char **argv, const char *s)
{
    for (; *argv; argv++)
        if (strstr(*argv, s))
            return true;
    return false;
}

static void test_full(void)
{
    struct vm_config c;
    struct berr e = {0};
    char **argv = NULL;
    if (parse(full, &c) < 0) {
        ok(0, "full config parses");
        return;
    }
    struct vm_argv_ctx ctx = {.vmid = 100, .run_dir = RUN, .nbd_socket = NBD,
                              .swtpm_socket = "/run/berth/swtpm/100.sock", .accel = VM_ACCEL_KVM,
                              .pci_functions = fake_pci_functions};
    int r = vm_build_argv(&c, &ctx, &argv, &e);
    ok(r == 0, "full argv builds: %s", e.msg);
    if (r == 0)
        compare(argv, expect_full, "full");
    vm_argv_free(argv);

    /* the same under TCG: no vhost, cpu host -> max */
    ctx.accel = VM_ACCEL_TCG;
    ok(vm_build_argv(&c, &ctx, &argv, &e) == 0, "tcg argv");
    ok(has(argv, "type=q35,accel=tcg,smm=on,pflash0=pflash0,pflash1=drive-efidisk0"), "accel=tcg");
    ok(has(argv, "max,+aes"), "cpu host -> max under tcg");
    ok(has(argv, "tap,id=net0,ifname=tap100i0,script=no,downscript=no,queues=4"), "no vhost under tcg");
    vm_argv_free(argv);

    ctx.pci_functions = NULL; /* sysfs: 0000:02:00 does not exist here */
    ctx.accel = VM_ACCEL_KVM;
    r = vm_build_argv(&c, &ctx, &argv, &e);
    ok(r == -ENODEV && strstr(e.msg, "hostpci1") && strstr(e.msg, "0000:02:00") && !argv,
       "missing host PCI slot named: %s", e.msg);
    vm_config_free(&c);
}

static void test_small(void)
{
    struct vm_config c;
    struct berr e = {0};
    char **argv = NULL;
    struct vm_argv_ctx ctx = {.vmid = 4242, .run_dir = "/r", .nbd_socket = "/n.sock",
                              .accel = VM_ACCEL_TCG, .qemu_binary = "/usr/bin/qemu-system-x86_64"};
    /* Proxmox defaults: pc, seabios, lsi */
    const char *t = "scsi0: p:a\nscsi8: p:b\nide1: p:c\nnet0: rtl8139=BC:24:11:00:00:09,bridge=br0\n"
                    "tpmstate0: p:t\nostype: win11\nvga: std,memory=64\n";
    ok(parse(t, &c) == 0 && vm_build_argv(&c, &ctx, &argv, &e) == 0, "small config: %s", e.msg);
    if (argv) {
        ok(strcmp(argv[0], "/usr/bin/qemu-system-x86_64") == 0, "qemu binary");
        ok(has(argv, "type=pc,accel=tcg"), "pc machine, no pflash");
        ok(has(argv, "max"), "default cpu under tcg is max");
        ok(has(argv, "vm4242,debug-threads=on"), "name defaults to vmVMID");
        ok(has(argv, "lsi,id=scsihw0") && has(argv, "lsi,id=scsihw1"), "lsi: 7 disks per controller");
        ok(has(argv, "scsi-hd,bus=scsihw1.0,scsi-id=1,drive=drive-scsi8,id=scsi8"), "scsi8 on controller 1 id 1");
        ok(has(argv, "ide-hd,bus=ide.0,unit=1,drive=drive-ide1,id=ide1"), "pc: ide1 = ide.0 unit 1");
        ok(has(argv, "rtl8139,netdev=net0,mac=BC:24:11:00:00:09,id=net0"), "rtl8139");
        ok(has(argv, "socket,id=chrtpm,path=/r/swtpm.sock"), "swtpm socket defaults to run dir");
        ok(has(argv, "tpm-tis,tpmdev=tpmdev0,id=tpm0"), "tpm 1.2 / pc -> tpm-tis");
        ok(has(argv, "base=localtime"), "windows: rtc localtime");
        ok(has(argv, "VGA,id=vga,vgamem_mb=64"), "std vga with memory");
        ok(has(argv, "virtio-balloon-pci,id=balloon0,free-page-reporting=on"), "balloon by default");
        ok(!has(argv, "-boot") && !has_sub(argv, "bootindex"), "no boot order -> firmware default");
        ok(!has_sub(argv, "qga0") && !has(argv, "-kernel"), "no agent, no kernel");
        ok(!has(argv, "-daemonize"), "never -daemonize");
    }
    vm_argv_free(argv);
    argv = NULL;
    /* virtio-scsi-pci: one shared controller */
    ok(vm_config_set(&c, "scsihw", "virtio-scsi-pci", &e) == 0 &&
           vm_build_argv(&c, &ctx, &argv, &e) == 0, "virtio-scsi-pci");
    if (argv) {
        ok(has(argv, "virtio-scsi-pci,id=scsihw0") && !has(argv, "lsi,id=scsihw0"), "one controller");
        ok(has(argv, "scsi-hd,bus=scsihw0.0,channel=0,scsi-id=8,lun=0,drive=drive-scsi8,id=scsi8"),
           "scsi-id = slot");
    }
    vm_argv_free(argv);
    argv = NULL;
    /* commas in paths are doubled for QEMU's option parser */
    struct vm_argv_ctx comma = ctx;
    comma.run_dir = "/run/a,b";
    comma.nbd_socket = "/run/n,bd.sock";
    ok(vm_build_argv(&c, &comma, &argv, &e) == 0, "comma paths");
    if (argv) {
        ok(has(argv, "unix:/run/a,,b/qmp.sock,server=on,wait=off"), "qmp path escaped");
        ok(has(argv, "/run/a,b/qemu.pid"), "pidfile is a plain argument, not escaped");
        ok(has(argv, "driver=nbd,node-name=drive-scsi0,server.type=unix,server.path=/run/n,,bd.sock,"
                     "export=p/a,reconnect-delay=300,discard=ignore"), "nbd socket escaped");
    }
    vm_argv_free(argv);
    argv = NULL;
    vm_config_free(&c);

    /* errors */
    t = "net0: virtio,bridge=br0\n";
    ok(parse(t, &c) == 0, "nic without MAC parses (hand-written file)");
    ok(vm_build_argv(&c, &ctx, &argv, &e) == -EINVAL && strstr(e.msg, "net0: no MAC"),
       "argv: %s", e.msg);
    struct vm_argv_ctx bad = ctx;
    bad.accel = VM_ACCEL_AUTO;
    ok(vm_build_argv(&c, &bad, &argv, &e) == -EINVAL && strstr(e.msg, "accelerator"), "%s", e.msg);
    bad = ctx;
    bad.run_dir = "/a/very/long/run/directory/that/does/not/fit/into/the/sun_path/of/a/unix/socket/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    ok(vm_build_argv(&c, &bad, &argv, &e) == -ENAMETOOLONG, "%s", e.msg);
    bad = ctx;
    bad.vmid = 99;
    ok(vm_build_argv(&c, &bad, &argv, &e) == -EINVAL && strstr(e.msg, "99"), "%s", e.msg);
    vm_config_free(&c);

    /* 30 virtio-scsi-single disks do not fit on the root bus */
    char big[4096] = "scsihw: virtio-scsi-single\n";
    for (int i = 0; i < 30; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "scsi%d: p:d%d\n", i, i);
    ok(parse(big, &c) == 0, "30 disks parse");
    ok(vm_build_argv(&c, &ctx, &argv, &e) == -E2BIG && strstr(e.msg, "virtio-scsi-pci"),
       "too many PCI devices: %s", e.msg);
    vm_config_free(&c);
    char tap[16];
    vm_tap_name(999999999, 31, tap, sizeof tap);
    ok(strcmp(tap, "tap999999999i31") == 0 && strlen(tap) <= 15, "tap name fits IFNAMSIZ");
}

static void test_accel(void)
{
    char dir[] = "/tmp/berth-accel-XXXXXX";
    ok(mkdtemp(dir) != NULL, "tmpdir");
    char mod[300], pvm[320], dev[300];
    snprintf(mod, sizeof mod, "%s/module", dir);
    snprintf(pvm, sizeof pvm, "%s/kvm_pvm", mod);
    snprintf(dev, sizeof dev, "%s/kvm", dir);
    mkdir(mod, 0755);
    struct vm_accel_probe p;
    enum vm_accel a;
    char why[300];
    struct berr e = {0};
    vm_accel_probe_at(dev, mod, &p);
    ok(!p.kvm_usable && strstr(p.reason, "does not exist"), "no /dev/kvm: %s", p.reason);
    ok(vm_accel_resolve(VM_ACCEL_AUTO, &p, &a, why, sizeof why, &e) == 0 && a == VM_ACCEL_TCG &&
           strstr(why, "software emulation"), "auto -> tcg: %s", why);
    ok(vm_accel_resolve(VM_ACCEL_KVM, &p, &a, why, sizeof why, &e) == -ENODEV &&
           strstr(e.msg, "accel: kvm requested"), "kvm requested: %s", e.msg);
    ok(vm_accel_resolve(VM_ACCEL_TCG, &p, &a, why, sizeof why, &e) == 0 && a == VM_ACCEL_TCG, "tcg");
    /* a regular file is not a KVM device */
    FILE *f = fopen(dev, "w");
    if (f)
        fclose(f);
    vm_accel_probe_at(dev, mod, &p);
    ok(!p.kvm_usable && strstr(p.reason, "API version"), "not a kvm device: %s", p.reason);
    /* the real device (if openable) together with a kvm_pvm module dir */
    struct stat st;
    if (stat("/dev/kvm", &st) == 0 && access("/dev/kvm", R_OK | W_OK) == 0) {
        mkdir(pvm, 0755);
        vm_accel_probe_at("/dev/kvm", mod, &p);
        ok(!p.kvm_usable && strstr(p.reason, "kvm_pvm (paravirtual)"), "kvm_pvm: %s", p.reason);
        rmdir(pvm);
        vm_accel_probe_at("/dev/kvm", mod, &p);
        ok(p.kvm_usable, "plain /dev/kvm usable: %s", p.reason);
    } else {
        ok(1, "# SKIP no /dev/kvm");
        ok(1, "# SKIP no /dev/kvm");
    }
    vm_accel_probe(&p);
    diag("this host: %s", p.reason);
    if (stat("/sys/module/kvm_pvm", &st) == 0)
        ok(!p.kvm_usable, "this host has kvm_pvm: no KVM");
    unlink(dev);
    rmdir(mod);
    rmdir(dir);
}

static int print_mode(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: test-vm-argv --print CONFIG RUNDIR NBDSOCK\n");
        return 2;
    }
    struct vm_config c;
    struct berr e = {0};
    char **av = NULL;
    struct vm_accel_probe p;
    vm_accel_probe(&p);
    enum vm_accel a;
    struct vm_argv_ctx ctx = {.vmid = 100, .run_dir = argv[3], .nbd_socket = argv[4]};
    if (vm_config_load(argv[2], &c, &e) < 0 ||
        vm_accel_resolve(c.accel, &p, &a, NULL, 0, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    ctx.accel = a;
    if (vm_build_argv(&c, &ctx, &av, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        vm_config_free(&c);
        return 1;
    }
    for (char **q = av; *q; q++)
        printf("%s\n", *q);
    vm_argv_free(av);
    vm_config_free(&c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print") == 0)
        return print_mode(argc, argv);
    test_full();
    test_small();
    test_accel();
    return done_testing();
}
