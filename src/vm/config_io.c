/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM config text: line parsing (comments, `key: value`, `[section]` tails),
 * the canonical writer, load/save through write_file_atomic, and the small
 * accessors (effective defaults, volume iteration, VMIDs). */
#include "vm/config_int.h"
#include "common/cleanup.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_comment(struct vm_config *c, const char *line, size_t len)
{
    char **n = realloc(c->comments, (c->n_comments + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    c->comments = n;
    if (!(n[c->n_comments] = strndup(line, len)))
        return -ENOMEM;
    c->n_comments++;
    return 0;
}

int vm_config_parse(const char *text, size_t len, struct vm_config *c, struct berr *err)
{
    vm_config_init(c);
    if (len > VM_CONFIG_MAX_BYTES)
        return berr_set(err, EFBIG, "config is larger than %u bytes", VM_CONFIG_MAX_BYTES);
    if (memchr(text, '\0', len))
        return berr_set(err, EINVAL, "config contains a NUL byte (not a text file?)");
    size_t pos = 0;
    int lineno = 0, r = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        lineno++;
        size_t b = 0, e = ll;
        while (b < e && (line[b] == ' ' || line[b] == '\t'))
            b++;
        while (e > b && isspace((unsigned char)line[e - 1]))
            e--;
        if (b == e)
            continue;
        if (line[b] == '#') {
            if (add_comment(c, line + b, e - b) < 0) {
                r = berr_set(err, ENOMEM, "out of memory");
                break;
            }
            continue;
        }
        if (line[b] == '[') {
            /* snapshot / pending sections: kept verbatim up to the end */
            if (!(c->sections = strndup(line, len - (size_t)(line - text)))) {
                r = berr_set(err, ENOMEM, "out of memory");
                break;
            }
            break;
        }
        char key[32];
        size_t k = b;
        while (k < e && (isalnum((unsigned char)line[k]) || line[k] == '_' || line[k] == '-'))
            k++;
        if (k == b || k >= e || line[k] != ':' || k - b >= sizeof key) {
            r = berr_set(err, EINVAL, "line %d: expected 'key: value', got '%.*s'", lineno,
                         (int)MIN(e - b, 80), line + b);
            break;
        }
        memcpy(key, line + b, k - b);
        key[k - b] = '\0';
        size_t vb = k + 1;
        while (vb < e && (line[vb] == ' ' || line[vb] == '\t'))
            vb++;
        char *val = strndup(line + vb, e - vb);
        if (!val) {
            r = berr_set(err, ENOMEM, "out of memory");
            break;
        }
        r = vm_config_set_key(c, key, val, false, err);
        free(val);
        if (r < 0) {
            berr_wrap(err, "line %d", lineno);
            break;
        }
    }
    if (r >= 0)
        r = vm_config_validate(c, err);
    if (r < 0)
        vm_config_free(c);
    return r;
}

/* ---- writer ----------------------------------------------------------------- */

struct entry {
    char key[24];
    char *line;
};

/* Alphabetic by the letter prefix, then numeric by the slot number. */
static int entry_cmp(const void *a, const void *b)
{
    const char *x = ((const struct entry *)a)->key, *y = ((const struct entry *)b)->key;
    size_t px = strcspn(x, "0123456789"), py = strcspn(y, "0123456789");
    int c = strncmp(x, y, MIN(px, py));
    if (c)
        return c;
    if (px != py)
        return px < py ? -1 : 1;
    long nx = atol(x + px), ny = atol(y + py);
    return nx < ny ? -1 : nx > ny;
}

struct writer {
    struct entry *v;
    size_t n, cap;
    bool oom;
    struct sbuf cur;
};

static void w_begin(struct writer *w) { memset(&w->cur, 0, sizeof(w->cur)); }

static void w_end(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void w_end(struct writer *w, const char *fmt, ...)
{
    char *line = sbuf_steal(&w->cur);
    if (!line || w->oom)
        goto oom;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 32;
        struct entry *n = realloc(w->v, cap * sizeof(*n));
        if (!n)
            goto oom;
        w->v = n;
        w->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->v[w->n].key, sizeof(w->v[w->n].key), fmt, ap);
    va_end(ap);
    w->v[w->n++].line = line;
    return;
oom:
    free(line);
    w->oom = true;
}

static void w_str(struct writer *w, const char *key, const char *v)
{
    if (!v)
        return;
    w_begin(w);
    sbuf_add(&w->cur, v);
    w_end(w, "%s", key);
}

static void w_int(struct writer *w, const char *key, int v)
{
    if (v < 0)
        return;
    w_begin(w);
    sbuf_printf(&w->cur, "%d", v);
    w_end(w, "%s", key);
}

int vm_config_format(const struct vm_config *c, char **out, struct berr *err)
{
    struct writer w = {0};
    char dk[16];
    w_str(&w, "name", c->name);
    w_int(&w, "memory", c->memory);
    w_int(&w, "balloon", c->balloon);
    w_int(&w, "cores", c->cores);
    w_int(&w, "sockets", c->sockets);
    if (c->cpu) {
        w_begin(&w);
        sbuf_add(&w.cur, c->cpu);
        if (c->cpu_flags)
            sbuf_printf(&w.cur, ",flags=%s", c->cpu_flags);
        w_end(&w, "cpu");
    }
    if (c->machine)
        w_str(&w, "machine", vm_machine_names[c->machine]);
    if (c->bios)
        w_str(&w, "bios", vm_bios_names[c->bios]);
    if (c->scsihw)
        w_str(&w, "scsihw", vm_scsihw_names[c->scsihw]);
    if (c->accel_set)
        w_str(&w, "accel", vm_accel_names[c->accel]);
    if (c->vga) {
        w_begin(&w);
        sbuf_add(&w.cur, vm_vga_names[c->vga]);
        if (c->vga_memory >= 0)
            sbuf_printf(&w.cur, ",memory=%d", c->vga_memory);
        w_end(&w, "vga");
    }
    w_str(&w, "ostype", c->ostype);
    w_int(&w, "onboot", c->onboot);
    w_int(&w, "numa", c->numa);
    if (c->agent.enabled >= 0) {
        w_begin(&w);
        vm_format_agent(&w.cur, &c->agent);
        w_end(&w, "agent");
    }
    if (c->boot_set) {
        w_begin(&w);
        sbuf_add(&w.cur, "order=");
        for (size_t i = 0; c->boot_order && c->boot_order[i]; i++)
            sbuf_printf(&w.cur, "%s%s", i ? ";" : "", c->boot_order[i]);
        w_end(&w, "boot");
    }
    w_str(&w, "kernel", c->kernel);
    w_str(&w, "initrd", c->initrd);
    w_str(&w, "append", c->append);
    w_str(&w, "description", c->description);
    w_str(&w, "smbios1", c->smbios1);
    w_str(&w, "vmgenid", c->vmgenid);
    w_str(&w, "meta", c->meta);
    if (c->efidisk.present) {
        w_begin(&w);
        vm_format_efidisk(&w.cur, &c->efidisk);
        w_end(&w, "efidisk0");
    }
    if (c->tpmstate.present) {
        w_begin(&w);
        vm_format_tpmstate(&w.cur, &c->tpmstate);
        w_end(&w, "tpmstate0");
    }
    for (int i = 0; i < VM_MAX_SERIAL; i++)
        if (c->serial_socket[i]) {
            w_begin(&w);
            sbuf_add(&w.cur, "socket");
            w_end(&w, "serial%d", i);
        }
    for (size_t i = 0; i < c->n_disks; i++) {
        w_begin(&w);
        vm_format_disk(&w.cur, &c->disks[i]);
        w_end(&w, "%s", vm_disk_key(&c->disks[i], dk, sizeof dk));
    }
    for (size_t i = 0; i < c->n_nets; i++) {
        w_begin(&w);
        vm_format_net(&w.cur, &c->nets[i]);
        w_end(&w, "net%d", c->nets[i].index);
    }
    for (size_t i = 0; i < c->n_hostpcis; i++) {
        w_begin(&w);
        vm_format_hostpci(&w.cur, &c->hostpcis[i]);
        w_end(&w, "hostpci%d", c->hostpcis[i].index);
    }
    for (size_t i = 0; i < c->n_usbs; i++) {
        w_begin(&w);
        vm_format_usb(&w.cur, &c->usbs[i]);
        w_end(&w, "usb%d", c->usbs[i].index);
    }
    struct sbuf b = {0};
    if (!w.oom) {
        if (w.n)
            qsort(w.v, w.n, sizeof(*w.v), entry_cmp);
        for (size_t i = 0; i < c->n_comments; i++)
            sbuf_printf(&b, "%s\n", c->comments[i]);
        for (size_t i = 0; i < w.n; i++)
            sbuf_printf(&b, "%s: %s\n", w.v[i].key, w.v[i].line);
        if (c->sections) {
            sbuf_add(&b, "\n");
            sbuf_add(&b, c->sections);
            if (b.len && b.s && b.s[b.len - 1] != '\n')
                sbuf_add(&b, "\n");
        }
    }
    for (size_t i = 0; i < w.n; i++)
        free(w.v[i].line);
    free(w.v);
    if (w.oom || !(*out = sbuf_steal(&b))) {
        sbuf_free(&b);
        return berr_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

int vm_config_load(const char *path, struct vm_config *c, struct berr *err)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    vm_config_init(c);
    int r = read_file_all(path, VM_CONFIG_MAX_BYTES, &text, &len, err);
    if (r < 0)
        return r;
    r = vm_config_parse(text, len, c, err);
    if (r < 0)
        berr_wrap(err, "%s", path);
    return r;
}

int vm_config_save(const char *path, const struct vm_config *c, struct berr *err)
{
    int r = vm_config_validate(c, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *text = NULL;
    if ((r = vm_config_format(c, &text, err)) < 0)
        return r;
    return write_file_atomic(path, text, strlen(text), 0640, err);
}

int vm_parse_vmid(const char *s, uint32_t *vmid, struct berr *err)
{
    long v;
    struct berr e = {0};
    if (!s || vm_parse_int("vmid", NULL, s, VM_VMID_MIN, VM_VMID_MAX, &v, &e) < 0)
        return berr_set(err, EINVAL, "invalid VMID '%s' (a number from %u to %u)", s ? s : "",
                        VM_VMID_MIN, VM_VMID_MAX);
    *vmid = (uint32_t)v;
    return 0;
}

int vm_config_foreach_volume(const struct vm_config *c, vm_volume_fn fn, void *opaque)
{
    int r;
    char dk[16];
    if (c->efidisk.present && (r = fn("efidisk0", &c->efidisk.vol, opaque)) != 0)
        return r;
    if (c->tpmstate.present && (r = fn("tpmstate0", &c->tpmstate.vol, opaque)) != 0)
        return r;
    for (size_t i = 0; i < c->n_disks; i++)
        if (c->disks[i].kind == VM_DISK_VOLUME &&
            (r = fn(vm_disk_key(&c->disks[i], dk, sizeof dk), &c->disks[i].vol, opaque)) != 0)
            return r;
    return 0;
}

enum vm_machine vm_config_machine(const struct vm_config *c)
{
    return c->machine ? c->machine : VM_MACHINE_PC;
}
enum vm_bios vm_config_bios(const struct vm_config *c)
{
    return c->bios ? c->bios : VM_BIOS_SEABIOS;
}
enum vm_scsihw vm_config_scsihw(const struct vm_config *c)
{
    return c->scsihw ? c->scsihw : VM_SCSIHW_LSI;
}
int vm_config_memory(const struct vm_config *c)
{
    return c->memory > 0 ? c->memory : 512;
}
int vm_config_cores(const struct vm_config *c)
{
    return c->cores > 0 ? c->cores : 1;
}
int vm_config_sockets(const struct vm_config *c)
{
    return c->sockets > 0 ? c->sockets : 1;
}
bool vm_config_agent_enabled(const struct vm_config *c)
{
    return c->agent.enabled == 1;
}

const char *vm_disk_key(const struct vm_disk *d, char *buf, size_t len)
{
    static const char *const bus[] = {"scsi", "virtio", "sata", "ide"};
    snprintf(buf, len, "%s%d", bus[d->bus], d->index);
    return buf;
}

const struct vm_disk *vm_config_find_disk(const struct vm_config *c, enum vm_bus bus, int index)
{
    for (size_t i = 0; i < c->n_disks; i++)
        if (c->disks[i].bus == bus && c->disks[i].index == index)
            return &c->disks[i];
    return NULL;
}
