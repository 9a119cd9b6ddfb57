/* tapegrad nn: named parameters and buffers (PyTorch state_dict names), layers,
 * optimizers, learning-rate schedules, safetensors checkpoints.
 *
 * Ownership: a tg_param_list owns every tensor registered in it (never call
 * tg_tensor_free on them; tg_param_list_free releases all). Parameter values and
 * their gradients sit in two contiguous list-owned blocks, so zero_grad and
 * optimizer steps are single loops; tensor structs stay put, but their data
 * pointers may move while tensors are still being added.
 */
#ifndef TG_NN_H
#define TG_NN_H

#include "../core/core.h"
#include "../ops/nn_ops.h"

/* ---- parameter / buffer registry -------------------------------------- */

#define TG_PARAM_NAME_LEN 128

typedef enum { TG_KIND_PARAM = 0, TG_KIND_BUFFER = 1 } tg_param_kind;

typedef struct {
    char name[TG_PARAM_NAME_LEN]; /* PyTorch state_dict name, e.g. "in_conv.1.running_mean" */
    tg_tensor *tensor;            /* owned by the list */
    tg_param_kind kind;
    bool no_weight_decay;         /* optimizers skip weight decay for this parameter */
    int64_t offset;               /* parameters: first float in the data/grad blocks; buffers: -1 */
} tg_param_entry;

typedef struct tg_param_list {
    tg_param_entry *entries;      /* registration order = state_dict order */
    int count, cap;
    float *data;                  /* all parameter values (64-byte aligned segments) */
    float *grad;                  /* their gradients, same layout */
    int64_t block_numel;          /* floats used in data/grad, padding included */
    int64_t block_cap;
    bool training;                /* train/eval mode read by layers (BatchNorm); starts true */
    const tg_bn_reducer *bn_sync; /* non-NULL: BatchNorm layers train with statistics summed through it
                                     (SyncBatchNorm; tg_dist_sync_batchnorm sets it); not owned */
} tg_param_list;

tg_param_list *tg_param_list_new(void);
void tg_param_list_free(tg_param_list *list);
/* A new zero-filled float parameter (requires_grad, grad in the block). NULL on error (duplicate name...). */
tg_tensor *tg_param_list_add_param(tg_param_list *list, const char *name, int ndim, const int64_t *shape);
/* A new zero-filled buffer (running stats, counters), dtype TG_F32 or TG_I64. */
tg_tensor *tg_param_list_add_buffer(tg_param_list *list, const char *name, tg_dtype dtype, int ndim,
                                    const int64_t *shape);
/* The entry with this name, or NULL. */
tg_param_entry *tg_param_list_find(const tg_param_list *list, const char *name);
/* Zeroes every parameter gradient (one memset over the grad block). */
void tg_param_list_zero_grad(tg_param_list *list);
/* Sets list->training, as model.train() / model.eval(): BatchNorm uses batch statistics and
 * dropout layers drop only when true. */
void tg_param_list_train(tg_param_list *list, bool training);
/* Prints the state_dict's names and shapes in order, one per line, as
 * `for k, v in model.state_dict().items(): print(k, tuple(v.shape))`:
 *   0.weight (4, 3, 3, 3)
 *   1.num_batches_tracked () int64 buffer
 * with "buffer" after buffers and "frozen" after parameters that do not require grad,
 * then a total line. NULL list or out: nothing. */
void tg_param_list_print(const tg_param_list *list, FILE *out);
/* Total elements of all parameters (no padding) or of all buffers. */
int64_t tg_param_list_numel(const tg_param_list *list, tg_param_kind kind);
/* Marks every parameter with ndim <= 1 (biases, BatchNorm weight/bias) as no_weight_decay; returns how many. */
int tg_param_list_no_decay_1d(tg_param_list *list);
/* Joins prefix and name with a dot ("" prefix: name alone) into out; false + error if too long. */
bool tg_param_name(char *out, const char *prefix, const char *name);

/* ---- layers ------------------------------------------------------------ */
/* Each init registers its tensors as "<prefix>.weight" etc. and draws PyTorch's
 * default initialisation from rng (NULL: the global generator):
 * weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups*kh*kw
 * (kaiming_uniform(a=sqrt(5))). Forwards return tape-owned tensors. */

