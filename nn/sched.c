/* Learning-rate schedules as torch.optim.lr_scheduler, in closed form: every group's
 * lr(k) = its initial_lr * f(k), k = number of tg_lr_sched_step() calls so far. */
#include "nn.h"

#include <math.h>
#include <string.h>

static tg_status sched_begin(tg_lr_sched *s, tg_optimizer *opt, tg_sched_kind kind, const char *who)
{
    if (!s || !opt) return tg_error(TG_ERR_ARG, "%s: %s is NULL", who, s ? "optimizer" : "scheduler");
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->opt = opt;
    return TG_OK;
}

/* base_lr * f(k); the cosine's closed form directly, without dividing by base_lr. */
static double lr_at(const tg_lr_sched *s, int64_t k, double base_lr)
{
    if (s->kind == TG_SCHED_COSINE)
        return s->eta_min + (base_lr - s->eta_min) * (1.0 + cos(3.14159265358979323846 * (double)k / (double)s->t_max)) / 2.0;
    return base_lr * tg_lr_sched_factor(s, k);
}

/* Every group's lr for step k, each from its own initial lr (as PyTorch's base_lrs). */
static void set_lrs(tg_lr_sched *s, int64_t k)
{
    tg_optimizer *o = s->opt;
    for (int g = 0; g < o->n_groups; g++) o->groups[g].lr = lr_at(s, k, o->groups[g].initial_lr);
}

static tg_status sched_start(tg_lr_sched *s)
{
    s->last_epoch = 0;
    set_lrs(s, 0);
    return TG_OK;
}

tg_status tg_lr_sched_init_step_lr(tg_lr_sched *s, tg_optimizer *opt, int64_t step_size, double gamma)
{
    const char *who = "tg_lr_sched_init_step_lr";
    if (step_size <= 0) return tg_error(TG_ERR_ARG, "%s: step_size must be positive, got %lld", who, (long long)step_size);
    if (!isfinite(gamma)) return tg_error(TG_ERR_ARG, "%s: gamma must be finite", who);
    tg_status st = sched_begin(s, opt, TG_SCHED_STEP, who);
    if (st) return st;
    s->step_size = step_size;
    s->gamma = gamma;
    return sched_start(s);
}

tg_status tg_lr_sched_init_multistep(tg_lr_sched *s, tg_optimizer *opt, const int64_t *milestones, int n, double gamma)
{
    const char *who = "tg_lr_sched_init_multistep";
    if (n < 0 || n > TG_SCHED_MAX_MILESTONES || (n > 0 && !milestones))
        return tg_error(TG_ERR_ARG, "%s: %d milestones given (0 to %d supported)", who, n, TG_SCHED_MAX_MILESTONES);
    for (int i = 1; i < n; i++)
        if (milestones[i] < milestones[i - 1])
            return tg_error(TG_ERR_ARG, "%s: milestones must be sorted (milestone %d = %lld after %lld)", who, i,
                            (long long)milestones[i], (long long)milestones[i - 1]);
    if (!isfinite(gamma)) return tg_error(TG_ERR_ARG, "%s: gamma must be finite", who);
    tg_status st = sched_begin(s, opt, TG_SCHED_MULTISTEP, who);
    if (st) return st;
    for (int i = 0; i < n; i++) s->milestones[i] = milestones[i];
    s->n_milestones = n;
    s->gamma = gamma;
    return sched_start(s);
}

tg_status tg_lr_sched_init_cosine(tg_lr_sched *s, tg_optimizer *opt, int64_t t_max, double eta_min)
{
    const char *who = "tg_lr_sched_init_cosine";
    if (t_max <= 0) return tg_error(TG_ERR_ARG, "%s: T_max must be positive, got %lld", who, (long long)t_max);
    if (!isfinite(eta_min)) return tg_error(TG_ERR_ARG, "%s: eta_min must be finite", who);
    tg_status st = sched_begin(s, opt, TG_SCHED_COSINE, who);
    if (st) return st;
    s->t_max = t_max;
    s->eta_min = eta_min;
    return sched_start(s);
}

