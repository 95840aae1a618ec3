/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth send and berth recv: a snapshot as a stream on stdout, and a stream
 * on stdin into a volume (docs/STREAM.md), so that
 * `berth send tank/a@s | berth recv tank2/a` copies between pools and
 * `ssh host berth recv ...` between hosts.  The bytes pass through berthd's
 * API as an HTTP body (cli_stream); neither side holds the stream. */
#include "cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void help_send(FILE *f)
{
    fprintf(f,
            "Usage: berth send [-w] [-i @FROM | -I @FROM] [-t TOKEN] POOL/VOL@NAME > STREAM\n"
            "       berth recv [-F] [-s] POOL/VOL < STREAM\n"
            "       berth recv -A POOL/VOL\n"
            "       berth recv --token POOL/VOL\n"
            "\n"
            "  send       write the snapshot as a stream to stdout (never to a terminal):\n"
            "             whole, or with -i the changes since snapshot FROM (an earlier\n"
            "             snapshot of the volume or of its origin: @FROM or VOL@FROM), or\n"
            "             with -I those changes as every snapshot in between.\n"
            "             -t TOKEN resumes a stream a receiver was interrupted in.\n"
            "             -w, --raw: an encrypted volume's blocks as stored (its key need\n"
            "             not be loaded); the receiver keeps them encrypted and locked, and\n"
            "             'berth key load' there unlocks them with the same keys.\n"
            "  recv       read a stream from stdin into POOL/VOL: a whole stream creates the\n"
            "             volume, an incremental one needs its FROM snapshot as the volume's\n"
            "             latest.  A bad stream is refused and leaves the volume as it was.\n"
            "             -F first roll the volume back to that snapshot (dropping changes\n"
            "             made since); -s keep what arrived if the stream breaks off, to\n"
            "             resume with send -t $(berth recv --token POOL/VOL).\n"
            "  recv -A    drop an interrupted receive; --token prints its resume token\n"
            "\n"
            "Example: berth send tank/disk0@monday | berth recv backup/disk0\n");
}

/* "@A", "A", "VOL@A" or "POOL/VOL@A" as the API's `from` ("@A", "A" or
 * "VOL@A"); a pool other than the snapshot's is a usage error. */
static int from_arg(const char *from, const char *pool, const char **out)
{
    const char *slash = strchr(from, '/');
    if (slash) {
        size_t plen = (size_t)(slash - from);
        if (strlen(pool) != plen || strncmp(from, pool, plen) != 0)
            return cli_usage_error("send", "-i/-I %s is not in pool %s", from, pool);
        from = slash + 1;
    }
    if (!*from || strcmp(from, "@") == 0)
        return cli_usage_error("send", "-i/-I needs a snapshot (@NAME)");
    *out = from;
    return EXIT_OK;
}

int cmd_send(struct cli *c, int argc, char **argv)
{
    const char *from = NULL, *token = NULL;
    bool intermediates = false, raw = false;
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"token", required_argument, NULL, 't'},
                                       {"raw", no_argument, NULL, 'w'}, {NULL, 0, NULL, 0}};
    CLI_GETOPT_LOOP("send", help_send, "i:I:t:w", lo,
        case 'w': raw = true; break;
        case 'i':
        case 'I':
            if (from)
                return cli_usage_error("send", "give one of -i and -I, once");
            from = optarg;
            intermediates = opt_ == 'I';
            break;
        case 't': token = optarg; break;)
    if (argc - optind != 1)
        return cli_usage_error("send", "send needs exactly one POOL/VOL@NAME");
    if (isatty(STDOUT_FILENO))
        return cli_usage_error("send", "refusing to write a stream to a terminal; redirect "
                               "stdout to a file or a pipe");
    _cleanup_free_ char *pool = NULL, *snap = NULL;
    const char *api_from = NULL;
    int rc = cli_split_snap("send", argv[optind], &pool, &snap);
    if (rc == EXIT_OK && from)
        rc = from_arg(from, pool, &api_from);
    if (rc != EXIT_OK)
        return rc;
    char path[8704];
    rc = cli_snap_path("send", argv[optind], "/send", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    if (api_from)
        cli_query_add(path, sizeof(path), "from", api_from);
    if (intermediates)
        cli_query_add(path, sizeof(path), "intermediates", "1");
    if (token)
        cli_query_add(path, sizeof(path), "token", token);
    if (raw)
        cli_query_add(path, sizeof(path), "raw", "1");
    /* a reader that goes away is an error to report, not a silent death */
    signal(SIGPIPE, SIG_IGN);
    json_t *resp = NULL;
    rc = cli_stream(c, "GET", path, NULL, stdout, &resp);
    json_decref(resp);
    return rc;
}

