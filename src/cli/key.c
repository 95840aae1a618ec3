/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth key ...: load, unload, list, add, remove, change the keys of
 * encrypted volumes (docs/CLI.md "Keys"), and the reading of key material
 * for them and for `vol create` (cli_read_key).
 *
 * Key material is read from --key-file, else from a terminal without echo
 * (new keys asked twice), else from stdin to its end (one trailing newline
 * dropped for passphrases).  A raw key (32 bytes) travels as 64 hex digits.
 * Buffers holding key material are wiped before they are freed. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define KEY_MAX 4096

void help_key(FILE *f)
{
    fprintf(f,
            "Usage: berth key COMMAND [OPTIONS] POOL[/VOL]\n"
            "\n"
            "Keys of encrypted volumes.  A volume's key is shared by its snapshots and\n"
            "clones.  Key material comes from --key-file FILE, else from the terminal\n"
            "(no echo), else from stdin; raw keys are 32 bytes, hex keys 64 hex digits,\n"
            "passphrases 8..512 bytes.\n"
            "\n"
            "  load [--key-file FILE] [-o keyformat=F] [-o keylocation=L] POOL/VOL\n"
            "                              unlock (keylocation=prompt: the key is read)\n"
            "  load POOL                   unlock every volume whose keylocation is file://\n"
            "  unload POOL/VOL             lock again (the volume must not be in use)\n"
            "  list POOL/VOL               SLOT KEYFORMAT KDF CREATED LOADED\n"
            "  add [--key-file FILE] [-o keyformat=F] [-o kdf=argon2id|pbkdf2]\n"
            "      [-o iterations=N] [-s SLOT] POOL/VOL\n"
            "                              add a key in a free slot (the key must be loaded)\n"
            "  remove POOL/VOL SLOT        empty a slot (not the last one)\n"
            "  change [--key-file FILE] [-o keyformat=F] [-o keylocation=L] [-s SLOT] POOL/VOL\n"
            "                              replace the slot that loaded the key (or SLOT) by\n"
            "                              a new key; keyformat/keylocation become the new\n"
            "                              key's.  keylocation=file:///PATH: berthd reads the\n"
            "                              new key there.\n"
            "\n"
            "Adding, removing or changing a key rewraps the volume's master key; the data\n"
            "is never rewritten.\n");
}

#define GETOPT_LOOP(shortopts, longopts, ...) \
    CLI_GETOPT_LOOP("key", help_key, shortopts, longopts, __VA_ARGS__)

static void wipe_free(char *p, size_t n)
{
    if (!p)
        return;
    explicit_bzero(p, n);
    free(p);
}

/* Read up to KEY_MAX bytes from fd into a malloc'd, NUL-terminated buffer. */
static int read_all(int fd, char **out, size_t *len)
{
    char *b = calloc(1, KEY_MAX + 1);
    size_t n = 0;
    if (!b)
        return -ENOMEM;
    for (;;) {
        ssize_t k = read(fd, b + n, KEY_MAX - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            wipe_free(b, KEY_MAX + 1);
            return -e;
        }
        if (k == 0 || (n += (size_t)k) == KEY_MAX)
            break;
    }
    *out = b;
    *len = n;
    return 0;
}

/* A line from the terminal without echo. */
static int read_tty(const char *prompt, char **out, size_t *len)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct termios saved, t;
    tcgetattr(fd, &saved);
    t = saved;
    t.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(fd, TCSAFLUSH, &t);
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* nothing to do: the prompt is a courtesy */
    }
    char *b = calloc(1, KEY_MAX + 1);
    size_t n = 0;
    int r = b ? 0 : -ENOMEM;
    while (r == 0 && n < KEY_MAX) {
        char ch;
        ssize_t k = read(fd, &ch, 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || ch == '\n')
            break;
        b[n++] = ch;
    }
    tcsetattr(fd, TCSAFLUSH, &saved);
    if (write(fd, "\n", 1) < 0) {
        /* as above */
    }
    close(fd);
    if (r < 0)
        return r;
    *out = b;
    *len = n;
    return 0;
}

