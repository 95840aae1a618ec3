/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of VM snapshots without QEMU or the engine:
 *  - snapshot records in the config's section tail (append, parse, find,
 *    remove, Proxmox sections and keys, non-snapshot sections kept);
 *  - the freeze/thaw session against a fake agent: a freeze that outlives
 *    its timeout is still followed by a thaw (on a new session), a failed
 *    freeze too, and no agent means nothing to thaw;
 *  - the supervisor's snapshot, list, destroy, rollback and clones over
 *    fake engine calls (a stopped VM): which volumes, atomic per pool,
 *    undo on failure, records, restored config, clone identity. */
#include "vm/qga_freeze.h"
#include "vm/snaprec.h"
#include "vm/vm_snap.h"
#include "common/util.h"
#include "tap.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/test-vm-snap.XXXXXX";

/* ---- records ---- */

static void test_records(void)
{
    struct vm_snap_info a = {.name = "s1", .time = 200, .frozen = true,
                             .config = "memory: 512\nname: one\n"};
    struct vm_snap_info b = {.name = "s0", .time = 100, .config = "memory: 256\n"};
    char *t1 = NULL, *t2 = NULL, *t3 = NULL;
    const char *pending = "[PENDING]\nmemory: 1024\n";
    ok(snaprec_append(pending, &a, &t1, NULL) == 0 && t1, "append to a tail with [PENDING]");
    ok(snaprec_append(t1, &b, &t2, NULL) == 0 && t2, "append a second record");
    ok(strstr(t2, "[s1]\nmemory: 512\nname: one\nfsfreeze: 1\nsnaptime: 200\n") != NULL,
       "record layout");
    struct vm_snap_info *v = NULL;
    size_t n = 0;
    ok(snaprec_parse(t2, &v, &n, NULL) == 0 && n == 2, "two records (PENDING skipped)");
    if (n == 2) {
        ok(strcmp(v[0].name, "s0") == 0 && strcmp(v[1].name, "s1") == 0, "oldest first");
        ok(v[1].frozen && !v[0].frozen && v[1].time == 200, "frozen and time read back");
        ok(strcmp(v[1].config, "memory: 512\nname: one\n") == 0, "config without record keys");
    }
    vm_snap_info_free(v, n);
    struct vm_snap_info f;
    ok(snaprec_find(t2, "s1", &f, NULL) == 0 && strstr(f.config, "name: one"), "find s1");
    free(f.config);
    ok(snaprec_find(t2, "PENDING", &f, NULL) == -ENOENT, "PENDING is not a snapshot");
    ok(snaprec_remove(t2, "s1", &t3, NULL) == 0 && t3 && !strstr(t3, "[s1]") &&
           strstr(t3, "[PENDING]\nmemory: 1024") && strstr(t3, "[s0]"),
       "remove keeps the others");
    free(t1);
    free(t2);
    ok(snaprec_remove(t3, "s0", &t1, NULL) == 0 && t1 && strcmp(t1, "[PENDING]\nmemory: 1024\n") == 0,
       "remove the last record");
    free(t1);
    free(t3);
    ok(snaprec_remove("[s0]\nsnaptime: 1\n", "s0", &t1, NULL) == 0 && t1 == NULL,
       "nothing left: NULL");
    /* a Proxmox snapshot section */
    const char *pve = "[before-upgrade]\ncores: 2\nparent: first\nsnaptime: 1690000000\n"
                      "vmstate: local:vm-100-state\n\n[special:cloudinit]\nipconfig0: ip=dhcp\n";
    ok(snaprec_parse(pve, &v, &n, NULL) == 0 && n == 1 && strcmp(v[0].config, "cores: 2\n") == 0 &&
           v[0].time == 1690000000, "Proxmox record read");
    vm_snap_info_free(v, n);
    ok(vm_snap_name_check("PENDING", NULL) < 0 && vm_snap_name_check("current", NULL) < 0 &&
           vm_snap_name_check("a@b", NULL) < 0 && vm_snap_name_check("nightly-2024.01", NULL) == 0,
       "snapshot names");
}

