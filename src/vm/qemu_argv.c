/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QEMU argv of a VM (see qemu_argv.h): machine, accelerator, CPU,
 * memory, firmware, consoles, TPM, agent channel, display, balloon; the
 * devices come from argv_dev.c.  Order matters in one place: devices that
 * pin a PCI address (multi-function passthrough) come before the devices
 * QEMU places automatically. */
#include "vm/argv_int.h"
#include "vm/config_int.h"
#include "vm/defaults.h"

#include <stdio.h>
#include <string.h>

void argv_opt(struct argv_state *s, const char *opt, const char *fmt, ...)
{
    struct sbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    strv_add(&s->sv, opt);
    strv_take(&s->sv, sbuf_steal(&b));
}

int argv_fail(struct argv_state *s, int code, const char *fmt, ...)
{
    if (s->rc)
        return s->rc;
    char msg[BERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->rc = berr_set(s->err, code, "%s", msg);
    return s->rc;
}

void argv_bootindex(struct argv_state *s, struct sbuf *b, const char *dev)
{
    for (size_t i = 0; s->c->boot_order && s->c->boot_order[i]; i++)
        if (strcmp(s->c->boot_order[i], dev) == 0)
            sbuf_printf(b, ",bootindex=%zu", (i + 1) * 100);
}

int vm_paths_init(struct vm_paths *p, const char *run_dir, struct berr *err)
{
    struct { char *dst; const char *name; } socks[] = {
        {p->qmp, "qmp.sock"}, {p->qga, "qga.sock"}, {p->vnc, "vnc.sock"}, {p->swtpm, "swtpm.sock"},
        {p->serial[0], "serial0.sock"}, {p->serial[1], "serial1.sock"},
        {p->serial[2], "serial2.sock"}, {p->serial[3], "serial3.sock"},
    };
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++) {
        int n = snprintf(socks[i].dst, VM_SOCK_PATH_MAX, "%s/%s", run_dir, socks[i].name);
        if (n < 0 || n >= VM_SOCK_PATH_MAX)
            return berr_set(err, ENAMETOOLONG,
                            "run directory '%s' is too long for a unix socket path (max %d bytes)",
                            run_dir, VM_SOCK_PATH_MAX - 1);
    }
    int n = snprintf(p->pid, sizeof p->pid, "%s/qemu.pid", run_dir);
    if (n < 0 || (size_t)n >= sizeof p->pid)
        return berr_set(err, ENAMETOOLONG, "run directory '%s' is too long", run_dir);
    return 0;
}

/* A unix socket chardev; server: QEMU listens (consoles), else QEMU
 * connects (swtpm listens). */
static void add_sock_chardev(struct argv_state *s, const char *id, const char *path, bool server)
{
    struct sbuf b = {0};
    sbuf_printf(&b, "socket,id=%s,path=", id);
    sbuf_add_qemu(&b, path);
    if (server)
        sbuf_add(&b, ",server=on,wait=off");
    strv_add(&s->sv, "-chardev");
    strv_take(&s->sv, sbuf_steal(&b));
}

static bool is_windows(const struct vm_config *c)
{
    return c->ostype && (c->ostype[0] == 'w');
}

static void machine_and_firmware(struct argv_state *s)
{
    const struct vm_config *c = s->c;
    struct vm_ovmf_files fw = {0};
    bool ovmf = vm_config_bios(c) == VM_BIOS_OVMF;
    struct sbuf m = {0};
    sbuf_printf(&m, "type=%s,accel=%s", s->q35 ? "q35" : "pc",
                s->ctx->accel == VM_ACCEL_KVM ? "kvm" : "tcg");
    if (ovmf) {
        vm_ovmf_files(&c->efidisk, s->ctx->ovmf_dir, &fw);
        if (fw.secure && !s->q35) {
            sbuf_free(&m);
            argv_fail(s, EINVAL, "efidisk0: pre-enrolled-keys=1 (secure boot) needs machine: q35");
            return;
        }
        if (fw.secure)
            sbuf_add(&m, ",smm=on");
        sbuf_add(&m, ",pflash0=pflash0,pflash1=drive-efidisk0");
    }
    strv_add(&s->sv, "-machine");
    strv_take(&s->sv, sbuf_steal(&m));
    if (!ovmf)
        return;
    if (fw.secure)
        argv_opt(s, "-global", "driver=cfi.pflash01,property=secure,value=on");
    struct sbuf b = {0};
    sbuf_add(&b, "driver=file,node-name=pflash0-file,read-only=on,filename=");
    sbuf_add_qemu(&b, fw.code);
    strv_add(&s->sv, "-blockdev");
    strv_take(&s->sv, sbuf_steal(&b));
    argv_opt(s, "-blockdev", "driver=raw,node-name=pflash0,file=pflash0-file,read-only=on");
    /* the vars live on the efidisk0 volume; the pflash is exactly the
     * template's size whatever the volume's size (raw size= clips it) */
    sbuf_printf(&b, "driver=raw,node-name=drive-efidisk0,size=%llu,file.driver=nbd,"
                    "file.server.type=unix,file.server.path=",
                (unsigned long long)fw.vars_size);
    sbuf_add_qemu(&b, s->ctx->nbd_socket);
    sbuf_printf(&b, ",file.export=%s/%s,file.reconnect-delay=%d", c->efidisk.vol.pool,
                c->efidisk.vol.vol, VM_NBD_RECONNECT_DELAY);
    strv_add(&s->sv, "-blockdev");
    strv_take(&s->sv, sbuf_steal(&b));
}