int cli_read_key(const char *keyformat, const char *file, bool confirm, char **out)
{
    bool raw = keyformat && strcmp(keyformat, "raw") == 0;
    bool pass = !keyformat || strcmp(keyformat, "passphrase") == 0;
    char *b = NULL, *b2 = NULL;
    size_t n = 0, n2 = 0;
    int r;
    bool tty = !file && isatty(STDIN_FILENO);
    if (file) {
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return cli_fail("cannot open key file %s: %s", file, strerror(errno));
        r = read_all(fd, &b, &n);
        close(fd);
    } else if (tty) {
        r = read_tty(pass ? "Enter passphrase: " : "Enter key: ", &b, &n);
        if (r == 0 && confirm) {
            r = read_tty(pass ? "Re-enter passphrase: " : "Re-enter key: ", &b2, &n2);
            if (r == 0 && (n != n2 || memcmp(b, b2, n) != 0)) {
                wipe_free(b, KEY_MAX + 1);
                wipe_free(b2, KEY_MAX + 1);
                return cli_fail("the two entries differ");
            }
            wipe_free(b2, KEY_MAX + 1);
        }
    } else {
        r = read_all(STDIN_FILENO, &b, &n);
    }
    if (r < 0)
        return cli_fail("cannot read the key: %s", strerror(-r));
    if (!raw && !tty && n && b[n - 1] == '\n') /* files and pipes end lines */
        b[--n] = '\0';
    if (raw && n == 32) { /* binary: send it as hex */
        char *h = calloc(1, 65);
        for (size_t i = 0; h && i < 32; i++)
            snprintf(h + 2 * i, 3, "%02x", (unsigned char)b[i]);
        wipe_free(b, KEY_MAX + 1);
        if (!h)
            return cli_fail("out of memory");
        b = h;
        n = 64;
    } else if (memchr(b, '\0', n)) {
        wipe_free(b, KEY_MAX + 1);
        return cli_fail("the key contains a NUL byte: use keyformat=raw (32 bytes) or hex");
    }
    *out = b;
    return EXIT_OK;
}

void cli_key_free(char *key)
{
    if (key)
        wipe_free(key, strlen(key) + 1);
}

/* -o keyformat=, keylocation=, kdf=, iterations= into body. */
static int key_opt(json_t *body, char *arg)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return cli_usage_error("key", "-o expects PROP=VALUE, got '%s'", arg);
    *eq = '\0';
    const char *v = eq + 1;
    if (strcmp(arg, "iterations") == 0) {
        json_object_set_new(body, arg, json_integer(strtoll(v, NULL, 10)));
    } else if (strcmp(arg, "keyformat") == 0 || strcmp(arg, "keylocation") == 0 ||
               strcmp(arg, "kdf") == 0) {
        json_object_set_new(body, arg, json_string(v));
    } else {
        return cli_usage_error("key", "unknown key option '%s' (keyformat, keylocation, kdf, "
                               "iterations)", arg);
    }
    return EXIT_OK;
}

/* "/pools/P/volumes/V" + suffix. */
static int key_vol_path(const char *arg, const char *suffix, char *out, size_t len)
{
    return cli_vol_path("key", arg, suffix, out, len);
}

/* Send body (wiping its "key" afterwards) and print msg or the JSON. */
static int key_call(struct cli *c, const char *method, const char *path, json_t *body,
                    char *key, const char *msg, const char *arg)
{
    if (key)
        json_object_set_new(body, "key", json_string(key));
    json_t *resp = NULL;
    int rc = cli_call(c, method, path, body, &resp);
    json_t *jk = json_object_get(body, "key");
    if (jk)
        explicit_bzero((char *)json_string_value(jk), json_string_length(jk));
    cli_key_free(key);
    if (rc == EXIT_OK) {
        if (c->json)
            out_json(resp);
        else if (msg)
            printf(msg, arg, (int)json_integer_value(json_object_get(resp, "slot")));
    }
    json_decref(resp);
    return rc;
}

static const struct option key_lo[] = {CLI_COMMON_LONGOPTS,
                                       {"key-file", required_argument, NULL, 'k'},
                                       {NULL, 0, NULL, 0}};