tg_status tg_lr_sched_init_exponential(tg_lr_sched *s, tg_optimizer *opt, double gamma)
{
    const char *who = "tg_lr_sched_init_exponential";
    if (!isfinite(gamma)) return tg_error(TG_ERR_ARG, "%s: gamma must be finite", who);
    tg_status st = sched_begin(s, opt, TG_SCHED_EXPONENTIAL, who);
    if (st) return st;
    s->gamma = gamma;
    return sched_start(s);
}

tg_status tg_lr_sched_init_warmup_poly(tg_lr_sched *s, tg_optimizer *opt, int64_t warmup_steps, int64_t total_steps,
                               double warmup_factor, double power)
{
    const char *who = "tg_lr_sched_init_warmup_poly";
    if (warmup_steps < 0 || total_steps <= warmup_steps)
        return tg_error(TG_ERR_ARG, "%s: need 0 <= warmup_steps (%lld) < total_steps (%lld)", who,
                        (long long)warmup_steps, (long long)total_steps);
    if (!isfinite(warmup_factor) || !(power > 0.0) || !isfinite(power))
        return tg_error(TG_ERR_ARG, "%s: invalid warmup_factor %g or power %g", who, warmup_factor, power);
    tg_status st = sched_begin(s, opt, TG_SCHED_WARMUP_POLY, who);
    if (st) return st;
    s->warmup_steps = warmup_steps;
    s->total_steps = total_steps;
    s->warmup_factor = warmup_factor;
    s->power = power;
    return sched_start(s);
}

tg_status tg_lr_sched_init_lambda(tg_lr_sched *s, tg_optimizer *opt, tg_lr_lambda fn, void *ctx)
{
    const char *who = "tg_lr_sched_init_lambda";
    if (!fn) return tg_error(TG_ERR_ARG, "%s: lambda is NULL", who);
    tg_status st = sched_begin(s, opt, TG_SCHED_LAMBDA, who);
    if (st) return st;
    s->fn = fn;
    s->fn_ctx = ctx;
    return sched_start(s);
}

double tg_lr_sched_factor(const tg_lr_sched *s, int64_t k)
{
    if (!s) return NAN;
    switch (s->kind) {
    case TG_SCHED_STEP: return pow(s->gamma, (double)(k / s->step_size));
    case TG_SCHED_MULTISTEP: {
        int passed = 0; /* bisect_right(milestones, k) */
        while (passed < s->n_milestones && s->milestones[passed] <= k) passed++;
        return pow(s->gamma, passed);
    }
    case TG_SCHED_COSINE: {
        const double pi = 3.14159265358979323846;
        const double base = s->opt ? s->opt->groups[0].initial_lr : 0.0;
        double lr = s->eta_min + (base - s->eta_min) * (1.0 + cos(pi * (double)k / (double)s->t_max)) / 2.0;
        return base != 0.0 ? lr / base : 0.0;
    }
    case TG_SCHED_EXPONENTIAL: return pow(s->gamma, (double)k);
    case TG_SCHED_WARMUP_POLY: {
        /* create_lr_scheduler: x <= W warms up (so f(W) = 1), then the poly decay. */
        const int64_t w = s->warmup_steps;
        if (w > 0 && k <= w) {
            double alpha = (double)k / (double)w;
            return s->warmup_factor * (1.0 - alpha) + alpha;
        }
        double r = 1.0 - (double)(k - w) / (double)(s->total_steps - w);
        return r > 0.0 ? pow(r, s->power) : 0.0;
    }
    case TG_SCHED_LAMBDA: return s->fn(k, s->fn_ctx);
    }
    return NAN;
}

double tg_lr_sched_step(tg_lr_sched *s)
{
    if (!s || !s->opt) {
        tg_error(TG_ERR_ARG, "tg_lr_sched_step: scheduler is NULL or not initialised");
        return NAN;
    }
    s->last_epoch++;
    set_lrs(s, s->last_epoch);
    return s->opt->groups[0].lr;
}
