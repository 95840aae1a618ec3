/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bridges, taps and networks.json (see net.h). */
#include "vm/net.h"
#include "vm/proc.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define IP_TIMEOUT_MS 10000
#define NETWORKS_MAX (1 << 20)

int vm_ifname_check(const char *what, const char *name, struct berr *err)
{
    size_t l = name ? strlen(name) : 0;
    if (l == 0 || l >= VM_IFNAME_MAX)
        return berr_set(err, EINVAL, "%s: '%s' is not an interface name (1..%d characters)",
                        what, name ? name : "", VM_IFNAME_MAX - 1);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return berr_set(err, EINVAL, "%s: '%s' is not an interface name", what, name);
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return berr_set(err, EINVAL, "%s: '%s' is not an interface name (letters, digits, "
                            "'_', '.', '-')", what, name);
    return 0;
}

int vm_cidr_check(const char *cidr, struct berr *err)
{
    char addr[64];
    const char *slash = cidr ? strchr(cidr, '/') : NULL;
    if (!slash || (size_t)(slash - cidr) >= sizeof addr || slash == cidr)
        return berr_set(err, EINVAL, "cidr: '%s' is not ADDRESS/PREFIX (e.g. 10.10.0.1/24)",
                        cidr ? cidr : "");
    memcpy(addr, cidr, (size_t)(slash - cidr));
    addr[slash - cidr] = '\0';
    unsigned char buf[16];
    int maxp;
    if (inet_pton(AF_INET, addr, buf) == 1)
        maxp = 32;
    else if (inet_pton(AF_INET6, addr, buf) == 1)
        maxp = 128;
    else
        return berr_set(err, EINVAL, "cidr: '%s' is not an IPv4 or IPv6 address", addr);
    uint64_t pfx;
    if (parse_u64(slash + 1, 1, (uint64_t)maxp, &pfx, NULL) < 0)
        return berr_set(err, EINVAL, "cidr: prefix length '%s' is not 1..%d", slash + 1, maxp);
    return 0;
}

static int net_cmp(const void *a, const void *b)
{
    return strcmp(((const struct vm_network *)a)->name, ((const struct vm_network *)b)->name);
}

int vm_networks_parse(const char *text, size_t len, struct vm_network **out, size_t *n,
                      struct berr *err)
{
    *out = NULL;
    *n = 0;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root)
        return berr_set(err, EINVAL, "invalid JSON at line %d: %s", je.line, je.text);
    json_t *arr = json_object_get(root, "networks");
    int r = 0;
    if (!json_is_array(arr)) {
        json_decref(root);
        return berr_set(err, EINVAL, "no \"networks\" array");
    }
    struct vm_network *v = calloc(json_array_size(arr) + 1, sizeof(*v));
    if (!v) {
        json_decref(root);
        return berr_set(err, ENOMEM, "out of memory");
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        json_t *jc = json_object_get(e, "cidr"), *ju = json_object_get(e, "uplink");
        const char *cidr = json_string_value(jc), *up = json_string_value(ju);
        if ((r = vm_ifname_check("name", name, err)) < 0 ||
            (cidr && (r = vm_cidr_check(cidr, err)) < 0) ||
            (up && (r = vm_ifname_check("uplink", up, err)) < 0) ||
            (jc && !json_is_null(jc) && !cidr) || (ju && !json_is_null(ju) && !up)) {
            if (r == 0)
                r = berr_set(err, EINVAL, "network %zu: cidr/uplink must be strings or null", i);
            break;
        }
        for (size_t j = 0; j < *n && r == 0; j++)
            if (strcmp(v[j].name, name) == 0)
                r = berr_set(err, EINVAL, "network '%s' is listed twice", name);
        if (r < 0)
            break;
        snprintf(v[*n].name, sizeof v[*n].name, "%s", name);
        snprintf(v[*n].cidr, sizeof v[*n].cidr, "%s", cidr ? cidr : "");
        snprintf(v[*n].uplink, sizeof v[*n].uplink, "%s", up ? up : "");
        (*n)++;
    }
    json_decref(root);
    if (r < 0) {
        free(v);
        *n = 0;
        return r;
    }
    qsort(v, *n, sizeof(*v), net_cmp);
    *out = v;
    return 0;
}

static json_t *net_obj(const struct vm_network *n)
{
    return json_pack("{s:s,s:o,s:o}", "name", n->name, "cidr",
                     n->cidr[0] ? json_string(n->cidr) : json_null(), "uplink",
                     n->uplink[0] ? json_string(n->uplink) : json_null());
}

char *vm_networks_render(const struct vm_network *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, net_obj(&v[i]));
    json_t *root = json_pack("{s:i,s:o}", "version", 1, "networks", arr);
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    return s;
}