typedef struct {
    tg_tensor *weight, *bias;     /* (out, in), (out) or NULL; owned by the list */
    int64_t in_features, out_features;
} tg_linear_layer;

tg_status tg_linear_layer_init(tg_linear_layer *l, tg_param_list *list, const char *prefix, int64_t in_features,
                               int64_t out_features, bool bias, tg_rng *rng);
tg_tensor *tg_linear_layer_forward(const tg_linear_layer *l, tg_tensor *x);

typedef struct {
    tg_tensor *weight, *bias;     /* (out, in/groups, kh, kw), (out) or NULL */
    int64_t in_channels, out_channels;
    int kernel[2];
    tg_conv2d_opts opts;
} tg_conv2d_layer;

tg_status tg_conv2d_layer_init(tg_conv2d_layer *l, tg_param_list *list, const char *prefix, int64_t in_channels,
                               int64_t out_channels, int kh, int kw, tg_conv2d_opts opts, bool bias, tg_rng *rng);
tg_tensor *tg_conv2d_layer_forward(const tg_conv2d_layer *l, tg_tensor *x);

#define TG_BN_EPS 1e-5f
#define TG_BN_MOMENTUM 0.1f

typedef struct {
    tg_tensor *weight, *bias;                 /* gamma = 1, beta = 0 (parameters) */
    tg_tensor *running_mean, *running_var;    /* 0 and 1 (buffers) */
    tg_tensor *num_batches_tracked;           /* int64 scalar buffer */
    int64_t num_features;
    float eps, momentum;                      /* momentum NAN: cumulative average (PyTorch momentum=None) */
    const bool *training;                     /* points at the list's training flag */
    const tg_bn_reducer *const *sync;         /* points at the list's bn_sync */
} tg_batchnorm2d_layer;

tg_status tg_batchnorm2d_layer_init(tg_batchnorm2d_layer *l, tg_param_list *list, const char *prefix,
                                    int64_t num_features, float eps, float momentum);
tg_tensor *tg_batchnorm2d_layer_forward(const tg_batchnorm2d_layer *l, tg_tensor *x);
/* tg_relu(tg_batchnorm2d_layer_forward(l, x)), bit for bit, as one op (tg_batch_norm_relu). */
tg_tensor *tg_batchnorm2d_layer_forward_relu(const tg_batchnorm2d_layer *l, tg_tensor *x);

/* nn.Dropout: follows its list's training flag (tg_param_list_train), as model.train() /
 * model.eval() switch every dropout of a PyTorch model; no tensors are registered. The
 * functional tg_dropout(x, p, training, rng) stays for an explicit per-call choice. */
typedef struct {
    float p;
    tg_rng *rng;                  /* NULL: the global generator */
    const bool *training;         /* points at the list's training flag */
} tg_dropout_layer;

tg_status tg_dropout_layer_init(tg_dropout_layer *l, tg_param_list *list, float p, tg_rng *rng);
tg_tensor *tg_dropout_layer_forward(const tg_dropout_layer *l, tg_tensor *x);

/* Fills t with U(-bound, bound) from rng (NULL: global). */
void tg_init_uniform(tg_tensor *t, float bound, tg_rng *rng);

/* ---- nn.Sequential ------------------------------------------------------ */
/* Layers appended in order get PyTorch's nn.Sequential names without typing them: the k-th
 * layer appended (counting parameterless ones, as nn.Sequential does) registers its tensors
 * as "<prefix>.<k>.weight" ... ("<k>.weight" with an empty prefix), so
 *   nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(..))
 * is five tg_sequential_add_* calls with state_dict names "0.weight", "0.bias", "1.weight",
 * ..., "4.bias". The container is the caller's (tg_sequential_free); the layers' tensors are
 * the list's. The add functions return the new layer (owned by the container; NULL + error). */
typedef struct tg_sequential tg_sequential;

/* list: where tensors are registered (borrowed; its training flag drives BatchNorm and dropout);
 * prefix: "" or NULL for a top-level Sequential, e.g. "features" for model.features. */
tg_sequential *tg_sequential_new(tg_param_list *list, const char *prefix);
void tg_sequential_free(tg_sequential *s);
/* Number of layers appended so far (= the index the next one gets). */
int tg_sequential_length(const tg_sequential *s);
tg_linear_layer *tg_sequential_add_linear(tg_sequential *s, int64_t in_features, int64_t out_features, bool bias,
                                          tg_rng *rng);
