/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pool life cycle: create (validation, EEXIST/force), round trip through
 * close/import and export/import, scan, stats, properties, destroy, and
 * hostile pool files (garbage, truncation, damaged labels) that must fail
 * with a message and never crash. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)

static int scan_cb(const struct bs_pool_found *f, void *opaque)
{
    int *n = opaque;
    diag("scan: %s guid %llx txg %llu %s at %s", f->name, (unsigned long long)f->guid,
         (unsigned long long)f->txg, f->state, f->vdev_path);
    if (strcmp(f->name, "tank") == 0 && strcmp(f->state, "exported") == 0)
        (*n)++;
    return 0;
}

static void write_garbage(const char *path, uint64_t size, uint64_t seed)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    uint8_t buf[65536];
    for (uint64_t off = 0; off < size; off += sizeof buf) {
        random_bytes(buf, sizeof buf, &seed);
        if (pwrite(fd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf)
            break;
    }
    close(fd);
}

static void test_hostile(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    const char *g = tmp_path("garbage.img");
    write_garbage(g, 80 * MiB, 42);
    const char *v[] = { g };
    int r = bs_pool_import(v, 1, NULL, &p, &e);
    ok(r < 0 && p == NULL && e.msg[0], "garbage file does not import: %d %s", r, e.msg);

    /* a real pool, then damage it in several ways */
    const char *f = tmp_path("hostile.img");
    const char *fv[] = { f };
    r = bs_pool_create("tank", fv, 1, 128 * MiB, NULL, &p, &e);
    ok(r == 0, "create for damage: %s", e.msg);
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = 8 * MiB;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "volume: %s", e.msg);
    bs_pool_close(p);
    p = NULL;

    /* truncated to half: the end labels and data vanish */
    const char *t = tmp_path("trunc.img");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp --sparse=always '%s' '%s' && truncate -s 40M '%s'", f, t, t);
    ok(system(cmd) == 0, "made a truncated copy");
    const char *tv[] = { t };
    berr_clear(&e);
    r = bs_pool_import(tv, 1, NULL, &p, &e);
    diag("truncated import: %d %s", r, e.msg);
    if (r == 0) {
        ok(bs_pool_check(p, &e) != 0 || 1, "truncated pool imported; check ran: %s", e.msg);
        bs_pool_close(p);
        p = NULL;
    } else {
        ok(e.msg[0], "truncated pool fails with a message");
    }
    snprintf(cmd, sizeof cmd, "truncate -s 1M '%s'", t);
    ok(system(cmd) == 0, "truncated to 1M");
    berr_clear(&e);
    r = bs_pool_import(tv, 1, NULL, &p, &e);
    ok(r < 0 && e.msg[0], "1M file fails: %s", e.msg);

    /* random garbage sprayed over the metadata area (labels, bitmap, first
     * data MiBs) of copies: never a crash */
    uint64_t seed = 7;
    int imported = 0, failed = 0;
    for (int round = 0; round < 30; round++) {
        snprintf(cmd, sizeof cmd, "cp --sparse=always '%s' '%s'", f, t);
        if (system(cmd) != 0)
            break;
        int fd = open(t, O_WRONLY | O_CLOEXEC);
        for (int k = 0; k < 40; k++) {
            uint8_t b[64];
            random_bytes(b, sizeof b, &seed);
            uint64_t off = xrand(&seed) % (4 * MiB);
            if (round % 3 == 2)
                off = 128 * MiB - 512 * 1024 + xrand(&seed) % (512 * 1024);
            if (pwrite(fd, b, 1 + xrand(&seed) % 64, (off_t)off) < 0)
                break;
        }
        close(fd);
        berr_clear(&e);
        p = NULL;
        r = bs_pool_import(tv, 1, NULL, &p, &e);
        if (r == 0) {
            imported++;
            uint8_t buf[4096];
            bs_vol *vol = NULL;
            if (bs_vol_open(p, "v", &vol, &e) == 0) {
                for (uint64_t o = 0; o < 8 * MiB; o += 1 * MiB)
                    bs_vol_pread(vol, buf, sizeof buf, o);
                bs_vol_close(vol);
            }
            bs_pool_check(p, &e);
            pool_abandon(p);
        } else {
            failed++;
            if (!e.msg[0])
                diag("import failed without a message: %d", r);
        }
    }
    ok(imported + failed == 30, "30 damaged pools: %d imported, %d refused, no crash", imported,
       failed);
}

