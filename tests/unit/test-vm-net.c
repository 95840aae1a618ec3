/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for VM networking and supervisor pieces that need no QEMU and
 * no root: interface-name and CIDR validation, networks.json parse/render
 * round trip and rejection of bad files, the network table with `ip`
 * disabled (create, duplicate, destroy, persistence across a reload), and
 * the helper-process runner's error messages. */
#include "tap.h"
#include "vm/net.h"
#include "vm/proc.h"
#include "vm/supervisor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void names(void)
{
    struct berr e = {0};
    ok(vm_ifname_check("name", "vmbr0", &e) == 0, "vmbr0 is a name");
    ok(vm_ifname_check("name", "a.b-c_d", &e) == 0, "dots, dashes, underscores");
    ok(vm_ifname_check("name", "0123456789abcde", &e) == 0, "15 characters");
    ok(vm_ifname_check("name", "0123456789abcdef", &e) == -EINVAL && strstr(e.msg, "name:"),
       "16 characters rejected, naming the field (%s)", e.msg);
    ok(vm_ifname_check("uplink", "", &e) == -EINVAL && strstr(e.msg, "uplink"), "empty");
    ok(vm_ifname_check("name", "a b", &e) == -EINVAL, "space");
    ok(vm_ifname_check("name", "a/b", &e) == -EINVAL, "slash");
    ok(vm_ifname_check("name", "..", &e) == -EINVAL, "dot-dot");
    ok(vm_ifname_check("name", NULL, &e) == -EINVAL, "NULL");
}

static void cidrs(void)
{
    struct berr e = {0};
    ok(vm_cidr_check("10.10.0.1/24", &e) == 0, "IPv4 /24");
    ok(vm_cidr_check("fd00::1/64", &e) == 0, "IPv6 /64");
    ok(vm_cidr_check("10.10.0.1", &e) == -EINVAL && strstr(e.msg, "cidr"), "no prefix: %s", e.msg);
    ok(vm_cidr_check("10.10.0.1/33", &e) == -EINVAL, "prefix 33 on IPv4");
    ok(vm_cidr_check("10.10.0.1/0", &e) == -EINVAL, "prefix 0");
    ok(vm_cidr_check("10.10.0.256/24", &e) == -EINVAL, "bad octet");
    ok(vm_cidr_check("/24", &e) == -EINVAL, "no address");
    ok(vm_cidr_check("10.0.0.1/24x", &e) == -EINVAL, "trailing garbage");
    ok(vm_cidr_check("fd00::1/129", &e) == -EINVAL, "prefix 129 on IPv6");
}

static void json_files(void)
{
    struct berr e = {0};
    struct vm_network v[2] = {{"vmbr1", "", "eth0"}, {"vmbr0", "10.0.0.1/24", ""}};
    char *text = vm_networks_render(v, 2);
    ok(text && strstr(text, "\"uplink\": null") && strstr(text, "\"cidr\": null"),
       "render: empty fields are null");
    struct vm_network *out = NULL;
    size_t n = 0;
    ok(text && vm_networks_parse(text, strlen(text), &out, &n, &e) == 0 && n == 2, "parse back");
    ok(n == 2 && strcmp(out[0].name, "vmbr0") == 0 && strcmp(out[0].cidr, "10.0.0.1/24") == 0 &&
           strcmp(out[1].uplink, "eth0") == 0 && out[1].cidr[0] == '\0',
       "round trip, sorted by name");
    free(out);
    free(text);
    static const char *const bad[] = {
        "", "[]", "{}", "{\"networks\": 1}",
        "{\"networks\": [{\"name\": \"a b\"}]}",
        "{\"networks\": [{\"name\": \"br0\", \"cidr\": \"x\"}]}",
        "{\"networks\": [{\"name\": \"br0\", \"cidr\": 5}]}",
        "{\"networks\": [{\"name\": \"br0\"}, {\"name\": \"br0\"}]}",
        "{\"networks\": [{}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = NULL;
        int r = vm_networks_parse(bad[i], strlen(bad[i]), &out, &n, &e);
        ok(r < 0 && !out, "bad networks.json %zu rejected (%s)", i, e.msg);
    }
}

static void table(void)
{
    char dir[] = "/tmp/berth-vmnet-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/networks.json", dir);
    struct vm_nettab t;
    struct berr e = {0};
    ok(vm_nettab_init(&t, path) == 0, "init");
    t.dry_run = true;
    vm_nettab_load(&t); /* no file: nothing */
    struct vm_network a = {"brtest0", "10.9.0.1/24", ""}, b = {"brtest1", "", ""};
    ok(vm_net_create(&t, &a, &e) == 0, "create brtest0");
    ok(vm_net_create(&t, &b, &e) == 0, "create brtest1");
    ok(vm_net_create(&t, &a, &e) == -EEXIST && strstr(e.msg, "already exists"), "duplicate: %s",
       e.msg);
    struct vm_network bad = {"x", "10.0.0.1", ""};
    ok(vm_net_create(&t, &bad, &e) == -EINVAL && strstr(e.msg, "cidr"), "bad cidr: %s", e.msg);
    ok(vm_net_known(&t, "brtest0") && !vm_net_known(&t, "nope"), "known");
    json_t *l = vm_net_list_json(&t);
    ok(json_array_size(l) == 2 &&
           strcmp(json_string_value(json_object_get(json_array_get(l, 0), "state")), "missing") == 0,
       "list: 2 networks, bridge missing on this host");
    json_decref(l);
    ok(vm_net_destroy(&t, "brtest1", &e) == 0, "destroy brtest1");
    ok(vm_net_destroy(&t, "brtest1", &e) == -ENOENT, "destroy again: ENOENT");
    vm_nettab_destroy(&t);

    ok(vm_nettab_init(&t, path) == 0, "re-init");
    t.dry_run = true;
    vm_nettab_load(&t);
    ok(t.n == 1 && strcmp(t.v[0].name, "brtest0") == 0 && strcmp(t.v[0].cidr, "10.9.0.1/24") == 0,
       "persisted across a reload");
    vm_nettab_destroy(&t);
    unlink(path);
    rmdir(dir);
}

static void procs(void)
{
    struct berr e = {0};
    char *t[] = {"true", NULL};
    ok(vm_proc_run(t, 5000, &e) == 0, "run true");
    char *f[] = {"sh", "-c", "echo oops >&2; exit 2", NULL};
    ok(vm_proc_run(f, 5000, &e) == -EIO && strstr(e.msg, "oops"), "stderr in the message: %s",
       e.msg);
    char *m[] = {"/nonexistent/berth-no-such-tool", NULL};
    ok(vm_proc_run(m, 5000, &e) < 0, "missing program: %s", e.msg);
    char *s[] = {"sleep", "5", NULL};
    ok(vm_proc_run(s, 100, &e) == -ETIMEDOUT, "timeout kills: %s", e.msg);
    ok(vm_proc_matches(getpid(), NULL, "test-vm-net"), "our own cmdline matches");
    ok(!vm_proc_matches(getpid(), "qemu", "test-vm-net"), "not qemu");
    ok(strcmp(vm_status_name(VM_ST_SHUTTING_DOWN), "shutting-down") == 0 &&
           strcmp(vm_status_name(VM_ST_CRASHED), "crashed") == 0,
       "status names");
}

int main(void)
{
    names();
    cidrs();
    json_files();
    table();
    procs();
    return done_testing();
}
