/* tapegrad_dist (CMake target tapegrad::dist): data-parallel training over MPI, the way
 * PyTorch's DistributedDataParallel works. Every process (rank) holds the whole model, takes
 * its slice of every global batch, and the gradients are averaged before each optimizer step.
 *
 *   mpirun -np 2 build/bin/mnist --batch 64      (2 ranks x 32 samples per step)
 *
 * One binary serves both: a process started without mpirun is rank 0 of 1 and every call below
 * is a no-op (in a build without MPI, TG_MPI=OFF or OpenMPI absent, always). The core library
 * never links MPI; only this one does.
 *
 * Errors: functions return TG_OK or a status with tg_last_error(). A failed collective (an MPI
 * error, or no answer from the other ranks within the timeout) cannot be recovered: it prints
 * "tapegrad dist: rank R of W: ..." and stops every rank (MPI_Abort). A rank that exits with a
 * non-zero status without tg_dist_finalize (an error path returning from main, exit(1)) does the
 * same from an exit handler, so no rank is left waiting for it (exit(0) finalizes).
 * Ownership: nothing here allocates anything the caller frees.
 */
#ifndef TG_DIST_H
#define TG_DIST_H

#include <stdio.h>

#include "../nn/nn.h"

/* Joins the job: MPI_Init_thread (funneled: call collectives from the main thread only) when
 * started by mpirun, else rank 0 of 1. Call once, early in main (after tg_blas_select_kernel). */
tg_status tg_dist_init(int *argc, char ***argv);
/* Leaves the job (MPI_Finalize). Call on success at the end of main. */
tg_status tg_dist_finalize(void);
/* rc == 0: tg_dist_finalize and 0. Otherwise, in a job of several ranks, stops every rank with a
 * message naming this one (MPI_Abort), or returns rc alone. For `return tg_dist_finish(rc);`. */
int tg_dist_finish(int rc);
/* Prints "tapegrad dist: rank R of W: <message>" on stderr and stops every rank with exit code
 * `code` (MPI_Abort); a single process just exits. */
_Noreturn void tg_dist_abort(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int tg_dist_rank(void);        /* 0 when not under mpirun */
int tg_dist_world_size(void);  /* 1 when not under mpirun */
bool tg_dist_is_main(void);    /* rank 0: the one that writes logs, checkpoints, reports */
/* "OpenMPI 4.1.4" (or what the library reports), or "none (built without MPI)". Static storage. */
const char *tg_dist_backend(void);

/* The longest a collective waits for the other ranks before stopping the job (default 600 s,
 * or $TG_DIST_TIMEOUT seconds). A rank busy elsewhere (rank 0 evaluating) counts as waiting. */
void tg_dist_set_timeout(double seconds);

/* Rank 0's parameters and buffers (BatchNorm running statistics...) copied to every rank, after
 * checking that every rank registered the same names and shapes (an error names the first
 * difference). Call once after building the model (and after loading a checkpoint on rank 0, or
 * on every rank). */
tg_status tg_dist_broadcast_state(tg_param_list *list);

/* Averages the gradients over the ranks, in place, after tg_backward: buckets of the list's
 * gradient block (tg_dist_set_bucket_bytes, 4 MB by default) summed with MPI_Iallreduce in a
 * fixed order, then divided by the world size. local_n of global_n samples were used here
 * (global_n: the whole batch); when the slices differ in size (the last batch of an epoch) each
 * rank's gradient is weighted by local_n * W / global_n first, so a loss that is a mean over
 * samples gets the whole batch's gradient. */
tg_status tg_dist_allreduce_grads(tg_param_list *list, int64_t local_n, int64_t global_n);
void tg_dist_set_bucket_bytes(size_t bytes);

/* Element-wise sum over the ranks, in place (metrics, counts). */
tg_status tg_dist_allreduce_sum(double *buf, int64_t n);
tg_status tg_dist_barrier(void);
/* True on every rank if every rank holds bit-identical parameters and buffers (a check). */
tg_status tg_dist_state_identical(const tg_param_list *list, bool *identical);

/* SyncBatchNorm: on, the list's BatchNorm layers train with the whole global batch's statistics
 * (tg_sync_batch_norm through MPI). Off (the default, as DDP): each rank's own statistics. In a
 * single process it changes nothing. */
tg_status tg_dist_sync_batchnorm(tg_param_list *list, bool on);
/* The reducer tg_sync_batch_norm uses (sums over the ranks; a no-op in one process). */
const tg_bn_reducer *tg_dist_bn_reducer(void);

/* This rank's slice [*start, *start + *len) of a global batch of n samples (tg_batch_shard with
 * this rank and world size). */
void tg_dist_shard(int64_t n, int64_t *start, int64_t *len);
/* Checks that a global batch size splits evenly over the ranks; an error message says what to use. */
tg_status tg_dist_check_batch(int64_t global_batch);

/* Only rank 0 talks: on the other ranks stdout goes to /dev/null (stderr stays, for errors). */
void tg_dist_quiet_others(void);
/* Where a progress bar goes: stderr on rank 0, a stream to /dev/null elsewhere. */
FILE *tg_dist_progress_stream(void);

typedef struct {
    int64_t allreduce_calls;      /* tg_dist_allreduce_grads calls */
    double allreduce_seconds;     /* wall time inside them (waiting for slower ranks included) */
    double allreduce_bytes;       /* gradient bytes reduced */
    double collective_seconds;    /* all collectives (SyncBatchNorm, metrics...) including the above */
} tg_dist_stats;
tg_dist_stats tg_dist_get_stats(void);
void tg_dist_reset_stats(void);

#endif
