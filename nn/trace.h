/* Tensor tracing: name tensors during a step's forward pass, then write their values, their
 * gradients ("grad.<name>") and every parameter gradient ("grad.<state_dict name>") to one
 * safetensors file, the way PyTorch forward hooks with retain_grad() would capture them.
 *
 *   tg_trace_begin("step.safetensors");
 *   tg_tensor *h = tg_trace_tensor("hidden", tg_relu(tg_linear_layer_forward(&l1, x)));
 *   ...  loss = ...;  tg_backward(loss);
 *   tg_trace_end(params);                       (before tg_tape_clear and the optimizer step)
 *
 * Off (no tg_trace_begin on this thread), tg_trace_tensor is one branch and returns t: library
 * code such as tg_unet_forward names its block outputs unconditionally. A trace belongs to the
 * thread that began it (the tape is per thread). The trace keeps pointers, not copies: values
 * and gradients are read when tg_trace_end writes them, so traced tensors must still be alive
 * (tape tensors: no tg_tape_clear in between; a released one is reported by name). The tape keeps
 * every gradient until tg_tape_clear, so nothing extra is retained. Ownership: the trace's
 * bookkeeping is tapegrad's (freed by tg_trace_end / tg_trace_abort); tensors stay their owners'.
 */
#ifndef TG_TRACE_H
#define TG_TRACE_H

#include "nn.h"

/* Starts a trace on this thread that tg_trace_end will write to path. TG_ERR_STATE if one is
 * already active, TG_ERR_ARG on an empty path. */
tg_status tg_trace_begin(const char *path);
/* True between tg_trace_begin and tg_trace_end / tg_trace_abort on this thread. */
bool tg_trace_active(void);

extern _Thread_local bool tg_trace_on_; /* internal: read by the inline below */
tg_tensor *tg_trace_record_(const char *name, tg_tensor *t, bool with_grad);

/* Names t for the active trace (its value, and "grad.<name>" if a gradient reaches it) and
 * returns t unchanged; NULL passes through. Tracing off: returns t, nothing else. */
static inline tg_tensor *tg_trace_tensor(const char *name, tg_tensor *t)
{
    return tg_trace_on_ ? tg_trace_record_(name, t, true) : t;
}
/* Same, value only (no "grad.<name>"): inputs, targets, the loss. */
static inline const tg_tensor *tg_trace_value(const char *name, const tg_tensor *t)
{
    return tg_trace_on_ ? tg_trace_record_(name, (tg_tensor *)t, false) : t;
}

/* Writes the trace and ends it: each named tensor's value under its name (F32 or I64, its
 * shape), then "grad.<name>" for those whose gradient exists, then "grad.<name>" for every
 * parameter of params (may be NULL) with a gradient, in state_dict order; meta (may be NULL)
 * as __metadata__. The file is written atomically. Errors (the trace ends either way): a
 * name traced twice or clashing with another entry, a tensor released by tg_tape_clear, a name
 * too long, a write failure; each names the tensor or file. TG_ERR_STATE if no trace is active. */
tg_status tg_trace_end(const tg_param_list *params, const tg_meta *meta);
/* Ends the active trace (if any) without writing anything. */
void tg_trace_abort(void);

#endif
