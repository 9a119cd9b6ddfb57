/* losslab: run any tapegrad loss on tensors given as JSON and show value and gradients.
 * losslab_losses.c holds the table of losses (PyTorch names, tensor arguments, options
 * with defaults) and runs one case; losslab.c is the command line (single case, --json,
 * --list, --jsonl batches) and the printing. */
#ifndef LOSSLAB_H
#define LOSSLAB_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "tapegrad.h"

#define LL_MAX_ARGS 4

typedef struct {
    const char *name;                /* torch.nn.functional name (dice_loss: tapegrad's own) */
    const char *args[LL_MAX_ARGS];   /* tensor arguments in call order (NULL-terminated) */
    unsigned int_args;               /* bit i: args[i] holds integers (class indices, lengths) */
    const char *options;             /* "name=default ..." as PyTorch spells them */
    const char *probs;               /* intermediate probabilities shown: "softmax", "sigmoid" or NULL */
} ll_loss;

/* The result of one case; tensors are caller-owned copies (free with ll_result_free). */
typedef struct {
    const ll_loss *loss;
    int n_args;
    tg_tensor *args[LL_MAX_ARGS];    /* as parsed */
    tg_tensor *value;                /* the loss as returned (reduced or not) */
    tg_tensor *per_element;          /* the same loss with reduction 'none' (NULL if it has none) */
    tg_tensor *grads[LL_MAX_ARGS];   /* d sum(value) / d args[i] (NULL for integer args) */
} ll_result;

extern const ll_loss LL_LOSSES[];
extern const int LL_N_LOSSES;

const ll_loss *ll_find(const char *name);
/* Runs `case_obj` ({"loss": NAME, <tensor args>, "options": {...}}) or, when name is not NULL,
 * a case without "loss". Returns 0 and fills r, or -1 with a message in err. */
int ll_run_case(const cJSON *case_obj, const char *name, ll_result *r, char *err, size_t n_err);
void ll_result_free(ll_result *r);

/* A nested JSON array (or number) as a caller-owned tensor; as_int requires integral values. */
tg_tensor *ll_json_tensor(const cJSON *v, bool as_int, const char *what, char *err, size_t n_err);
/* Writes t as a nested JSON array (a number for 0-D), NaN/Infinity/-Infinity bare. */
void ll_write_json_tensor(FILE *out, const tg_tensor *t);

#endif