tg_conv2d_layer *tg_sequential_add_conv2d(tg_sequential *s, int64_t in_channels, int64_t out_channels, int kh, int kw,
                                          tg_conv2d_opts opts, bool bias, tg_rng *rng);
/* nn.BatchNorm2d(num_features) with PyTorch's eps 1e-5 and momentum 0.1. */
tg_batchnorm2d_layer *tg_sequential_add_batchnorm2d(tg_sequential *s, int64_t num_features);
tg_dropout_layer *tg_sequential_add_dropout(tg_sequential *s, float p, tg_rng *rng);
/* Parameterless layers: nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Flatten() (start_dim 1), nn.MaxPool2d,
 * nn.AvgPool2d. They take an index, as in PyTorch. TG_OK or an error. */
tg_status tg_sequential_add_relu(tg_sequential *s);
tg_status tg_sequential_add_sigmoid(tg_sequential *s);
tg_status tg_sequential_add_tanh(tg_sequential *s);
tg_status tg_sequential_add_flatten(tg_sequential *s);
tg_status tg_sequential_add_max_pool2d(tg_sequential *s, tg_pool2d_opts opts);
tg_status tg_sequential_add_avg_pool2d(tg_sequential *s, tg_pool2d_opts opts);
/* Any parameterless function of one tensor (ctx passed through). */
typedef tg_tensor *(*tg_module_fn)(tg_tensor *x, void *ctx);
tg_status tg_sequential_add_fn(tg_sequential *s, tg_module_fn fn, void *ctx);
/* Runs the layers in order (tape-owned result; NULL + the first error, naming the layer). */
tg_tensor *tg_sequential_forward(const tg_sequential *s, tg_tensor *x);

/* ---- optimizers -------------------------------------------------------- */
/* PyTorch 1.13 update rules (single-tensor path), applied to every parameter of
 * the list; state lives in blocks with the list's layout (optimizer-owned).
 * A parameter whose requires_grad is false (tg_tensor_set_requires_grad(w, false),
 * a frozen layer) is skipped entirely, as PyTorch skips a parameter whose grad is
 * None: no update, no weight decay, no momentum or Adam state change, and its own
 * step count (Adam's bias correction) does not advance. */

typedef enum { TG_OPTIM_SGD = 0, TG_OPTIM_ADAM, TG_OPTIM_ADAMW } tg_optim_kind;

typedef struct {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
} tg_sgd_opts;

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad;
} tg_adam_opts;

/* PyTorch's defaults: Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0; AdamW the same with wd 1e-2. */
tg_adam_opts tg_adam_defaults(void);
tg_adam_opts tg_adamw_defaults(void);

#define TG_OPTIM_MAX_GROUPS 16

/* One parameter group, as an entry of PyTorch's optimizer.param_groups: its own learning
 * rate, weight decay, SGD momentum and Adam betas (dampening, nesterov, eps and amsgrad are
 * the optimizer's). Group 0 holds the constructor's options and every parameter not moved
 * to another group. */
typedef struct {
    double lr;                    /* current learning rate (schedulers write it) */
    double initial_lr;            /* lr when the group was made: the schedulers' base lr */
    double weight_decay;
    double momentum;              /* SGD */
    double beta1, beta2;          /* Adam, AdamW */
} tg_param_group;

typedef struct tg_optimizer {
    tg_optim_kind kind;
    tg_param_list *params;
    int n_groups;                 /* 1 + groups added with tg_optimizer_add_group */
    tg_param_group groups[TG_OPTIM_MAX_GROUPS]; /* groups[0].lr: the learning rate of a one-group optimizer */
    double dampening;
    bool nesterov;
    double eps;
    bool amsgrad;
    int64_t step_count;           /* completed tg_optimizer_step calls */
    int64_t numel;                /* block size the state was made for */
    int n_entries;                /* list->count the per-entry arrays were made for */
    int *group_of;                /* per list entry: its group (buffers: 0, unused) */
    int64_t *frozen_steps;        /* per list entry: steps it was skipped (its PyTorch state["step"] is
                                     step_count - frozen_steps) */
    float *buf;                   /* SGD momentum_buffer / Adam exp_avg; NULL before the first step */
    float *sq;                    /* Adam exp_avg_sq */
    float *max_sq;                /* Adam max_exp_avg_sq (amsgrad) */
} tg_optimizer;

