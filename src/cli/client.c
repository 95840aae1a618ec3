/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTTP client of berth: libcurl over berthd's unix socket.  Turns
 * transport failures into exit code 3 and API errors into the API's message. */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESP_MAX (64u << 20)

struct buf {
    char *p;
    size_t len;
    bool overflow;
};

static size_t on_data(char *data, size_t size, size_t n, void *opaque)
{
    struct buf *b = opaque;
    size_t len = size * n;
    if (b->len + len > RESP_MAX) {
        b->overflow = true;
        return 0;
    }
    char *np = realloc(b->p, b->len + len + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, data, len);
    b->p = np;
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

char *cli_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = e ? strdup(e) : NULL;
    curl_free(e);
    return r;
}

void cli_query_add(char *path, size_t len, const char *key, const char *value)
{
    char *e = cli_escape(value);
    size_t l = strlen(path);
    if (e && l < len)
        snprintf(path + l, len - l, "%s%s=%s", strchr(path, '?') ? "&" : "?", key, e);
    free(e);
}

/* A handle for one request to berthd (headers owned by the caller). */
static CURL *open_request(struct cli *c, const char *method, const char *path,
                          struct curl_slist *hdrs)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    char url[4096];
    snprintf(url, sizeof(url), "http://localhost/api/v1%s", path);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    return h;
}

/* Turn the outcome of a request with a JSON answer into an exit code. */
static int json_outcome(struct cli *c, CURLcode cr, long status, struct buf *b, json_t **resp)
{
    if (cr == CURLE_COULDNT_CONNECT || cr == CURLE_COULDNT_RESOLVE_HOST) {
        fprintf(stderr, "berth: cannot connect to berthd at %s: is berthd running?\n",
                c->socket);
        return EXIT_UNREACHABLE;
    }
    if (cr != CURLE_OK) {
        fprintf(stderr, "berth: talking to berthd at %s: %s\n", c->socket,
                b->overflow ? "response too large" : curl_easy_strerror(cr));
        return EXIT_UNREACHABLE;
    }
    json_error_t je;
    json_t *j = b->p ? json_loadb(b->p, b->len, 0, &je) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return cli_fail("berthd answered HTTP %ld with something that is not JSON", status);
    }
    if (status >= 400) {
        json_t *e = json_object_get(j, "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (c->json)
            out_json(j);
        int rc = cli_fail("%s", msg ? msg : "request failed");
        json_decref(j);
        return rc;
    }
    *resp = j;
    return EXIT_OK;
}

int cli_call(struct cli *c, const char *method, const char *path, json_t *body, json_t **resp)
{
    *resp = NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    CURL *h = open_request(c, method, path, hdrs);
    if (!h) {
        curl_slist_free_all(hdrs);
        return cli_fail("cannot initialise libcurl");
    }
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct buf b = {0};
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (payload)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    CURLcode cr = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (payload) /* it may carry key material (berth key, vol create) */
        explicit_bzero(payload, strlen(payload));
    free(payload);
    int rc = json_outcome(c, cr, status, &b, resp);
    free(b.p);
    return rc;
}

/* ---- streams (send / receive) ---- */

struct stream_io {
    CURL *h;
    FILE *in, *out;
    struct buf b;       /* a JSON answer (errors; recv's result) */
    bool streaming;     /* a 2xx answer is being copied to `out` */
    int out_errno;      /* writing `out` failed */
    int in_errno;       /* reading `in` failed */
};

static size_t on_stream_data(char *data, size_t size, size_t n, void *opaque)
{
    struct stream_io *io = opaque;
    size_t len = size * n;
    if (!io->streaming && io->out) {
        long status = 0;
        curl_easy_getinfo(io->h, CURLINFO_RESPONSE_CODE, &status);
        io->streaming = status >= 200 && status < 300;
    }
    if (!io->streaming)
        return on_data(data, size, n, &io->b);
    if (fwrite(data, 1, len, io->out) != len) {
        io->out_errno = errno ? errno : EIO;
        return 0; /* abort the transfer */
    }
    return len;
}

static size_t on_stream_read(char *buf, size_t size, size_t n, void *opaque)
{
    struct stream_io *io = opaque;
    size_t got = fread(buf, 1, size * n, io->in);
    if (got == 0 && ferror(io->in)) {
        io->in_errno = errno ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    return got;
}

int cli_stream(struct cli *c, const char *method, const char *path, FILE *in, FILE *out,
               json_t **resp)
{
    *resp = NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    if (in) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    }
    struct stream_io io = {.in = in, .out = out};
    io.h = open_request(c, method, path, hdrs);
    if (!io.h) {
        curl_slist_free_all(hdrs);
        return cli_fail("cannot initialise libcurl");
    }
    curl_easy_setopt(io.h, CURLOPT_WRITEFUNCTION, on_stream_data);
    curl_easy_setopt(io.h, CURLOPT_WRITEDATA, &io);
    if (in) {
        curl_easy_setopt(io.h, CURLOPT_POST, 1L);
        curl_easy_setopt(io.h, CURLOPT_READFUNCTION, on_stream_read);
        curl_easy_setopt(io.h, CURLOPT_READDATA, &io);
    }
    CURLcode cr = curl_easy_perform(io.h);
    long status = 0;
    curl_easy_getinfo(io.h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(io.h);
    curl_slist_free_all(hdrs);
    int rc;
    if (io.out_errno)
        rc = cli_fail("writing the stream: %s", strerror(io.out_errno));
    else if (io.in_errno)
        rc = cli_fail("reading the stream: %s", strerror(io.in_errno));
    else if (io.streaming && cr != CURLE_OK)
        rc = cli_fail("the stream from berthd broke off (%s); berthd's log says why",
                      curl_easy_strerror(cr));
    else if (io.streaming)
        rc = fflush(out) == 0 ? EXIT_OK : cli_fail("writing the stream: %s", strerror(errno));
    else
        rc = json_outcome(c, cr, status, &io.b, resp);
    free(io.b.p);
    return rc;
}