static int key_load(struct cli *c, int argc, char **argv)
{
    _cleanup_json_ json_t *body = json_object();
    const char *file = NULL;
    GETOPT_LOOP("o:k:", key_lo,
        case 'k': file = optarg; break;
        case 'o': {
            int rc = key_opt(body, optarg);
            if (rc != EXIT_OK)
                return rc;
            break;
        })
    if (argc - optind != 1)
        return cli_usage_error("key", "key load needs POOL or POOL/VOL");
    const char *arg = argv[optind];
    char path[512];
    if (!strchr(arg, '/')) { /* the whole pool: file:// keys */
        char *p = cli_escape(arg);
        snprintf(path, sizeof(path), "/pools/%s/keys/load", p ? p : "");
        free(p);
        json_t *resp = NULL;
        int rc = cli_call(c, "POST", path, body, &resp);
        if (rc == EXIT_OK && c->json)
            out_json(resp);
        else if (rc == EXIT_OK) {
            printf("%d key%s loaded in pool %s\n",
                   (int)json_integer_value(json_object_get(resp, "loaded")),
                   json_integer_value(json_object_get(resp, "loaded")) == 1 ? "" : "s", arg);
            const char *e = json_string_value(json_object_get(resp, "error"));
            if (e)
                fprintf(stderr, "berth: %s\n", e);
        }
        json_decref(resp);
        return rc;
    }
    int rc = key_vol_path(arg, "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    /* read the key here unless berthd finds it at a file:// location */
    const char *loc = json_string_value(json_object_get(body, "keylocation"));
    const char *fmt = json_string_value(json_object_get(body, "keyformat"));
    _cleanup_json_ json_t *vol = NULL;
    if (!fmt || (!file && !loc)) { /* the volume's keyformat / keylocation */
        rc = cli_call(c, "GET", path, NULL, &vol);
        if (rc != EXIT_OK)
            return rc;
        if (!loc && !file)
            loc = json_string_value(json_object_get(vol, "keylocation"));
        if (!fmt)
            fmt = json_string_value(json_object_get(vol, "keyformat"));
    }
    char *key = NULL;
    if (file || (loc && strcmp(loc, "prompt") == 0)) {
        if ((rc = cli_read_key(fmt, file, false, &key)) != EXIT_OK)
            return rc;
    }
    strncat(path, "/key/load", sizeof(path) - strlen(path) - 1);
    return key_call(c, "POST", path, body, key, "key of %s loaded\n", arg);
}

static int key_unload(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", key_lo, )
    if (argc - optind != 1)
        return cli_usage_error("key", "key unload needs POOL/VOL");
    char path[512];
    int rc = key_vol_path(argv[optind], "/key/unload", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    _cleanup_json_ json_t *body = json_object();
    return key_call(c, "POST", path, body, NULL, "key of %s unloaded\n", argv[optind]);
}

static int key_list(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", key_lo, )
    if (argc - optind != 1)
        return cli_usage_error("key", "key list needs POOL/VOL");
    char path[512];
    int rc = key_vol_path(argv[optind], "/keys", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    _cleanup_json_ json_t *resp = NULL;
    if ((rc = cli_call(c, "GET", path, NULL, &resp)) != EXIT_OK)
        return rc;
    if (c->json) {
        out_json(resp);
        return EXIT_OK;
    }
    static const char *const hdr[] = {"SLOT", "KEYFORMAT", "KDF", "CREATED", "LOADED"};
    struct table *t = table_new(c, 5, hdr);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(resp, "slots"), i, s) {
        char slot[16], kdf[64], when[32];
        snprintf(slot, sizeof(slot), "%d", (int)json_integer_value(json_object_get(s, "slot")));
        const char *k = json_string_value(json_object_get(s, "kdf"));
        if (k && strcmp(k, "argon2id") == 0)
            snprintf(kdf, sizeof(kdf), "argon2id t=%d m=%dK p=%d",
                     (int)json_integer_value(json_object_get(s, "time_cost")),
                     (int)json_integer_value(json_object_get(s, "memory_kib")),
                     (int)json_integer_value(json_object_get(s, "parallelism")));
        else if (k && strcmp(k, "pbkdf2") == 0)
            snprintf(kdf, sizeof(kdf), "pbkdf2 %d",
                     (int)json_integer_value(json_object_get(s, "iterations")));
        else
            snprintf(kdf, sizeof(kdf), "-");
        const char *cells[] = {slot, json_string_value(json_object_get(s, "keyformat")), kdf,
                               cli_prop_value(c, json_object_get(s, "created"), P_TIME, when,
                                              sizeof(when)),
                               json_is_true(json_object_get(s, "loaded_by")) ? "yes" : "-"};
        table_row(t, cells);
    }
    table_print_or(t, "no key slots");
    return EXIT_OK;
}

/* add or change: the new key from --key-file, a keylocation, or the terminal/stdin */
static int key_new(struct cli *c, int argc, char **argv, bool change)
{
    _cleanup_json_ json_t *body = json_object();
    const char *file = NULL;
    GETOPT_LOOP("o:k:s:", key_lo,
        case 'k': file = optarg; break;
        case 's': json_object_set_new(body, "slot", json_integer(atoi(optarg))); break;
        case 'o': {
            int rc = key_opt(body, optarg);
            if (rc != EXIT_OK)
                return rc;
            break;
        })
    const char *verb = change ? "change" : "add";
    if (argc - optind != 1)
        return cli_usage_error("key", "key %s needs POOL/VOL", verb);
    char path[512];
    int rc = key_vol_path(argv[optind], "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    const char *loc = json_string_value(json_object_get(body, "keylocation"));
    const char *fmt = json_string_value(json_object_get(body, "keyformat"));
    _cleanup_json_ json_t *vol = NULL;
    if (!fmt) {
        if ((rc = cli_call(c, "GET", path, NULL, &vol)) != EXIT_OK)
            return rc;
        fmt = json_string_value(json_object_get(vol, "keyformat"));
    }
    strncat(path, change ? "/key/change" : "/keys", sizeof(path) - strlen(path) - 1);
    char *key = NULL;
    bool in_file = loc && strncmp(loc, "file://", 7) == 0 && !file; /* berthd reads it */
    if (!in_file && (rc = cli_read_key(fmt, file, true, &key)) != EXIT_OK)
        return rc;
    return key_call(c, "POST", path, body, key,
                    change ? "key of %s changed (slot %d)\n" : "key added to %s in slot %d\n",
                    argv[optind]);
}

static int key_add(struct cli *c, int argc, char **argv)
{
    return key_new(c, argc, argv, false);
}

static int key_change(struct cli *c, int argc, char **argv)
{
    return key_new(c, argc, argv, true);
}

static int key_remove(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", key_lo, )
    if (argc - optind != 2)
        return cli_usage_error("key", "key remove needs POOL/VOL and SLOT");
    char *end;
    long slot = strtol(argv[optind + 1], &end, 10);
    if (*end || end == argv[optind + 1] || slot < 0 || slot > 7)
        return cli_usage_error("key", "slot must be 0..7, not '%s'", argv[optind + 1]);
    char path[512];
    int rc = key_vol_path(argv[optind], "/keys?slot=", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    snprintf(path + strlen(path), sizeof(path) - strlen(path), "%ld", slot);
    json_t *resp = NULL;
    rc = cli_call(c, "DELETE", path, NULL, &resp);
    if (rc == EXIT_OK && c->json)
        out_json(resp);
    else if (rc == EXIT_OK)
        printf("key slot %ld of %s removed\n", slot, argv[optind]);
    json_decref(resp);
    return rc;
}

int cmd_key(struct cli *c, int argc, char **argv)
{
    static const struct cli_cmd cmds[] = {
        {"load", key_load}, {"unload", key_unload}, {"list", key_list},
        {"add", key_add},   {"remove", key_remove}, {"change", key_change},
    };
    return cli_dispatch(c, "key", help_key, cmds, ARRAY_SIZE(cmds), argc, argv);
}