int main(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    struct bs_tunables tun;
    bs_tunables_get(&tun);
    ok(tun.cache_bytes == 512 * MiB && tun.dirty_max_bytes >= 64 * MiB &&
           tun.dirty_max_bytes <= 1024 * MiB &&
           tun.txg_timeout_ms == 5000 && tun.sync_threads >= 1,
       "tunable defaults (%u sync threads)", tun.sync_threads);

    const char *f = tmp_path("pool.img");
    const char *v[] = { f };
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    ok(bs_pool_create("bad/name", v, 1, 128 * MiB, &o, &p, &e) == -EINVAL, "bad name: %s", e.msg);
    ok(bs_pool_create("tank", v, 1, 16 * MiB, &o, &p, &e) == -ENOSPC, "too small: %s", e.msg);
    int r = bs_pool_create("tank", v, 1, 256 * MiB, &o, &p, &e);
    ok(r == 0, "create: %s", e.msg);
    if (r)
        return done_testing();
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.name, "tank") == 0 && st.ashift == 12 && st.autotrim && st.txg >= 2 &&
           strcmp(st.state, "ONLINE") == 0 && st.nvdevs == 1 && st.size > 200 * MiB &&
           st.allocated > 0 && st.allocated + st.free == st.size,
       "stats: ashift %d txg %llu size %llu alloc %llu free %llu", st.ashift,
       (unsigned long long)st.txg, (unsigned long long)st.size,
       (unsigned long long)st.allocated, (unsigned long long)st.free);
    ok(bs_pool_check(p, &e) == 0, "check of an empty pool: %s", e.msg);

    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "disk0");
    vp.volsize = 10 * MiB + 5;
    ok(bs_vol_create(p, &vp, false, &e) == -EINVAL && strstr(e.msg, "10502144"),
       "size not a multiple: %s", e.msg);
    vp.volsize = 32 * MiB;
    vp.volblocksize = 3000;
    ok(bs_vol_create(p, &vp, false, &e) == -EINVAL, "bad volblocksize: %s", e.msg);
    vp.volblocksize = 0;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "create volume: %s", e.msg);
    ok(bs_vol_create(p, &vp, false, &e) == -EEXIST, "duplicate: %s", e.msg);
    vp.volsize = 4096ULL << 20;
    snprintf(vp.name, sizeof vp.name, "thick");
    ok(bs_vol_create(p, &vp, true, &e) == -ENOSPC, "thick too big: %s", e.msg);
    vp.volsize = 16 * MiB;
    ok(bs_vol_create(p, &vp, true, &e) == 0, "thick fits: %s", e.msg);
    struct bs_vol_props got;
    ok(bs_vol_get(p, "thick", &got, &e) == 0 && got.used == 16 * MiB &&
           got.refreservation == 16 * MiB, "thick used = refreservation");
    ok(bs_vol_get(p, "disk0", &got, &e) == 0 && got.volblocksize == 16384 &&
           got.compression == BS_COMPRESS_LZ4 && got.checksum == BS_CHECKSUM_XXH3,
       "defaults: 16K lz4 xxh3");
    ok(bs_vol_set(p, "disk0", "used", "1", &e) == -EINVAL && strstr(e.msg, "read-only"),
       "read-only property: %s", e.msg);
    ok(bs_vol_set(p, "disk0", "bogus", "1", &e) == -EINVAL && strstr(e.msg, "bogus"),
       "unknown property: %s", e.msg);
    ok(bs_vol_set(p, "disk0", "compression", "zstd-5", &e) == 0, "set compression");
    ok(bs_pool_set_prop(p, "autotrim", "off", &e) == 0, "pool autotrim off");

    bs_vol *vol;
    ok(bs_vol_open(p, "disk0", &vol, &e) == 0, "open");
    uint8_t *buf = malloc(1 * MiB), *rd = malloc(1 * MiB);
    pattern(buf, MiB, 3 * MiB + 100, 1);
    ok(bs_vol_pwrite(vol, buf, MiB, 3 * MiB + 100, 0) == 0, "write 1M unaligned");
    ok(bs_vol_pread(vol, rd, MiB, 3 * MiB + 100) == 0 && memcmp(buf, rd, MiB) == 0,
       "read back before sync");
    ok(bs_vol_destroy(p, "disk0", false, &e) == -EBUSY, "destroy open: %s", e.msg);
    ok(bs_pool_export(p, false, &e) == -EBUSY, "export with open handles: %s", e.msg);
    ok(bs_vol_flush(vol) == 0, "flush");
    bs_vol_close(vol);
    ok(bs_pool_check(p, &e) == 0, "check: %s", e.msg);
    bs_pool_close(p);
    p = NULL;

    ok(bs_pool_create("tank2", v, 1, 256 * MiB, &o, &p, &e) == -EEXIST &&
           strstr(e.msg, "holds pool 'tank'") && strstr(e.msg, "-f"),
       "EEXIST: %s", e.msg);
    ok(bs_pool_import(v, 1, "other", &p, &e) == -ENOENT, "wrong name: %s", e.msg);
    r = bs_pool_import(v, 1, "tank", &p, &e);
    ok(r == 0, "import: %s", e.msg);
    if (r)
        return done_testing();
    ok(bs_vol_open(p, "disk0", &vol, &e) == 0, "open after import");
    memset(rd, 0xaa, MiB);
    ok(bs_vol_pread(vol, rd, MiB, 3 * MiB + 100) == 0 && memcmp(buf, rd, MiB) == 0,
       "data survives close/import");
    ok(bs_vol_pread(vol, rd, 4096, 0) == 0 && buf_is_zero(rd, 4096), "unwritten reads zero");
    ok(bs_vol_get(p, "disk0", &got, &e) == 0 && got.compression == BS_COMPRESS_ZSTD &&
           got.compress_level == 5, "property survives import");
    bs_pool_stats(p, &st);
    ok(!st.autotrim && st.nvols == 2, "pool props survive import");
    bs_vol_close(vol);
    ok(bs_pool_export(p, false, &e) == 0, "export: %s", e.msg);
    int found = 0;
    ok(bs_pool_scan(tmp_path(""), scan_cb, &found, &e) == 0 && found == 1, "scan finds it");
    ok(bs_pool_import(v, 1, NULL, &p, &e) == 0, "import exported pool: %s", e.msg);
    ok(bs_pool_import(v, 1, NULL, &(bs_pool *){0}, &e) == -EBUSY, "second import busy: %s",
       e.msg);
    ok(bs_vol_destroy(p, "thick", false, &e) == 0, "destroy volume");
    ok(bs_pool_check(p, &e) == 0, "check after destroy: %s", e.msg);
    ok(bs_pool_debug(p, "nonsense", &e) == -EINVAL, "unknown debug knob");
    ok(bs_pool_destroy(p, false, &e) == 0, "destroy pool: %s", e.msg);
    ok(bs_pool_import(v, 1, NULL, &p, &e) < 0, "destroyed pool does not import: %s", e.msg);
    ok(bs_pool_create("tank", v, 1, 0, &o, &p, &e) == 0, "create again on it: %s", e.msg);
    bs_pool_close(p);
    free(buf);
    free(rd);

    test_hostile();
    tmp_cleanup();
    return done_testing();
}
