/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the API's request validation: the input is fed as a
 * body to every route's validator, split into query parameters for every
 * route's query validator, and used as a request path for the router (plus
 * capture validation).  Nothing may crash, leak or read out of bounds, and
 * every failure must come with a message. */
#include "api/schema.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int r, const struct berr *err)
{
    if (r < 0 && (err->code != -r || err->msg[0] == '\0'))
        abort(); /* every refusal must carry its code and a message */
}

static void fuzz_query(const struct api_route *r, const char *s)
{
    /* "k=v&k2=v2" -> {"k": "v", ...}, like http.c collects them */
    json_t *q = json_object();
    char *copy = strdup(s);
    if (!q || !copy)
        goto out;
    for (char *save = NULL, *tok = strtok_r(copy, "&", &save); tok;
         tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        if (eq)
            *eq++ = '\0';
        json_object_set_new_nocheck(q, tok, json_string_nocheck(eq ? eq : ""));
    }
    struct berr err = {0};
    json_t *out = NULL;
    int rc = api_validate_query(r, q, &out, &err);
    check_err(rc, &err);
    if ((rc == 0) != (out != NULL))
        abort();
    json_decref(out);
out:
    json_decref(q);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < api_nroutes; i++) {
        struct berr err = {0};
        json_t *out = NULL;
        int rc = api_validate_body(&api_routes[i], (const char *)data, size, &out, &err);
        check_err(rc, &err);
        if ((rc == 0) != (out != NULL) || (out && !json_is_object(out)))
            abort();
        json_decref(out);
    }
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (size_t i = 0; i < api_nroutes; i++)
        if (api_routes[i].query)
            fuzz_query(&api_routes[i], s);
    static const char *const methods[] = {"GET", "POST", "PATCH", "DELETE", "PUT"};
    char path[4200];
    snprintf(path, sizeof(path), "%s%s", size && s[0] == '/' ? API_PREFIX : API_PREFIX "/", s);
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
        struct api_match match;
        struct berr err = {0};
        char allow[64];
        int rc = api_route_match(methods[m], path, &match, allow, sizeof(allow), &err);
        check_err(rc, &err);
        if (rc == 0) {
            rc = api_validate_caps(&match, &err);
            check_err(rc, &err);
        }
        api_match_free(&match);
    }
    free(s);
    return 0;
}
