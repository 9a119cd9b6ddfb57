/* losslab: study the forward values and gradients of tapegrad's loss family.
 *
 * One table (table.c) describes every loss: its tensor arguments, the options it
 * takes with their defaults, how to show its intermediate probabilities and how
 * to call it. --list, validation (case.c) and dispatch all read that table.
 *
 * A case comes from a JSON object (the --jsonl line, or the CLI arguments turned
 * into one): {"id": ..., "loss": NAME, <tensor args>, "options": {...}}.
 * Ownership: an ll_case owns its tensors (ll_case_free); an ll_result owns its
 * tensors (ll_result_free); ll_buf owns its text (ll_buf_free).
 */
#ifndef LOSSLAB_H
#define LOSSLAB_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"
#include "ops/loss.h"
#include "ops/loss_extra.h"
#include "ops/tensor_ops.h"

#define LL_MAX_ARGS 4
#define LL_MAX_OPTS 6
#define LL_ERR_LEN 512

/* ---- the loss table ----------------------------------------------------- */

typedef enum {
    LL_ARG_GRAD,          /* float input: receives a gradient */
    LL_ARG_FLOAT,         /* float target: no gradient */
    LL_ARG_INDEX,         /* int64 class indices / lengths: integral JSON numbers */
    LL_ARG_CLASS_OR_PROB  /* cross_entropy target: indices, or probabilities of the input's shape */
} ll_arg_kind;

typedef struct {
    const char *name; /* torch.nn.functional's parameter name */
    ll_arg_kind kind;
} ll_arg;

typedef enum {
    LL_OPT_WEIGHT, LL_OPT_POS_WEIGHT, LL_OPT_IGNORE_INDEX, LL_OPT_REDUCTION, LL_OPT_LABEL_SMOOTHING,
    LL_OPT_BETA, LL_OPT_DELTA, LL_OPT_MARGIN, LL_OPT_P, LL_OPT_EPS, LL_OPT_SWAP, LL_OPT_LOG_TARGET,
    LL_OPT_LOG_INPUT, LL_OPT_FULL, LL_OPT_ALPHA, LL_OPT_GAMMA, LL_OPT_BLANK, LL_OPT_ZERO_INFINITY,
    LL_OPT_COUNT
} ll_opt_id;

typedef enum { LL_VAL_TENSOR, LL_VAL_INT, LL_VAL_FLOAT, LL_VAL_BOOL, LL_VAL_REDUCTION } ll_val_kind;

typedef struct {
    const char *name; /* PyTorch's keyword */
    ll_val_kind kind;
} ll_opt_info;

extern const ll_opt_info ll_opt_infos[LL_OPT_COUNT];

typedef struct {
    ll_opt_id id;
    const char *dflt; /* default as text ("None": absent); NULL ends the list */
} ll_opt_spec;

/* Option values of one case (defaults already applied). */
typedef struct {
    bool set[LL_OPT_COUNT];           /* false: None */
    double num[LL_OPT_COUNT];         /* INT, FLOAT, BOOL (0/1) */
    tg_tensor *tensor[LL_OPT_COUNT];  /* TENSOR options, caller-owned by the case */
    tg_reduction reduction;
} ll_opts;

typedef enum { LL_PROBS_NONE, LL_PROBS_SIGMOID, LL_PROBS_SOFTMAX, LL_PROBS_DICE } ll_probs;

/* Calls the loss on args (in the entry's order) with reduction r (ignored by losses without one). */
typedef tg_tensor *(*ll_call_fn)(tg_tensor *const *args, const ll_opts *o, tg_reduction r);

typedef struct {
    const char *name;
    const char *summary;
    ll_arg args[LL_MAX_ARGS + 1];        /* ends with a NULL name */
    ll_opt_spec opts[LL_MAX_OPTS + 1];   /* ends with a NULL dflt */
    ll_probs probs;
    ll_call_fn call;
} ll_loss;

extern const ll_loss ll_losses[];
extern const int ll_n_losses;

const ll_loss *ll_find_loss(const char *name);
int ll_n_args(const ll_loss *l);
bool ll_takes_opt(const ll_loss *l, ll_opt_id id);
bool ll_is_any_arg_name(const char *name);   /* a tensor argument of some loss */
int ll_find_opt(const char *name);           /* ll_opt_id or -1 */
const char *ll_reduction_name(tg_reduction r);

/* ---- a case ------------------------------------------------------------- */

typedef struct {
    const ll_loss *loss;
    tg_tensor *args[LL_MAX_ARGS]; /* caller-owned by the case */
    bool prob_target;             /* cross_entropy: target given as probabilities */
    ll_opts opts;
} ll_case;

/* Builds a case from a JSON object; false and a message naming the argument in err. */
bool ll_case_from_json(const cJSON *obj, ll_case *c, char *err, size_t n);
void ll_case_free(ll_case *c);

typedef struct {
    tg_tensor *loss;                  /* with the case's reduction */
    tg_tensor *per_elem;              /* reduction 'none' (NULL unless asked and the loss has one) */
    tg_tensor *grads[LL_MAX_ARGS];    /* d sum(loss) / d arg, NULL for arguments without gradient */
    tg_tensor *probs[2];              /* display: sigmoid/softmax and log_softmax, or NULL */
    const char *probs_name[2];
} ll_result;

/* Runs the case; false and the library's message in err on failure. */
bool ll_run(const ll_case *c, bool want_details, ll_result *r, char *err, size_t n);
void ll_result_free(ll_result *r);

/* ---- JSON in and out ---------------------------------------------------- */

/* Parses JSON text that may hold bare NaN, Infinity, -Infinity (outside strings):
 * they become the strings "NaN", "Infinity", "-Infinity". NULL if malformed. */
cJSON *ll_json_parse(const char *text);
/* A JSON number or one of the non-finite strings. */
bool ll_json_number(const cJSON *v, double *out);

typedef struct {
    char *s;
    size_t len, cap;
} ll_buf;

void ll_buf_printf(ll_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ll_buf_num(ll_buf *b, double v);                /* %.9g, NaN, Infinity, -Infinity */
void ll_buf_str(ll_buf *b, const char *s);           /* quoted and escaped */
void ll_buf_tensor_json(ll_buf *b, const tg_tensor *t); /* nested arrays (a number for 0-D) */
void ll_buf_free(ll_buf *b);

/* ---- cases in, results out (jsonl.c) ------------------------------------ */

/* Builds and runs one case, appending its result fields to b; false and a message in err. */
bool ll_run_case(const cJSON *obj, bool details, ll_buf *b, ll_case *c, ll_result *r, char *err, size_t n);
/* One --jsonl line -> one result line ("{\"id\": ..., ...}\n") appended to out. The id is echoed
 * as the line wrote it (12345678901234567890 stays that text, not 1.2345678901234567e+19). */
void ll_jsonl_line(const char *line, ll_buf *out);
/* The text of the first top-level member `key` of the JSON object in text, as written; false if
 * absent or if the text is not an object. */
bool ll_json_raw_member(const char *text, const char *key, const char **start, size_t *len);

/* ---- output ------------------------------------------------------------- */

void ll_print_breakdown(FILE *out, const ll_case *c, const ll_result *r);
void ll_json_result(ll_buf *b, const ll_case *c, const ll_result *r, bool details);
void ll_print_list(FILE *out);

#endif
