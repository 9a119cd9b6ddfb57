/* nn internals. Not public API.
 * The safetensors file layer (nn/safetensors.c) sits under tg_checkpoint_save/load (nn/checkpoint.c)
 * and tg_trace_end (nn/trace.c) and calls nothing above it: its metadata are plain string pairs,
 * which nn/meta.c converts to and from tg_meta, and its messages name the public function given
 * as `who`. */
#ifndef TG_NN_INTERNAL_H
#define TG_NN_INTERNAL_H

#include <stdio.h>

#include "nn.h"

/* safetensors dtypes: the ones tapegrad stores plus the rest of the spec (sizes known,
 * so a file holding them validates and a match against them reports a clear mismatch). */
typedef enum {
    TG_ST_F32 = 0, TG_ST_I64, TG_ST_F64, TG_ST_BOOL, TG_ST_U8, TG_ST_I8, TG_ST_F8_E5M2, TG_ST_F8_E4M3,
    TG_ST_I16, TG_ST_U16, TG_ST_F16, TG_ST_BF16, TG_ST_I32, TG_ST_U32, TG_ST_U64, TG_ST_N_DTYPES
} tg_st_dtype;

#define TG_ST_NAME_LEN (TG_PARAM_NAME_LEN + 32)
/* Largest header accepted (as the reference implementation: 100 MB). */
#define TG_ST_MAX_HEADER 100000000ULL
/* The file starts with the header's length: a little-endian u64. */
#define TG_ST_LEN_BYTES 8
/* The longest path kept for messages. */
#define TG_ST_PATH_LEN 512

/* One "__metadata__" entry: plain strings. */
typedef struct {
    const char *key, *value;
} tg_st_pair;

typedef struct {
    char name[TG_ST_NAME_LEN];
    tg_st_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    const void *data;          /* write: the bytes to store */
    uint64_t begin, end;       /* read: data_offsets */
    bool used;                 /* read: matched by the loader */
} tg_st_entry;

const char *tg_st_dtype_name(tg_st_dtype d);
size_t tg_st_dtype_size(tg_st_dtype d);

/* Writes entries (in order) and the n_meta pairs (distinct keys; meta may be NULL if n_meta is 0)
 * atomically to path. who: the public function that error messages name (a string literal). */
tg_status tg_st_write(const char *path, const tg_st_entry *entries, int n, const tg_st_pair *meta, int n_meta,
                      const char *who);

/* A validated, open file: entries sorted by name, metadata in file order (caller must tg_st_close). */
typedef struct {
    FILE *f;
    char path[TG_ST_PATH_LEN];
    const char *who;           /* named in error messages */
    tg_st_entry *entries;
    int n;
    tg_st_pair *meta;          /* "__metadata__", owned by the file (one block, freed by tg_st_close) */
    int n_meta;
    uint64_t data_start, data_size;
} tg_st_file;

/* Opens and validates path; who as tg_st_write. On error nothing needs closing. */
tg_status tg_st_open(const char *path, tg_st_file *st, const char *who);
tg_st_entry *tg_st_find(tg_st_file *st, const char *name);
/* Copies an entry's bytes into dst (entry size bytes). */
tg_status tg_st_read(tg_st_file *st, const tg_st_entry *e, void *dst);
void tg_st_close(tg_st_file *st);

/* tg_meta <-> the format layer's pairs (nn/meta.c). to_pairs: *pairs borrows m's strings (free the
 * array with tg_free; NULL when m is NULL or empty). from_pairs: sets each pair in m. Errors: out of memory. */
tg_status tg_meta_to_pairs(const tg_meta *m, tg_st_pair **pairs, int *n);
tg_status tg_meta_from_pairs(tg_meta *m, const tg_st_pair *pairs, int n);

/* Sizes the optimizer's per-entry arrays (group, frozen steps) for its list's current entries
 * (entries added since start in group 0); false + error if out of memory. */
bool tg_optim_sync_entries(tg_optimizer *o);

/* Test hook: the writer fails as if the disk were full once `bytes` bytes are written (-1: off). */
void tg_st_set_write_fail_after(int64_t bytes);

#endif