static void cpu_and_memory(struct argv_state *s)
{
    const struct vm_config *c = s->c;
    bool kvm = s->ctx->accel == VM_ACCEL_KVM;
    const char *model = c->cpu ? c->cpu : (kvm ? "host" : "max");
    if (!kvm && strcmp(model, "host") == 0)
        model = "max"; /* "host" needs KVM; max is everything TCG can emulate */
    struct sbuf b = {0};
    sbuf_add(&b, model);
    for (const char *f = c->cpu_flags; f && *f;) {
        size_t l = strcspn(f, ";");
        sbuf_printf(&b, ",%.*s", (int)l, f);
        f += l + (f[l] == ';');
    }
    if (kvm && is_windows(c))
        sbuf_add(&b, ",hv_relaxed,hv_spinlocks=0x1fff,hv_vapic,hv_time,hv_vpindex,hv_synic,"
                     "hv_stimer,hv_ipi");
    strv_add(&s->sv, "-cpu");
    strv_take(&s->sv, sbuf_steal(&b));
    int cores = vm_config_cores(c), sockets = vm_config_sockets(c), mem = vm_config_memory(c);
    argv_opt(s, "-smp", "%d,sockets=%d,cores=%d,maxcpus=%d", cores * sockets, sockets, cores,
             cores * sockets);
    argv_opt(s, "-m", "%d", mem);
    if (c->numa == 1) {
        for (int n = 0; n < sockets; n++) {
            argv_opt(s, "-object", "memory-backend-ram,id=ram-node%d,size=%dM", n, mem / sockets);
            argv_opt(s, "-numa", "node,nodeid=%d,cpus=%d-%d,memdev=ram-node%d", n, n * cores,
                     n * cores + cores - 1, n);
        }
    }
}

static void smbios_and_ids(struct argv_state *s)
{
    const struct vm_config *c = s->c;
    if (c->smbios1 && !strstr(c->smbios1, "base64=1")) {
        struct sbuf b = {0};
        sbuf_printf(&b, "type=1,%s", c->smbios1);
        strv_add(&s->sv, "-smbios");
        strv_take(&s->sv, sbuf_steal(&b));
    } else if (c->smbios1) {
        /* base64-encoded strings: pass only the uuid */
        const char *u = strstr(c->smbios1, "uuid=");
        if (u)
            argv_opt(s, "-smbios", "type=1,uuid=%.36s", u + 5);
    }
    if (c->vmgenid && strcmp(c->vmgenid, "0") != 0 && strcmp(c->vmgenid, "1") != 0)
        argv_opt(s, "-device", "vmgenid,guid=%s,id=vmgenid0", c->vmgenid);
}

static void consoles(struct argv_state *s)
{
    const struct vm_config *c = s->c;
    struct sbuf b = {0};
    sbuf_add(&b, "unix:");
    sbuf_add_qemu(&b, s->paths.qmp);
    sbuf_add(&b, ",server=on,wait=off");
    strv_add(&s->sv, "-qmp");
    strv_take(&s->sv, sbuf_steal(&b));
    strv_add(&s->sv, "-pidfile");
    strv_add(&s->sv, s->paths.pid);
    for (int i = 0; i < VM_MAX_SERIAL; i++)
        if (c->serial_socket[i]) {
            char id[16];
            snprintf(id, sizeof id, "serial%d", i);
            add_sock_chardev(s, id, s->paths.serial[i], true);
            argv_opt(s, "-device", "isa-serial,chardev=serial%d,id=serial%d-dev", i, i);
        }
    if (vm_config_agent_enabled(c)) {
        add_sock_chardev(s, "qga0", s->paths.qga, true);
        argv_opt(s, "-device", "virtio-serial-pci,id=qga0-serial");
        argv_opt(s, "-device", "virtserialport,bus=qga0-serial.0,chardev=qga0,name=org.qemu.guest_agent.0");
        s->pci++;
    }
    sbuf_add(&b, "unix:");
    sbuf_add_qemu(&b, s->paths.vnc);
    strv_add(&s->sv, "-vnc");
    strv_take(&s->sv, sbuf_steal(&b));
    bool gpu_passthrough = false;
    for (size_t i = 0; i < c->n_hostpcis; i++)
        gpu_passthrough |= c->hostpcis[i].x_vga == 1;
    enum vm_vga vga = c->vga ? c->vga : VM_VGA_STD;
    if (gpu_passthrough)
        vga = VM_VGA_NONE;
    static const char *const devs[] = {NULL, "VGA", "virtio-vga", "qxl-vga", "cirrus-vga", NULL, NULL};
    if (devs[vga]) {
        sbuf_printf(&b, "%s,id=vga", devs[vga]);
        if (c->vga_memory > 0)
            sbuf_printf(&b, ",vgamem_mb=%d", c->vga_memory);
        strv_add(&s->sv, "-device");
        strv_take(&s->sv, sbuf_steal(&b));
        s->pci++;
    }
}

