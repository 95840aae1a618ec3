/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest agent commands for the API (see supervisor.h): one agent session
 * per command (the socket takes one client; agent_lock serialises), the
 * results shaped as docs/API.md says. */
#include "vm/super_int.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

/* JSON string of guest bytes: invalid UTF-8 becomes '?' rather than an
 * error, a program's output is not ours to reject. */
static json_t *text_json(const char *s, size_t len)
{
    json_t *j = json_stringn(s ? s : "", s ? len : 0);
    if (j)
        return j;
    char *c = malloc(len + 1);
    if (!c)
        return NULL;
    for (size_t i = 0; i < len; i++)
        c[i] = (unsigned char)s[i] < 0x80 && s[i] ? s[i] : '?';
    c[len] = '\0';
    j = json_stringn(c, len);
    free(c);
    return j;
}

static int run(struct qga *g, const char *command, const char *const *argv, int timeout_ms,
               json_t **result, struct berr *err)
{
    int r, n = 0;
    if (strcmp(command, "ping") == 0) {
        if ((r = qga_ping(g, timeout_ms, err)) == 0)
            *result = json_object();
    } else if (strcmp(command, "info") == 0) {
        char *ver = NULL;
        if ((r = qga_info(g, timeout_ms, &ver, err)) == 0)
            *result = json_pack("{s:s}", "version", ver ? ver : "");
        free(ver);
    } else if (strcmp(command, "fsfreeze") == 0) {
        if ((r = qga_fsfreeze(g, timeout_ms, &n, err)) == 0)
            *result = json_pack("{s:i}", "frozen", n);
    } else if (strcmp(command, "thaw") == 0) {
        if ((r = qga_fsthaw(g, timeout_ms, &n, err)) == 0)
            *result = json_pack("{s:i}", "thawed", n);
    } else if (strcmp(command, "fsfreeze-status") == 0) {
        json_t *ret = NULL;
        if ((r = qga_execute(g, "guest-fsfreeze-status", NULL, timeout_ms, &ret, err)) == 0)
            *result = json_is_string(ret) ? json_incref(ret) : json_string("unknown");
        json_decref(ret);
    } else if (strcmp(command, "exec") == 0) {
        if (!argv || !argv[0])
            return berr_set(err, EINVAL, "exec needs 'args': the command line, e.g. "
                            "[\"/bin/sh\", \"-c\", \"uname -a\"]");
        struct qga_exec_result res;
        r = qga_exec(g, argv, NULL, timeout_ms, &res, err);
        if (r == 0)
            *result = json_pack("{s:i,s:i,s:o,s:o}", "exitcode", res.exited ? res.exitcode : -1,
                                "signal", res.signal, "stdout", text_json(res.out, res.out_len),
                                "stderr", text_json(res.err, res.err_len));
        else if (r == -ETIMEDOUT)
            berr_set(err, ETIMEDOUT, "exec: %s did not finish within %d s", argv[0],
                     timeout_ms / 1000);
        qga_exec_result_clear(&res);
    } else {
        return berr_set(err, EINVAL, "unknown agent command '%s' (ping, info, fsfreeze, thaw, "
                        "fsfreeze-status, exec)", command);
    }
    if (r == 0 && !*result)
        r = berr_set(err, ENOMEM, "out of memory");
    return r;
}

int vmm_agent(struct vmm *m, uint32_t vmid, const char *command, const char *const *argv,
              int timeout_ms, json_t **result, struct berr *err)
{
    *result = NULL;
    struct vm *vm = vm_get(m, vmid, false, err);
    if (!vm)
        return -ENOENT;
    int r = 0;
    pthread_mutex_lock(&m->lock);
    if (!vm->pid || vm->status != VM_ST_RUNNING)
        r = berr_set(err, EBUSY, "VM %u is %s", vmid,
                     vm->status == VM_ST_STOPPED ? "not running" : vm_status_name(vm->status));
    else if (!vm_config_agent_enabled(vm->have_run_cfg ? &vm->run_cfg : &vm->cfg))
        r = berr_set(err, EINVAL, "VM %u has no guest agent channel (set 'agent: 1' and "
                     "restart it)", vmid);
    pthread_mutex_unlock(&m->lock);
    if (r == 0) {
        pthread_mutex_lock(&vm->agent_lock);
        struct qga *g = NULL;
        r = qga_open(vm->paths.qga, timeout_ms, &g, err);
        if (r == 0)
            r = run(g, command, argv, timeout_ms, result, err);
        if (r == -ETIMEDOUT && strcmp(command, "exec") != 0)
            berr_set(err, ETIMEDOUT, "the guest agent of VM %u did not answer within %d s "
                     "(is qemu-ga running in the guest?)", vmid, timeout_ms / 1000);
        qga_close(g);
        pthread_mutex_unlock(&vm->agent_lock);
    }
    vm_put(vm);
    return r;
}