int vm_nettab_init(struct vm_nettab *t, const char *path)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->path, sizeof t->path, "%s", path);
    return pthread_mutex_init(&t->lock, NULL) ? -ENOMEM : 0;
}

void vm_nettab_destroy(struct vm_nettab *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
    pthread_mutex_destroy(&t->lock);
}

static int save(struct vm_nettab *t, struct berr *err)
{
    _cleanup_free_ char *text = vm_networks_render(t->v, t->n);
    if (!text)
        return berr_set(err, ENOMEM, "out of memory");
    return write_file_atomic(t->path, text, strlen(text), 0600, err);
}

static int ip(struct vm_nettab *t, struct berr *err, const char *a1, const char *a2,
              const char *a3, const char *a4, const char *a5, const char *a6, const char *a7)
{
    if (t && t->dry_run)
        return 0;
    char *argv[] = {"ip", (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5,
                    (char *)a6, (char *)a7, NULL};
    return vm_proc_run(argv, IP_TIMEOUT_MS, err);
}

bool vm_iface_exists(const char *name)
{
    char p[128];
    struct stat st;
    snprintf(p, sizeof p, "/sys/class/net/%s", name);
    return stat(p, &st) == 0;
}

bool vm_bridge_exists(const char *name)
{
    char p[128];
    struct stat st;
    snprintf(p, sizeof p, "/sys/class/net/%s/bridge", name);
    return stat(p, &st) == 0;
}

/* Bring a bridge to its configured state (create if missing). */
static int bridge_up(struct vm_nettab *t, const struct vm_network *n, bool created_ok,
                     struct berr *err)
{
    int r;
    bool created = false;
    if (t->dry_run)
        return 0;
    if (!vm_iface_exists(n->name)) {
        if ((r = ip(t, err, "link", "add", n->name, "type", "bridge", NULL, NULL)) < 0)
            return r;
        created = true;
    } else if (!created_ok) {
        return berr_set(err, EEXIST, "the host already has an interface named %s", n->name);
    }
    if (n->cidr[0] && created &&
        (r = ip(t, err, "addr", "add", n->cidr, "dev", n->name, NULL, NULL)) < 0)
        goto undo;
    if (n->uplink[0] && (r = ip(t, err, "link", "set", n->uplink, "master", n->name, NULL, NULL)) < 0)
        goto undo;
    if ((r = ip(t, err, "link", "set", n->name, "up", NULL, NULL, NULL)) < 0)
        goto undo;
    return 0;
undo:
    if (created)
        ip(t, NULL, "link", "del", n->name, NULL, NULL, NULL, NULL);
    return r;
}

void vm_nettab_load(struct vm_nettab *t)
{
    struct berr err = {0};
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = read_file_all(t->path, NETWORKS_MAX, &text, &len, &err);
    if (r == -ENOENT)
        return;
    struct vm_network *v = NULL;
    size_t n = 0;
    if (r < 0 || vm_networks_parse(text, len, &v, &n, &err) < 0) {
        blog_err("%s: %s; no networks restored", t->path, err.msg);
        return;
    }
    pthread_mutex_lock(&t->lock);
    free(t->v);
    t->v = v;
    t->n = n;
    for (size_t i = 0; i < n; i++) {
        if (bridge_up(t, &v[i], true, &err) < 0)
            blog_err("network %s: cannot restore the bridge: %s", v[i].name, err.msg);
        else
            blog_info("network %s ready%s%s", v[i].name, v[i].cidr[0] ? " at " : "", v[i].cidr);
    }
    pthread_mutex_unlock(&t->lock);
}

static ssize_t find(struct vm_nettab *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

bool vm_net_known(struct vm_nettab *t, const char *name)
{
    pthread_mutex_lock(&t->lock);
    bool k = find(t, name) >= 0;
    pthread_mutex_unlock(&t->lock);
    return k;
}

int vm_net_create(struct vm_nettab *t, const struct vm_network *n, struct berr *err)
{
    int r;
    if ((r = vm_ifname_check("name", n->name, err)) < 0 ||
        (n->cidr[0] && (r = vm_cidr_check(n->cidr, err)) < 0) ||
        (n->uplink[0] && (r = vm_ifname_check("uplink", n->uplink, err)) < 0))
        return r;
    if (n->uplink[0] && !t->dry_run && !vm_iface_exists(n->uplink))
        return berr_set(err, ENOENT, "uplink: the host has no interface named %s", n->uplink);
    pthread_mutex_lock(&t->lock);
    if (find(t, n->name) >= 0) {
        r = berr_set(err, EEXIST, "network %s already exists", n->name);
        goto out;
    }
    struct vm_network *nv = realloc(t->v, (t->n + 1) * sizeof(*nv));
    if (!nv) {
        r = berr_set(err, ENOMEM, "out of memory");
        goto out;
    }
    t->v = nv;
    if ((r = bridge_up(t, n, false, err)) < 0)
        goto out;
    t->v[t->n++] = *n;
    qsort(t->v, t->n, sizeof(*t->v), net_cmp);
    if ((r = save(t, err)) < 0) {
        ssize_t i = find(t, n->name);
        memmove(&t->v[i], &t->v[i + 1], (t->n - (size_t)i - 1) * sizeof(*t->v));
        t->n--;
        ip(t, NULL, "link", "del", n->name, NULL, NULL, NULL, NULL);
    }
out:
    pthread_mutex_unlock(&t->lock);
    return r;
}

int vm_net_destroy(struct vm_nettab *t, const char *name, struct berr *err)
{
    pthread_mutex_lock(&t->lock);
    int r = 0;
    ssize_t i = find(t, name);
    if (i < 0) {
        r = berr_set(err, ENOENT, "no network named %s", name);
        goto out;
    }
    if (!t->dry_run && vm_iface_exists(name) &&
        (r = ip(t, err, "link", "del", name, NULL, NULL, NULL, NULL)) < 0)
        goto out;
    struct vm_network saved = t->v[i];
    memmove(&t->v[i], &t->v[i + 1], (t->n - (size_t)i - 1) * sizeof(*t->v));
    t->n--;
    if ((r = save(t, err)) < 0) {
        /* the bridge is gone from the host; keep the table as the file says */
        t->v[t->n++] = saved;
        qsort(t->v, t->n, sizeof(*t->v), net_cmp);
    }
out:
    pthread_mutex_unlock(&t->lock);
    return r;
}

static json_t *render(const struct vm_network *n)
{
    json_t *o = net_obj(n);
    char p[160];
    const char *state = "missing";
    char oper[32] = "";
    snprintf(p, sizeof p, "/sys/class/net/%s/operstate", n->name);
    _cleanup_free_ char *txt = NULL;
    size_t len;
    if (read_file_all(p, 64, &txt, &len, NULL) == 0) {
        snprintf(oper, sizeof oper, "%.*s", (int)strcspn(txt, "\n"), txt);
        state = oper;
    }
    json_t *ports = json_array();
    snprintf(p, sizeof p, "/sys/class/net/%s/brif", n->name);
    DIR *d = opendir(p);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_name[0] != '.')
                json_array_append_new(ports, json_string(de->d_name));
        closedir(d);
    }
    /* sort ports by name for stable output */
    size_t np = json_array_size(ports);
    for (size_t a = 1; a < np; a++)
        for (size_t b = a; b > 0 && strcmp(json_string_value(json_array_get(ports, b - 1)),
                                           json_string_value(json_array_get(ports, b))) > 0; b--) {
            json_t *x = json_incref(json_array_get(ports, b - 1));
            json_array_set(ports, b - 1, json_array_get(ports, b));
            json_array_set_new(ports, b, x);
        }
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "ports", ports);
    return o;
}