/* ---- freeze/thaw against a fake agent ---- */

enum agent_mode { AG_SLOW_FREEZE, AG_FAIL_FREEZE };
struct agent {
    int lfd;
    enum agent_mode mode;
    int freezes, thaws;
    bool thaw_after_freeze; /* the thaw came after the freeze finished */
    bool freeze_done;
    pthread_t th;
};

static json_t *read_msg(int fd)
{
    char line[4096];
    size_t n = 0;
    while (n < sizeof line - 1) {
        char ch;
        if (read(fd, &ch, 1) != 1)
            return NULL;
        if ((unsigned char)ch == 0xFF)
            continue;
        if (ch == '\n')
            break;
        line[n++] = ch;
    }
    line[n] = '\0';
    return json_loads(line, 0, NULL);
}

static void say(int fd, const char *s)
{
    (void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* One client after the other, each command in order: qemu-ga's way. */
static void *agent_main(void *p)
{
    struct agent *a = p;
    int fd;
    while ((fd = accept(a->lfd, NULL, NULL)) >= 0) {
        json_t *m;
        while ((m = read_msg(fd))) {
            const char *cmd = json_string_value(json_object_get(m, "execute"));
            char buf[256];
            if (cmd && strcmp(cmd, "guest-sync-delimited") == 0) {
                snprintf(buf, sizeof buf, "\xff{\"return\": %lld}\n",
                         (long long)json_integer_value(
                             json_object_get(json_object_get(m, "arguments"), "id")));
                say(fd, buf);
            } else if (cmd && strcmp(cmd, "guest-fsfreeze-freeze") == 0) {
                a->freezes++;
                if (a->mode == AG_SLOW_FREEZE) {
                    usleep(400000); /* longer than the client waits */
                    say(fd, "{\"return\": 1}\n");
                } else {
                    say(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"failed to freeze /mnt\"}}\n");
                }
                a->freeze_done = true;
            } else if (cmd && strcmp(cmd, "guest-fsfreeze-thaw") == 0) {
                a->thaws++;
                a->thaw_after_freeze = a->freeze_done;
                say(fd, "{\"return\": 1}\n");
            }
            json_decref(m);
        }
        close(fd);
    }
    return NULL;
}

static int agent_start(struct agent *a, enum agent_mode mode, const char *path)
{
    memset(a, 0, sizeof(*a));
    a->mode = mode;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (a->lfd < 0 || bind(a->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(a->lfd, 4) < 0)
        return -1;
    return pthread_create(&a->th, NULL, agent_main, a);
}

static void agent_stop(struct agent *a)
{
    shutdown(a->lfd, SHUT_RDWR);
    close(a->lfd);
    pthread_join(a->th, NULL);
}

static void test_freeze(void)
{
    char path[200];
    snprintf(path, sizeof path, "%s/qga.sock", tmpdir);
    struct agent a;
    struct qga_freeze f;
    struct berr e = {0};
    int thawed = 0;

    ok(agent_start(&a, AG_SLOW_FREEZE, path) == 0, "fake agent");
    ok(qga_freeze_begin(&f, path, 1000, 100, &e) == -ETIMEDOUT && f.need_thaw,
       "a freeze that outlives its timeout: %s", e.msg);
    ok(qga_freeze_end(&f, 5000, &thawed, &e) == 0 && thawed == 1, "then thawed: %s", e.msg);
    ok(a.thaws == 1 && a.thaw_after_freeze, "the thaw came after the late freeze");
    agent_stop(&a);

    ok(agent_start(&a, AG_FAIL_FREEZE, path) == 0, "fake agent (failing freeze)");
    ok(qga_freeze_begin(&f, path, 1000, 1000, &e) == -EREMOTEIO && strstr(e.msg, "/mnt"),
       "a failed freeze: %s", e.msg);
    ok(qga_freeze_end(&f, 5000, NULL, &e) == 0 && a.thaws == 1, "is thawed all the same");
    agent_stop(&a);

    unlink(path);
    ok(qga_freeze_begin(&f, path, 200, 1000, &e) < 0 && !f.need_thaw, "no agent: not frozen");
    ok(qga_freeze_end(&f, 1000, NULL, &e) == 0, "and nothing to thaw");
}

/* ---- the supervisor over fake engine calls ---- */

#define MAXS 64
struct fake {
    char snaps[MAXS][160];  /* "pool/vol@snap" that exist */
    char vols[MAXS][160];   /* "pool/vol" made by clone */
    unsigned nclones;       /* what snap_info reports */
    int creates, rollbacks;
    const char *fail_pool;  /* snap_create fails on this pool */
    int fail_clone_at;      /* clone call number that fails (1-based), 0: none */
    int clones;
};

static int add(char (*set)[160], const char *s)
{
    for (int i = 0; i < MAXS; i++)
        if (!set[i][0]) {
            snprintf(set[i], 160, "%s", s);
            return 0;
        }
    return -ENOSPC;
}

static int find(char (*set)[160], const char *s)
{
    for (int i = 0; i < MAXS; i++)
        if (strcmp(set[i], s) == 0)
            return i;
    return -1;
}

static int f_create(void *o, const char *pool, const char *const *vols, size_t n,
                    const char *snap, struct berr *err)
{
    struct fake *f = o;
    if (f->fail_pool && strcmp(pool, f->fail_pool) == 0)
        return berr_set(err, ENOSPC, "pool %s is full", pool);
    f->creates++;
    char s[160];
    for (size_t i = 0; i < n; i++) {
        snprintf(s, sizeof s, "%s/%s@%s", pool, vols[i], snap);
        if (find(f->snaps, s) >= 0)
            return berr_set(err, EEXIST, "%s exists", s);
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(s, sizeof s, "%s/%s@%s", pool, vols[i], snap);
        add(f->snaps, s);
    }
    return 0;
}

static int f_destroy(void *o, const char *pool, const char *vol, const char *snap,
                     struct berr *err)
{
    struct fake *f = o;
    char s[160];
    snprintf(s, sizeof s, "%s/%s@%s", pool, vol, snap);
    int i = find(f->snaps, s);
    if (i < 0)
        return berr_set(err, ENOENT, "no %s", s);
    f->snaps[i][0] = '\0';
    return 0;
}

static int f_info(void *o, const char *pool, const char *vol, const char *snap, unsigned *nc,
                  unsigned *nh, struct berr *err)
{
    struct fake *f = o;
    char s[160];
    snprintf(s, sizeof s, "%s/%s@%s", pool, vol, snap);
    if (find(f->snaps, s) < 0)
        return berr_set(err, ENOENT, "no %s", s);
    *nc = f->nclones;
    *nh = 0;
    return 0;
}

static int f_rollback(void *o, const char *pool, const char *vol, const char *snap,
                      struct berr *err)
{
    ((struct fake *)o)->rollbacks++;
    return 0;
}

static int f_clone(void *o, const char *pool, const char *vol, const char *snap,
                   const char *newvol, bool linked, struct berr *err)
{
    struct fake *f = o;
    if (++f->clones == f->fail_clone_at)
        return berr_set(err, ENOSPC, "no space for %s", newvol);
    char s[160];
    snprintf(s, sizeof s, "%s/%s", pool, newvol);
    return add(f->vols, s);
}

static int f_vol_destroy(void *o, const char *pool, const char *vol, struct berr *err)
{
    struct fake *f = o;
    char s[160];
    snprintf(s, sizeof s, "%s/%s", pool, vol);
    int i = find(f->vols, s);
    if (i >= 0)
        f->vols[i][0] = '\0';
    return i < 0 ? -ENOENT : 0;
}

static int nset(char (*set)[160])
{
    int n = 0;
    for (int i = 0; i < MAXS; i++)
        n += set[i][0] != '\0';
    return n;
}

static const char *vm_conf =
    "name: src\nmemory: 512\nbios: ovmf\nmachine: q35\n"
    "efidisk0: tank:vm-100-efidisk0,efitype=4m\n"
    "tpmstate0: tank:vm-100-tpmstate0,version=v2.0\n"
    "scsi0: tank:vm-100-disk-0\nscsi1: fast:data1\n"
    "ide2: tank:install-iso,media=cdrom\n"
    "net0: virtio=BC:24:11:00:00:01,bridge=vmbr0\n"
    "smbios1: uuid=11111111-2222-4333-8444-555555555555,manufacturer=acme\n"
    "vmgenid: 11111111-2222-4333-8444-666666666666\n";

static int set_memory(struct vm_config *c, void *opaque, struct berr *err)
{
    return vm_config_set(c, "memory", opaque, err);
}

static void test_supervisor(void)
{
    char state[300], run[300];
    snprintf(state, sizeof state, "%s/state", tmpdir);
    snprintf(run, sizeof run, "%s/run", tmpdir);
    struct vmm_opts o = {.state_dir = state, .run_dir = run, .nbd_socket = "/nonexistent"};
    struct vmm *m = NULL;
    struct berr e = {0};
    if (vmm_new(&o, &m, &e) < 0) {
        ok(0, "vmm_new: %s", e.msg);
        return;
    }
    struct vm_config c;
    ok(vm_config_parse(vm_conf, strlen(vm_conf), &c, &e) == 0, "source config: %s", e.msg);
    ok(vmm_reserve(m, 100, &e) == 0 && vmm_define(m, 100, &c, &e) == 0, "VM 100 defined");
    vm_config_free(&c);

    struct fake fk = {0};
    struct vm_snap_ops ops = {&fk, f_create, f_destroy, f_info, f_rollback, f_clone, f_vol_destroy};
    struct vm_snap_result res;

    /* a snapshot: 3 volumes on tank in one call, 1 on fast; no cdrom */
    ok(vmm_snapshot(m, 100, "s1", 0, &ops, &res, &e) == 0, "snapshot s1: %s", e.msg);
    ok(fk.creates == 2 && nset(fk.snaps) == 4 && res.nvols == 4 && !res.frozen && !res.warning[0],
       "one call per pool, 4 volumes, stopped VM: no warning (%d calls, %d snaps)", fk.creates,
       nset(fk.snaps));
    ok(find(fk.snaps, "tank/install-iso@s1") < 0, "the cdrom volume is left out");
    ok(vmm_snapshot(m, 100, "s1", 0, &ops, &res, &e) == -EEXIST, "a second s1: %s", e.msg);
    ok(vmm_snapshot(m, 100, "bad/name", 0, &ops, &res, &e) == -EINVAL, "bad name refused");

    /* a failing pool undoes the others */
    fk.fail_pool = "fast";
    ok(vmm_snapshot(m, 100, "s2", 0, &ops, &res, &e) == -ENOSPC && nset(fk.snaps) == 4,
       "a failure on one pool leaves no snapshot on the others: %s", e.msg);
    fk.fail_pool = NULL;

    struct vm_snap_info *v = NULL;
    size_t n = 0;
    ok(vmm_snapshot_list(m, 100, &v, &n, &e) == 0 && n == 1 && strcmp(v[0].name, "s1") == 0 &&
           strstr(v[0].config, "memory: 512"), "list: s1 with its config");
    vm_snap_info_free(v, n);

    /* rollback restores the config (new vmgenid, records kept) */
    ok(vmm_config_edit(m, 100, set_memory, "1024", NULL, &e) == 0, "memory changed to 1024");
    ok(vmm_rollback(m, 100, "nope", &ops, &e) == -ENOENT, "rollback to a missing snapshot");
    ok(vmm_rollback(m, 100, "s1", &ops, &e) == 0 && fk.rollbacks == 4, "rollback: %s", e.msg);
    char *text = NULL;
    vmm_config_get(m, 100, NULL, &text, &e);
    char *tail = text ? strstr(text, "\n[s1]\n") : NULL;
    if (tail)
        *tail = '\0'; /* the main section only */
    ok(text && tail && strstr(text, "memory: 512") &&
           !strstr(text, "vmgenid: 11111111-2222-4333-8444-666666666666"),
       "config restored, record kept, new vmgenid");
    free(text);

    /* linked clone from s1 */
    ok(vmm_clone(m, 100, &(struct vm_clone_opts){.newid = 100, .linked = true}, &ops, &res, &e) ==
           -EEXIST, "clone onto an existing VMID: %s", e.msg);
    ok(vmm_clone(m, 100, &(struct vm_clone_opts){.newid = 200, .linked = true, .snapshot = "s1"},
                 &ops, &res, &e) == 0, "linked clone 200: %s", e.msg);
    ok(find(fk.vols, "tank/vm-200-disk-0") >= 0 && find(fk.vols, "fast/vm-200-scsi1") >= 0 &&
           find(fk.vols, "tank/vm-200-efidisk0") >= 0 && nset(fk.vols) == 4, "clone volume names");
    vmm_config_get(m, 200, NULL, &text, &e);
    ok(text && strstr(text, "scsi0: tank:vm-200-disk-0") && strstr(text, "ide2: tank:install-iso") &&
           !strstr(text, "BC:24:11:00:00:01") && strstr(text, "net0: virtio=BC:24:11:") &&
           !strstr(text, "11111111-2222-4333-8444-555555555555") &&
           strstr(text, "manufacturer=acme") && strstr(text, "name: copy-of-src") &&
           !strstr(text, "[s1]"), "clone config: volumes, MAC, SMBIOS uuid, name, no records");
    free(text);

    /* a clone that fails half way leaves nothing, and frees its VMID */
    fk.clones = 0;
    fk.fail_clone_at = 2;
    int before = nset(fk.snaps);
    ok(vmm_clone(m, 100, &(struct vm_clone_opts){.newid = 300}, &ops, &res, &e) == -ENOSPC,
       "a failing full clone: %s", e.msg);
    ok(nset(fk.vols) == 4 && nset(fk.snaps) == before, "its volumes and temporary snapshot gone");
    ok(vmm_info(m, 300, &(struct vm_info){0}, NULL) == -ENOENT, "VMID 300 free again");
    fk.fail_clone_at = 0;
    ok(vmm_clone(m, 100, &(struct vm_clone_opts){.newid = 300, .name = "full"}, &ops, &res, &e) == 0
           && nset(fk.snaps) == before, "full clone, temporary snapshot dropped: %s", e.msg);

    /* destroy: refused while clones exist, then done */
    fk.nclones = 1;
    ok(vmm_snapshot_destroy(m, 100, "s1", &ops, &e) == -EBUSY && nset(fk.snaps) == 4,
       "destroy refused with clones, nothing destroyed: %s", e.msg);
    fk.nclones = 0;
    ok(vmm_snapshot_destroy(m, 100, "s1", &ops, &e) == 0 && nset(fk.snaps) == 0, "destroyed");
    ok(vmm_snapshot_list(m, 100, &v, &n, &e) == 0 && n == 0, "no records left");
    vm_snap_info_free(v, n);
    vmm_free(m);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(tmpdir))
        tap_skip_all("mkdtemp failed");
    test_records();
    test_freeze();
    test_supervisor();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    (void)!system(cmd);
    return done_testing();
}
