/* The ggml type table, generated from ggml_types.def. */
#include "ae_types.h"

#include <inttypes.h>
#include <strings.h>

static const struct ae_type_info type_table[AE_TYPE_ID_LIMIT] = {
#define X(NAME, ID, STR, BS, BB) [ID] = {STR, BS, BB},
#include "ggml_types.def"
#undef X
};

const struct ae_type_info *ae_type_info(uint32_t type)
{
    if (type >= AE_TYPE_ID_LIMIT || !type_table[type].name)
        return NULL;
    return &type_table[type];
}

const char *ae_type_name(uint32_t type)
{
    const struct ae_type_info *t = ae_type_info(type);
    return t ? t->name : "unknown";
}

int ae_type_from_name(const char *name)
{
    for (int i = 0; i < AE_TYPE_ID_LIMIT; i++)
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0)
            return i;
    return -1;
}

int ae_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out, ae_error *err)
{
    const struct ae_type_info *t = ae_type_info(type);
    if (!t)
        return ae_fail(err, "unknown tensor type %" PRIu32, type);
    if (n % t->block_size != 0)
        return ae_fail(err, "%" PRIu64 " elements of type %s is not a multiple of its block size %" PRIu32,
                       n, t->name, t->block_size);
    uint64_t blocks = n / t->block_size;
    if (blocks > UINT64_MAX / t->block_bytes)
        return ae_fail(err, "%" PRIu64 " elements of type %s overflow a 64-bit byte count", n, t->name);
    *out = blocks * t->block_bytes;
    return 0;
}