json_t *vm_net_json(struct vm_nettab *t, const char *name)
{
    pthread_mutex_lock(&t->lock);
    ssize_t i = find(t, name);
    json_t *o = i >= 0 ? render(&t->v[i]) : NULL;
    pthread_mutex_unlock(&t->lock);
    return o;
}

json_t *vm_net_list_json(struct vm_nettab *t)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n; i++)
        json_array_append_new(arr, render(&t->v[i]));
    pthread_mutex_unlock(&t->lock);
    return arr;
}

int vm_tap_create(const char *tap, const char *bridge, int mtu, struct berr *err)
{
    int r;
    if (!vm_iface_exists(tap) &&
        (r = ip(NULL, err, "tuntap", "add", "dev", tap, "mode", "tap", NULL)) < 0)
        return r;
    if ((r = ip(NULL, err, "link", "set", tap, "master", bridge, NULL, NULL)) < 0)
        goto fail;
    if (mtu > 0) {
        char m[16];
        snprintf(m, sizeof m, "%d", mtu);
        if ((r = ip(NULL, err, "link", "set", tap, "mtu", m, NULL, NULL)) < 0)
            goto fail;
    }
    if ((r = ip(NULL, err, "link", "set", tap, "up", NULL, NULL, NULL)) < 0)
        goto fail;
    return 0;
fail:
    vm_tap_delete(tap);
    return r;
}

void vm_tap_delete(const char *tap)
{
    if (vm_iface_exists(tap))
        ip(NULL, NULL, "link", "del", tap, NULL, NULL, NULL, NULL);
}