/* New optimizers over every parameter in list (register all parameters first), in one group.
 * NULL on bad options. */
tg_optimizer *tg_sgd_new(tg_param_list *list, tg_sgd_opts opts);
tg_optimizer *tg_adam_new(tg_param_list *list, tg_adam_opts opts);
tg_optimizer *tg_adamw_new(tg_param_list *list, tg_adam_opts opts);
/* The options a new group starts from: a copy of group 0's (as PyTorch fills a group's
 * missing keys from the optimizer's defaults). Change what differs, then tg_optimizer_add_group. */
tg_param_group tg_optimizer_group_defaults(const tg_optimizer *opt);
/* Moves params (n parameters of opt's list, all still in group 0) into a new group with g's
 * options; g.lr also becomes the group's initial_lr. As PyTorch's
 *   SGD([{"params": rest}, {"params": head, "lr": 0.1}], lr=0.01)
 * Returns the group's index, or -1 and an error (a tensor not in the list, a buffer, a
 * parameter already in another group, bad options, more than TG_OPTIM_MAX_GROUPS groups).
 * Make the groups before the scheduler and before loading a checkpoint into opt. */
int tg_optimizer_add_group(tg_optimizer *opt, tg_tensor *const *params, int n, tg_param_group g);
/* One update from the gradients in the list's grad block (parameters with requires_grad false skipped). */
tg_status tg_optimizer_step(tg_optimizer *opt);
void tg_optimizer_zero_grad(tg_optimizer *opt);
void tg_optimizer_free(tg_optimizer *opt);

/* ---- gradient clipping (torch.nn.utils) -------------------------------- */

/* clip_grad_norm_: the 2-norm of all parameter gradients of list taken together (parameters
 * with requires_grad false left out), computed in double; if max_norm < total, every gradient
 * is multiplied by max_norm / (total + 1e-6) (PyTorch's formula, so a clipped norm is a little
 * below max_norm). Returns the total norm before clipping (NaN or Inf if a gradient is not
 * finite: the gradients are then scaled by NaN or 0 as PyTorch's error_if_nonfinite=False does),
 * or -1 and an error if list is NULL or max_norm is negative or NaN. */
double tg_clip_grad_norm(tg_param_list *list, double max_norm);
/* clip_grad_value_: clamps every parameter gradient into [-clip_value, clip_value]. */
tg_status tg_clip_grad_value(tg_param_list *list, double clip_value);

/* ---- learning-rate schedules ------------------------------------------ */
/* As torch.optim.lr_scheduler: tg_lr_sched_init_* builds a schedule (the struct is the
 * caller's) and sets every group's lr = its initial_lr * f(0); each tg_lr_sched_step()
 * (call it after tg_optimizer_step) advances k and sets initial_lr * f(k) in every group. */

typedef enum {
    TG_SCHED_STEP = 0,      /* gamma^floor(k/step_size) */
    TG_SCHED_MULTISTEP,     /* gamma^(number of milestones <= k) */
    TG_SCHED_COSINE,        /* eta_min + (base-eta_min)(1+cos(pi k/T_max))/2 (closed form) */
    TG_SCHED_EXPONENTIAL,   /* gamma^k */
    TG_SCHED_WARMUP_POLY,   /* linear warmup from warmup_factor, then (1-(k-W)/(T-W))^power */
    TG_SCHED_LAMBDA         /* fn(k, ctx) */
} tg_sched_kind;

#define TG_SCHED_MAX_MILESTONES 32

typedef double (*tg_lr_lambda)(int64_t k, void *ctx);

typedef struct tg_lr_sched {
    tg_sched_kind kind;
    tg_optimizer *opt;
    int64_t last_epoch;           /* k: number of tg_lr_sched_step calls */
    double gamma;
    int64_t step_size;
    int64_t milestones[TG_SCHED_MAX_MILESTONES];
    int n_milestones;
    int64_t t_max;
    double eta_min;
    int64_t warmup_steps, total_steps;
    double warmup_factor, power;
    tg_lr_lambda fn;
    void *fn_ctx;
} tg_lr_sched;

