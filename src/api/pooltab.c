/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool table: see pooltab.h for the locking and ownership rules. */
#include "api/pooltab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_vdevs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static struct pool_entry *entry_new(const char *name, const char *const *vdevs, size_t n)
{
    struct pool_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->vdevs = calloc(n ? n : 1, sizeof(char *));
    if (!e->vdevs) {
        free(e);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        e->vdevs[i] = strdup(vdevs[i]);
        if (!e->vdevs[i]) {
            free_vdevs(e->vdevs, i);
            free(e);
            return NULL;
        }
    }
    e->nvdevs = n;
    atomic_init(&e->refs, 1);
    atomic_init(&e->handles, 0);
    return e;
}

int pooltab_set_vdevs(struct pool_entry *e, const char *const *vdevs, size_t n)
{
    char **v = calloc(n ? n : 1, sizeof(char *));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(vdevs[i]);
        if (!v[i]) {
            free_vdevs(v, i);
            return -ENOMEM;
        }
    }
    free_vdevs(e->vdevs, e->nvdevs);
    e->vdevs = v;
    e->nvdevs = n;
    return 0;
}

void pool_entry_ref(struct pool_entry *e)
{
    atomic_fetch_add(&e->refs, 1);
}

void pool_entry_unref(struct pool_entry *e)
{
    if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
        return;
    free_vdevs(e->vdevs, e->nvdevs);
    free(e);
}

int pooltab_init(struct pooltab *t)
{
    memset(t, 0, sizeof(*t));
    return -pthread_rwlock_init(&t->lock, NULL);
}

static void free_list(struct pool_entry *e)
{
    while (e) {
        struct pool_entry *next = e->next;
        pool_entry_unref(e);
        e = next;
    }
}

void pooltab_destroy(struct pooltab *t)
{
    free_list(t->head);
    free_list(t->exported);
    t->head = t->exported = NULL;
    pthread_rwlock_destroy(&t->lock);
}

void pooltab_rdlock(struct pooltab *t)
{
    pthread_rwlock_rdlock(&t->lock);
}

void pooltab_wrlock(struct pooltab *t)
{
    pthread_rwlock_wrlock(&t->lock);
}

void pooltab_unlock(struct pooltab *t)
{
    pthread_rwlock_unlock(&t->lock);
}

struct pool_entry *pooltab_find(struct pooltab *t, const char *name)
{
    for (struct pool_entry *e = t->head; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static void insert_sorted(struct pool_entry **head, struct pool_entry *e)
{
    struct pool_entry **pp = head;
    while (*pp && strcmp((*pp)->name, e->name) < 0)
        pp = &(*pp)->next;
    e->next = *pp;
    *pp = e;
}

int pooltab_add(struct pooltab *t, const char *name, bs_pool *pool, const char *const *vdevs,
                size_t nvdevs, const char *error, struct berr *err)
{
    if (pooltab_find(t, name))
        return berr_set(err, EEXIST, "pool '%s' already exists", name);
    struct pool_entry *e = entry_new(name, vdevs, nvdevs);
    if (!e)
        return berr_set(err, ENOMEM, "out of memory");
    e->pool = pool;
    if (error)
        snprintf(e->error, sizeof(e->error), "%s", error);
    insert_sorted(&t->head, e);
    return 0;
}

static void unlink_entry(struct pool_entry **head, struct pool_entry *e)
{
    for (struct pool_entry **pp = head; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            e->next = NULL;
            return;
        }
    }
}

void pooltab_remove(struct pooltab *t, struct pool_entry *e)
{
    unlink_entry(&t->head, e);
    pool_entry_unref(e);
}

void pooltab_forget_exported(struct pooltab *t, const char *name)
{
    for (struct pool_entry *e = t->exported; e; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            unlink_entry(&t->exported, e);
            pool_entry_unref(e);
            return;
        }
    }
}

int pooltab_remember_exported(struct pooltab *t, const char *name, const char *const *vdevs,
                              size_t nvdevs)
{
    pooltab_forget_exported(t, name);
    struct pool_entry *e = entry_new(name, vdevs, nvdevs);
    if (!e)
        return -ENOMEM;
    insert_sorted(&t->exported, e);
    return 0;
}
