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
/* Sets list->training (BatchNorm uses batch statistics when true). */
void tg_param_list_train(tg_param_list *list, bool training);
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

/* Fills t with U(-bound, bound) from rng (NULL: global). */
void tg_init_uniform(tg_tensor *t, float bound, tg_rng *rng);

/* ---- optimizers -------------------------------------------------------- */
/* PyTorch 1.13 update rules (single-tensor path), applied to every parameter of
 * the list; state lives in blocks with the list's layout (optimizer-owned). */

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

typedef struct tg_optimizer {
    tg_optim_kind kind;
    tg_param_list *params;
    double lr;                    /* current learning rate (schedulers write it) */
    double initial_lr;            /* lr at construction (schedulers' base lr) */
    double momentum, dampening, weight_decay;
    bool nesterov;
    double beta1, beta2, eps;
    bool amsgrad;
    int64_t step_count;           /* completed steps (PyTorch's state["step"]) */
    int64_t numel;                /* block size the state was made for */
    float *buf;                   /* SGD momentum_buffer / Adam exp_avg; NULL before the first step */
    float *sq;                    /* Adam exp_avg_sq */
    float *max_sq;                /* Adam max_exp_avg_sq (amsgrad) */
} tg_optimizer;

/* New optimizers over every parameter in list (register all parameters first). NULL on bad options. */
tg_optimizer *tg_sgd_new(tg_param_list *list, tg_sgd_opts opts);
tg_optimizer *tg_adam_new(tg_param_list *list, tg_adam_opts opts);
tg_optimizer *tg_adamw_new(tg_param_list *list, tg_adam_opts opts);
/* One update from the gradients in the list's grad block. */
tg_status tg_optimizer_step(tg_optimizer *opt);
void tg_optimizer_zero_grad(tg_optimizer *opt);
void tg_optimizer_free(tg_optimizer *opt);

/* ---- learning-rate schedules ------------------------------------------ */
/* As torch.optim.lr_scheduler: construction sets opt->lr = base*f(0); each
 * tg_lr_sched_step() (call it after tg_optimizer_step) advances k and sets base*f(k). */

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
    double base_lr;
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

/* Each sets opt->lr for k = 0; TG_OK or an error naming the bad argument. */
tg_status tg_sched_step_lr(tg_lr_sched *s, tg_optimizer *opt, int64_t step_size, double gamma);
tg_status tg_sched_multistep(tg_lr_sched *s, tg_optimizer *opt, const int64_t *milestones, int n, double gamma);
tg_status tg_sched_cosine(tg_lr_sched *s, tg_optimizer *opt, int64_t t_max, double eta_min);
tg_status tg_sched_exponential(tg_lr_sched *s, tg_optimizer *opt, double gamma);
/* The reference UNet schedule (create_lr_scheduler): warmup_steps = warmup epochs * steps per epoch
 * (0: no warmup), total_steps = epochs * steps per epoch, warmup_factor 1e-3, power 0.9.
 * Past total_steps the factor is 0 (PyTorch would raise a complex-number error). */
tg_status tg_sched_warmup_poly(tg_lr_sched *s, tg_optimizer *opt, int64_t warmup_steps, int64_t total_steps,
                               double warmup_factor, double power);
tg_status tg_sched_lambda(tg_lr_sched *s, tg_optimizer *opt, tg_lr_lambda fn, void *ctx);
/* The factor f(k) (lr = base_lr * f(k)). */
double tg_lr_sched_factor(const tg_lr_sched *s, int64_t k);
/* k += 1; opt->lr = base_lr * f(k). Returns the new lr. */
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
    bool strict;                            /* load: missing or unexpected model tensors are errors */
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
 * copying anything; a mismatch names the tensor. Non-strict: missing tensors keep their values,
 * unexpected ones are ignored; both are listed in report (may be NULL). */
tg_status tg_checkpoint_load(const char *path, tg_param_list *list, const tg_ckpt_opts *opts,
                             tg_ckpt_report *report);

#endif
