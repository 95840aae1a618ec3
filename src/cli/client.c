/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTTP client of berth: libcurl over berthd's unix socket.  Turns
 * transport failures into exit code 3 and API errors into the API's message. */
#include "cli.h"

#include <curl/curl.h>
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

int cli_call(struct cli *c, const char *method, const char *path, json_t *body, json_t **resp)
{
    *resp = NULL;
    CURL *h = curl_easy_init();
    if (!h)
        return cli_fail("cannot initialise libcurl");
    char url[4096];
    snprintf(url, sizeof(url), "http://localhost/api/v1%s", path);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct buf b = {0};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (payload)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    CURLcode cr = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(payload);

    int rc = EXIT_OK;
    if (cr == CURLE_COULDNT_CONNECT || cr == CURLE_COULDNT_RESOLVE_HOST) {
        fprintf(stderr, "berth: cannot connect to berthd at %s: is berthd running?\n",
                c->socket);
        rc = EXIT_UNREACHABLE;
    } else if (cr != CURLE_OK) {
        fprintf(stderr, "berth: talking to berthd at %s: %s\n", c->socket,
                b.overflow ? "response too large" : curl_easy_strerror(cr));
        rc = EXIT_UNREACHABLE;
    } else {
        json_error_t je;
        json_t *j = b.p ? json_loadb(b.p, b.len, 0, &je) : NULL;
        if (!json_is_object(j)) {
            json_decref(j);
            rc = cli_fail("berthd answered HTTP %ld with something that is not JSON", status);
        } else if (status >= 400) {
            json_t *e = json_object_get(j, "error");
            const char *msg = json_string_value(json_object_get(e, "message"));
            if (c->json)
                out_json(j);
            rc = cli_fail("%s", msg ? msg : "request failed");
            json_decref(j);
        } else {
            *resp = j;
        }
    }
    free(b.p);
    return rc;
}