static void tpm(struct argv_state *s)
{
    const struct vm_config *c = s->c;
    if (!c->tpmstate.present)
        return;
    add_sock_chardev(s, "chrtpm", s->ctx->swtpm_socket ? s->ctx->swtpm_socket : s->paths.swtpm,
                     false);
    argv_opt(s, "-tpmdev", "emulator,id=tpmdev0,chardev=chrtpm");
    bool crb = s->q35 && c->tpmstate.version == 20;
    argv_opt(s, "-device", "%s,tpmdev=tpmdev0,id=tpm0", crb ? "tpm-crb" : "tpm-tis");
}

int vm_build_argv(const struct vm_config *c, const struct vm_argv_ctx *ctx, char ***argv,
                  struct berr *err)
{
    *argv = NULL;
    if (!ctx->run_dir || !ctx->nbd_socket)
        return berr_set(err, EINVAL, "VM %u: run_dir and nbd_socket must be set", ctx->vmid);
    if (ctx->vmid < VM_VMID_MIN || ctx->vmid > VM_VMID_MAX)
        return berr_set(err, EINVAL, "invalid VMID %u", ctx->vmid);
    if (ctx->accel != VM_ACCEL_KVM && ctx->accel != VM_ACCEL_TCG)
        return berr_set(err, EINVAL, "VM %u: accelerator not resolved (kvm or tcg)", ctx->vmid);
    int r = vm_config_validate(c, err);
    if (r < 0)
        return r;
    struct argv_state s = {.c = c, .ctx = ctx, .err = err,
                           .q35 = vm_config_machine(c) == VM_MACHINE_Q35};
    if ((r = vm_paths_init(&s.paths, ctx->run_dir, err)) < 0)
        return r;

    strv_add(&s.sv, ctx->qemu_binary ? ctx->qemu_binary : "qemu-system-x86_64");
    strv_add(&s.sv, "-nodefaults");
    strv_add(&s.sv, "-no-user-config");
    struct sbuf name = {0};
    if (c->name)
        sbuf_add_qemu(&name, c->name);
    else
        sbuf_printf(&name, "vm%u", ctx->vmid);
    sbuf_add(&name, ",debug-threads=on");
    strv_add(&s.sv, "-name");
    strv_take(&s.sv, sbuf_steal(&name));
    machine_and_firmware(&s);
    cpu_and_memory(&s);
    smbios_and_ids(&s);
    if (is_windows(c))
        argv_opt(&s, "-rtc", "base=localtime%s", ctx->accel == VM_ACCEL_KVM ? ",driftfix=slew" : "");
    consoles(&s);
    tpm(&s);
    argv_hostpci(&s); /* pins PCI addresses: before the auto-placed devices */
    argv_disks(&s);
    argv_nets(&s);
    argv_usb(&s);
    if (c->balloon != 0) {
        argv_opt(&s, "-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on");
        s.pci++;
    }
    if (c->boot_set)
        argv_opt(&s, "-boot", "menu=on,strict=on,reboot-timeout=1000");
    if (c->kernel) {
        strv_add(&s.sv, "-kernel");
        strv_add(&s.sv, c->kernel);
        if (c->initrd) {
            strv_add(&s.sv, "-initrd");
            strv_add(&s.sv, c->initrd);
        }
        if (c->append) {
            strv_add(&s.sv, "-append");
            strv_add(&s.sv, c->append);
        }
    }
    if (!s.rc && s.pci > ARGV_MAX_PCI)
        argv_fail(&s, E2BIG, "too many PCI devices (%d, at most %d): use scsihw: virtio-scsi-pci "
                             "to put all SCSI disks on one controller", s.pci, ARGV_MAX_PCI);
    if (!s.rc && s.sv.oom)
        argv_fail(&s, ENOMEM, "out of memory");
    if (s.rc) {
        strv_free_all(s.sv.v);
        return s.rc;
    }
    *argv = s.sv.v;
    return 0;
}

void vm_argv_free(char **argv)
{
    strv_free_all(argv);
}
