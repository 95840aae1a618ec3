/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal interface between the config files of src/vm: config.c (lines,
 * keys, scalar values, canonical text), config_dev.c (device values: disks,
 * NICs, passthrough, efidisk, TPM, agent) and config_check.c (cross-key
 * validation).  Each parser fills a zeroed/unset struct and reports errors
 * prefixed with the config key. */
#ifndef BERTH_VM_CONFIG_INT_H
#define BERTH_VM_CONFIG_INT_H

#include "vm/config.h"
#include "vm/internal.h"

int vm_parse_volref(const char *key, const char *s, struct vm_volref *v, struct berr *err);
void vm_format_volref(struct sbuf *b, const struct vm_volref *v);
void vm_format_size(struct sbuf *b, uint64_t bytes);

int vm_parse_disk(const char *key, enum vm_bus bus, int index, const char *val, struct vm_disk *d,
                  struct berr *err);
void vm_format_disk(struct sbuf *b, const struct vm_disk *d);
void vm_disk_clear(struct vm_disk *d);

int vm_parse_efidisk(const char *key, const char *val, struct vm_efidisk *e, struct berr *err);
void vm_format_efidisk(struct sbuf *b, const struct vm_efidisk *e);
int vm_parse_tpmstate(const char *key, const char *val, struct vm_tpmstate *t, struct berr *err);
void vm_format_tpmstate(struct sbuf *b, const struct vm_tpmstate *t);

int vm_parse_net(const char *key, int index, const char *val, struct vm_net *n, struct berr *err);
void vm_format_net(struct sbuf *b, const struct vm_net *n);

int vm_parse_hostpci(const char *key, int index, const char *val, struct vm_hostpci *h,
                     struct berr *err);
void vm_format_hostpci(struct sbuf *b, const struct vm_hostpci *h);
void vm_hostpci_clear(struct vm_hostpci *h);

int vm_parse_usb(const char *key, int index, const char *val, struct vm_usb *u, struct berr *err);
void vm_format_usb(struct sbuf *b, const struct vm_usb *u);

int vm_parse_agent(const char *key, const char *val, struct vm_agent *a, struct berr *err);
void vm_format_agent(struct sbuf *b, const struct vm_agent *a);

/* "order=scsi0;ide2;net0" into a NULL-terminated vector. */
int vm_parse_boot(const char *key, const char *val, char ***order, struct berr *err);

/* Split "scsi12" into family "scsi" and 12; false if not of that shape. */
bool vm_split_slot(const char *key, char *family, size_t flen, int *index);

extern const char *const vm_nic_models[];

/* Set one key (config.c).  replace=false: a key already set is a duplicate
 * and an empty value an error (file parsing); true: `vm set` semantics. */
int vm_config_set_key(struct vm_config *c, const char *key, const char *v, bool replace,
                      struct berr *err);
/* Canonical names of the enum values (index = enum value). */
extern const char *const vm_machine_names[], *const vm_bios_names[], *const vm_scsihw_names[],
    *const vm_accel_names[], *const vm_vga_names[];

#endif