static int recv_stream(struct cli *c, const char *arg, bool force, bool resumable)
{
    if (isatty(STDIN_FILENO))
        return cli_usage_error("recv", "refusing to read a stream from a terminal; redirect "
                               "stdin from a file or a pipe");
    char *p, *v;
    int rc = cli_split_vol("recv", arg, &p, &v);
    if (rc != EXIT_OK)
        return rc;
    char path[512];
    snprintf(path, sizeof(path), "/pools/%s/volumes/%s/recv", p, v);
    if (force)
        cli_query_add(path, sizeof(path), "force", "1");
    if (resumable)
        cli_query_add(path, sizeof(path), "resumable", "1");
    free(p);
    free(v);
    json_t *resp = NULL;
    rc = cli_stream(c, "POST", path, stdin, NULL, &resp);
    if (rc == EXIT_OK && c->json) {
        out_json(resp);
    } else if (rc == EXIT_OK) {
        char b[32];
        fprintf(stdout, "received %s (%s)\n",
                json_string_value(json_object_get(resp, "snapshot")),
                out_size(c, json_object_get(resp, "bytes_received"), b, sizeof(b)));
        /* a raw stream's slot set (docs/STREAM.md 11.4) */
        const char *ks = json_string_value(json_object_get(resp, "keyslots"));
        if (ks && strcmp(ks, "updated") == 0)
            fprintf(stdout, "key slots updated from the sender\n");
        const char *sw = json_string_value(json_object_get(resp, "keyslots_shared_with"));
        if (ks && strcmp(ks, "kept") == 0)
            fprintf(stderr, "berth: warning: the sender's key slots were not taken: the key "
                    "record is shared with %s, of another lineage (see 'berth key list')\n",
                    sw ? sw : "another volume");
    }
    json_decref(resp);
    return rc;
}

int cmd_recv(struct cli *c, int argc, char **argv)
{
    bool force = false, resumable = false, abort_ = false, token = false;
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"token", no_argument, NULL, 'T'},
                                       {"abort", no_argument, NULL, 'A'}, {NULL, 0, NULL, 0}};
    CLI_GETOPT_LOOP("recv", help_send, "FsA", lo,
        case 'F': force = true; break;
        case 's': resumable = true; break;
        case 'A': abort_ = true; break;
        case 'T': token = true; break;)
    if (argc - optind != 1)
        return cli_usage_error("recv", "recv needs exactly one POOL/VOL");
    if ((abort_ || token) && (force || resumable || (abort_ && token)))
        return cli_usage_error("recv", "-A and --token go alone");
    if (!abort_ && !token)
        return recv_stream(c, argv[optind], force, resumable);
    char *p, *v;
    int rc = cli_split_vol("recv", argv[optind], &p, &v);
    if (rc != EXIT_OK)
        return rc;
    char path[512];
    snprintf(path, sizeof(path), "/pools/%s/volumes/%s/%s", p, v, token ? "recv-token" : "recv");
    free(p);
    free(v);
    json_t *resp = NULL;
    rc = cli_call(c, token ? "GET" : "DELETE", path, NULL, &resp);
    if (rc == EXIT_OK && c->json)
        out_json(resp);
    else if (rc == EXIT_OK && token)
        printf("%s\n", json_string_value(json_object_get(resp, "token")));
    else if (rc == EXIT_OK)
        printf("volume %s: interrupted receive aborted\n", argv[optind]);
    json_decref(resp);
    return rc;
}
