/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Codec of the MOS encryption records (docs/FORMAT.md section 10): a volume
 * key (type 4: the wrapped master key in its key slots, the key guid, the
 * fingerprint, keyformat and keylocation) and the pool's encryption
 * defaults (type 6).  Input is hostile: every field is range checked and
 * the slot set goes through keyslots_decode, -EILSEQ otherwise. */
#include <string.h>

#include "common/le.h"
#include "store/mos.h"

bool mos_keylocation_ok(const char *s)
{
    size_t n = strnlen(s, BS_KEYLOCATION_MAX);
    if (n == 0 || n >= BS_KEYLOCATION_MAX)
        return false;
    return strcmp(s, "prompt") == 0 || (strncmp(s, "file:///", 8) == 0 && n > 8);
}

/* Copy a length-prefixed keylocation (may be empty when `empty_ok`). */
static int get_location(const uint8_t *src, size_t n, char *dst, bool empty_ok)
{
    if (n >= BS_KEYLOCATION_MAX || memchr(src, 0, n))
        return -EILSEQ;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return (n == 0 && empty_ok) || mos_keylocation_ok(dst) ? 0 : -EILSEQ;
}

/* Payload of a key record:
 *   0 id u64 | 8 guid u64 | 16 suite u8 | 17 keyformat u8 | 18 location length u16
 *   20 AAD version u8 | 21 reserved[3] | 24 fingerprint[16] | 40 slots[1024] | 1064 location
 * The AAD version byte was reserved (0) before portable AADs: it is written
 * as 2 now (blocks of this key may use the portable AAD, blkcrypt.h), so an
 * older reader, which wants 0, refuses the directory instead of failing on
 * those blocks one by one; 0 is still read. */
#define KEY_AAD_PORTABLE 2
size_t mos_key_len(const struct mos_key *k)
{
    return MOS_KEY_FIXED + strlen(k->location);
}

void mos_key_encode(const struct mos_key *k, uint8_t *out)
{
    size_t n = strlen(k->location);
    memset(out, 0, MOS_KEY_FIXED);
    put_le64(out, k->id);
    put_le64(out + 8, k->guid);
    out[16] = k->suite;
    out[17] = k->keyformat;
    put_le16(out + 18, (uint16_t)n);
    out[20] = KEY_AAD_PORTABLE;
    memcpy(out + 24, k->fingerprint, CRYPT_FINGERPRINT_LEN);
    keyslots_encode(&k->slots, out + 40);
    memcpy(out + MOS_KEY_FIXED, k->location, n);
}

int mos_key_decode(const uint8_t *in, uint32_t len, struct mos_key *k)
{
    memset(k, 0, sizeof *k);
    if (len < MOS_KEY_FIXED)
        return -EILSEQ;
    k->id = get_le64(in);
    k->guid = get_le64(in + 8);
    k->suite = in[16];
    k->keyformat = in[17];
    uint16_t n = get_le16(in + 18);
    memcpy(k->fingerprint, in + 24, CRYPT_FINGERPRINT_LEN);
    if (k->id == 0 || k->suite != 1 || k->keyformat < KEYFORMAT_RAW ||
        k->keyformat > KEYFORMAT_PASSPHRASE || (in[20] != 0 && in[20] != KEY_AAD_PORTABLE) ||
        in[21] || in[22] || in[23] ||
        (uint32_t)MOS_KEY_FIXED + n != len ||
        keyslots_decode(in + 40, KEYSLOTS_SIZE, &k->slots) < 0 ||
        keyslots_count(&k->slots) == 0 ||
        get_location(in + MOS_KEY_FIXED, n, k->location, false) < 0)
        return -EILSEQ;
    return 0;
}

/* Payload of the defaults: 0 encryption u8 | 1 keyformat u8 | 2 location length u16
 *   4 reserved u32 | 8 location */
size_t mos_cryptdef_len(const struct mos_cryptdef *d)
{
    return 8 + strlen(d->location);
}

void mos_cryptdef_encode(const struct mos_cryptdef *d, uint8_t *out)
{
    size_t n = strlen(d->location);
    memset(out, 0, 8);
    out[0] = d->encryption;
    out[1] = d->keyformat;
    put_le16(out + 2, (uint16_t)n);
    memcpy(out + 8, d->location, n);
}

int mos_cryptdef_decode(const uint8_t *in, uint32_t len, struct mos_cryptdef *d)
{
    memset(d, 0, sizeof *d);
    if (len < 8)
        return -EILSEQ;
    d->encryption = in[0];
    d->keyformat = in[1];
    uint16_t n = get_le16(in + 2);
    if (d->encryption > 1 || d->keyformat > KEYFORMAT_PASSPHRASE || get_le32(in + 4) != 0 ||
        8u + n != len || get_location(in + 8, n, d->location, true) < 0 ||
        (d->encryption && (!d->keyformat || !d->location[0])))
        return -EILSEQ;
    return 0;
}