/* Constructors: each sets the groups' lr for k = 0; TG_OK or an error naming the bad argument. */
tg_status tg_lr_sched_init_step_lr(tg_lr_sched *s, tg_optimizer *opt, int64_t step_size, double gamma);
tg_status tg_lr_sched_init_multistep(tg_lr_sched *s, tg_optimizer *opt, const int64_t *milestones, int n,
                                     double gamma);
tg_status tg_lr_sched_init_cosine(tg_lr_sched *s, tg_optimizer *opt, int64_t t_max, double eta_min);
tg_status tg_lr_sched_init_exponential(tg_lr_sched *s, tg_optimizer *opt, double gamma);
/* The reference UNet schedule (create_lr_scheduler): warmup_steps = warmup epochs * steps per epoch
 * (0: no warmup), total_steps = epochs * steps per epoch, warmup_factor 1e-3, power 0.9.
 * Past total_steps the factor is 0 (PyTorch would raise a complex-number error). */
tg_status tg_lr_sched_init_warmup_poly(tg_lr_sched *s, tg_optimizer *opt, int64_t warmup_steps,
                                       int64_t total_steps, double warmup_factor, double power);
tg_status tg_lr_sched_init_lambda(tg_lr_sched *s, tg_optimizer *opt, tg_lr_lambda fn, void *ctx);
/* The factor f(k) (lr = initial_lr * f(k); the cosine's is group 0's). */
double tg_lr_sched_factor(const tg_lr_sched *s, int64_t k);
/* Stepping: k += 1; every group's lr = its initial_lr * f(k). Returns group 0's new lr. */
double tg_lr_sched_step(tg_lr_sched *s);

/* ---- safetensors checkpoints ------------------------------------------ */

/* A string -> string map (safetensors "__metadata__"); strings are copied and owned by the map. */
typedef struct {
    int count, cap;
    char **keys, **values;
} tg_meta;

tg_status tg_meta_set(tg_meta *m, const char *key, const char *value);
const char *tg_meta_get(const tg_meta *m, const char *key); /* NULL if absent */
void tg_meta_clear(tg_meta *m);                              /* frees the strings; m reusable */

#define TG_CKPT_MAX_RNGS 4

/* What goes into a checkpoint beside the model's state_dict. Reserved tensor-name prefixes:
 * "optim." (optimizer: "optim.<param>.momentum_buffer|exp_avg|exp_avg_sq|max_exp_avg_sq",
 * "optim.step", "optim.lr"), "sched." ("sched.last_epoch"), "rng." ("rng.<name>.state|has_spare|spare"). */
typedef struct {
    tg_optimizer *optim;                    /* optional */
    tg_lr_sched *sched;                     /* optional */
    tg_rng *rngs[TG_CKPT_MAX_RNGS];         /* optional, with names */
    const char *rng_names[TG_CKPT_MAX_RNGS];
    int n_rngs;
    tg_meta *meta;                          /* save: written as __metadata__; load: filled (may be NULL) */
    bool non_strict;                        /* load: as load_state_dict(strict=False): missing model tensors
                                               keep their values, unexpected ones are ignored (both still
                                               listed in the report). Default (false): strict, a mismatch is
                                               an error naming every missing and unexpected tensor. */
} tg_ckpt_opts;

typedef struct {
    int n_loaded, n_missing, n_unexpected;
    char missing[512], unexpected[512];     /* comma-separated names, truncated with "..." */
} tg_ckpt_report;

/* Writes the list's parameters and buffers (state_dict names, F32/I64) plus opts' training state.
 * Atomic: a temp file in the same directory, checked writes, fsync, rename, fsync of the directory;
 * on error the previous file is untouched. opts may be NULL (model only). */
tg_status tg_checkpoint_save(const char *path, const tg_param_list *list, const tg_ckpt_opts *opts);
/* Validates the whole file (header length, JSON, dtypes, shapes, offsets) and every match before
 * copying anything; a mismatch names the tensor. Strict by default, as PyTorch's load_state_dict:
 * opts NULL or zero-initialised makes any missing or unexpected model tensor an error whose message
 * lists the missing and unexpected names and the shapes that differ; nothing is copied then.
 * opts->non_strict: missing tensors keep their values, unexpected ones are ignored; both are
 * listed in report (may be NULL), as PyTorch's missing_keys / unexpected_keys. */
tg_status tg_checkpoint_load(const char *path, tg_param_list *list, const tg_ckpt_opts *opts,
                             tg_ckpt_report *report);

#endif
