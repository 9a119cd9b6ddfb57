/* losslab plot: the CSV's numbers (BCE-with-logits and 2-logit cross-entropy have the same loss and
 * gradient in z = z1 - z0; known values at z = 0 with pos_weight, label smoothing and focal
 * options), the PNG (a valid PNG of 1200x480), and clear errors on bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_support.h"

#define LOSSLAB TG_BIN_DIR "/losslab"

static char tmpdir[256], csv[512], png[512];
static char output[1 << 14];

static void setup(void)
{
    tgt_make_tmpdir(tmpdir, sizeof tmpdir, "losslab_plot");
    snprintf(csv, sizeof csv, "%s/curves.csv", tmpdir);
    snprintf(png, sizeof png, "%s/curves.png", tmpdir);
}
static void teardown(void) { tgt_remove_tree(tmpdir); }

/* losslab plot with these arguments (printf-style), output captured in `output`; its exit code. */
#define run(...) tgt_run_capturef(output, sizeof output, LOSSLAB " plot " __VA_ARGS__)

#define MAX_ROWS 1024
#define MAX_COLS 16
typedef struct {
    char names[MAX_COLS][96];
    int cols, rows;
    double v[MAX_ROWS][MAX_COLS];
} table;

static void read_csv(const char *path, table *t)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no %s", path);
    char line[4096];
    cr_assert_not_null(fgets(line, sizeof line, f));
    t->cols = 0;
    for (char *save = NULL, *tok = strtok_r(line, ",\n", &save); tok && t->cols < MAX_COLS; tok = strtok_r(NULL, ",\n", &save))
        snprintf(t->names[t->cols++], sizeof t->names[0], "%s", tok);
    t->rows = 0;
    while (fgets(line, sizeof line, f) && t->rows < MAX_ROWS) {
        char *p = line;
        for (int c = 0; c < t->cols; c++) {
            char *end;
            t->v[t->rows][c] = strtod(p, &end);
            cr_assert_neq(end, p, "row %d column %d of %s is not a number", t->rows + 1, c, path);
            p = end + 1;
        }
        t->rows++;
    }
    fclose(f);
}

static int col(const table *t, const char *name)
{
    for (int c = 0; c < t->cols; c++)
        if (!strcmp(t->names[c], name)) return c;
    cr_assert_fail("no column %s", name);
    return -1;
}

Test(losslab_plot, bce_and_two_logit_ce_coincide_and_the_png_is_written, .init = setup, .fini = teardown)
{
    int rc = run("--losses binary_cross_entropy_with_logits,cross_entropy,sigmoid_focal_loss --range -8:8 --target 1 "
                 "--out %s --csv %s", png, csv);
    const bool no_plplot = strstr(output, "built without PLplot") != NULL;
    cr_assert(rc == 0 || no_plplot, "losslab plot failed:\n%s", output);
    table *t = malloc(sizeof *t);
    read_csv(csv, t);
    cr_assert_eq(t->cols, 7);
    cr_expect_str_eq(t->names[0], "z");
    cr_assert_eq(t->rows, 401);
    const int bl = col(t, "binary_cross_entropy_with_logits.loss"), bg = col(t, "binary_cross_entropy_with_logits.dloss_dz");
    const int cl = col(t, "cross_entropy.loss"), cg = col(t, "cross_entropy.dloss_dz");
    const int fl = col(t, "sigmoid_focal_loss.loss"), fg = col(t, "sigmoid_focal_loss.dloss_dz");
    for (int i = 0; i < t->rows; i++) {
        const double z = t->v[i][0], s = 1 / (1 + exp(-z));
        cr_assert_float_eq(z, -8 + 16.0 * i / 400, 1e-6);
        /* the article's point: the same gradient in z1 - z0, sigmoid(z) - 1 */
        cr_assert_float_eq(t->v[i][cg], t->v[i][bg], 1e-6, "z %g: CE %g vs BCE %g", z, t->v[i][cg], t->v[i][bg]);
        cr_assert_float_eq(t->v[i][bg], s - 1, 1e-6, "z %g", z);
        cr_assert_float_eq(t->v[i][cl], t->v[i][bl], 1e-5 * (1 + t->v[i][bl]), "z %g", z);
    }
    /* z = 0: BCE ln 2; focal (alpha 0.25, gamma 2): 0.25 * 0.5^2 * ln 2, and with p = sigmoid(z)
     * d/dz [alpha (1-p)^2 (-log p)] = alpha [-2 p (1-p)^2 (-log p) - (1-p)^3] = 0.25 (-ln 2 / 4 - 1/8) */
    cr_expect_float_eq(t->v[200][0], 0.0, 1e-9);
    cr_expect_float_eq(t->v[200][bl], log(2.0), 1e-6);
    cr_expect_float_eq(t->v[200][fl], 0.25 * 0.25 * log(2.0), 1e-6);
    cr_expect_float_eq(t->v[200][fg], 0.25 * (-0.25 * log(2.0) - 0.125), 1e-6);
    free(t);
    if (no_plplot) return;
    FILE *f = fopen(png, "rb");
    cr_assert_not_null(f, "no %s", png);
    unsigned char h[24];
    cr_assert_eq(fread(h, 1, 24, f), 24u);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fclose(f);
    cr_expect(!memcmp(h, "\x89PNG\r\n\x1a\n", 8) && !memcmp(h + 12, "IHDR", 4), "%s is not a PNG", png);
    const unsigned w = (unsigned)h[16] << 24 | h[17] << 16 | h[18] << 8 | h[19];
    const unsigned ht = (unsigned)h[20] << 24 | h[21] << 16 | h[22] << 8 | h[23];
    cr_expect_eq(w, 1200u);
    cr_expect_eq(ht, 480u);
    cr_expect_gt(size, 10000, "a %ld-byte PNG has no curves", size);
}

Test(losslab_plot, options_reach_the_losses_that_take_them, .init = setup, .fini = teardown)
{
    table *t = malloc(sizeof *t);
    /* pos_weight 3 (BCE only), target 1: at z = 0 loss 3 ln 2, gradient 3 (1/2 - 1) */
    cr_assert_eq(run("--losses binary_cross_entropy_with_logits,cross_entropy --range -1:1 --points 3 --target 1 "
                     "--pos-weight '[3]' --csv %s", csv), 0, "%s", output);
    read_csv(csv, t);
    cr_assert_eq(t->rows, 3);
    cr_expect_float_eq(t->v[1][1], 3 * log(2.0), 1e-6);
    cr_expect_float_eq(t->v[1][2], -1.5, 1e-6);
    cr_expect_float_eq(t->v[1][4], -0.5, 1e-6, "pos_weight is not a cross_entropy option");
    /* a probability target 0.3 and label smoothing 0.1 (CE only): the smoothed target 0.32 */
    cr_assert_eq(run("--losses binary_cross_entropy_with_logits,cross_entropy --range -1:1 --points 3 --target 0.3 "
                     "--label-smoothing 0.1 --csv %s", csv), 0, "%s", output);
    read_csv(csv, t);
    cr_expect_float_eq(t->v[1][2], 0.5 - 0.3, 1e-6);
    cr_expect_float_eq(t->v[1][4], 0.5 - 0.32, 1e-6);
    /* class weights [1, 2] on cross_entropy, target 1: loss and gradient doubled */
    cr_assert_eq(run("--losses cross_entropy --range -1:1 --points 3 --target 1 --weight '[1,2]' --csv %s", csv), 0,
                 "%s", output);
    read_csv(csv, t);
    cr_expect_float_eq(t->v[1][1], 2 * log(2.0), 1e-6);
    cr_expect_float_eq(t->v[1][2], -1.0, 1e-6);
    /* focal gamma 0 and alpha -1 (no weighting) is BCE-with-logits */
    cr_assert_eq(run("--losses sigmoid_focal_loss --range -4:4 --points 5 --target 0 --gamma 0 --alpha -1 --csv %s",
                     csv), 0, "%s", output);
    read_csv(csv, t);
    for (int i = 0; i < 5; i++) {
        const double z = t->v[i][0];
        cr_expect_float_eq(t->v[i][1], log1p(exp(z)), 1e-5, "z %g", z);
        cr_expect_float_eq(t->v[i][2], 1 / (1 + exp(-z)), 1e-6, "z %g", z);
    }
    free(t);
}

Test(losslab_plot, bad_input_fails_clearly, .init = setup, .fini = teardown)
{
    cr_expect_eq(run("--losses no_such_loss --csv %s", csv), 2);
    cr_expect(strstr(output, "unknown loss 'no_such_loss'"), "%s", output);
    cr_expect_eq(run("--losses triplet_margin_loss --csv %s", csv), 2);
    cr_expect(strstr(output, "not a function of one logit"), "%s", output);
    cr_expect_eq(run("--losses binary_cross_entropy_with_logits --gamma 2 --csv %s", csv), 2);
    cr_expect(strstr(output, "no listed loss takes the option 'gamma'"), "%s", output);
    cr_expect_eq(run("--losses cross_entropy --reduction sum --csv %s", csv), 2);
    cr_expect(strstr(output, "reduction 'none'"), "%s", output);
    cr_expect_eq(run("--losses cross_entropy --range 8:-8 --csv %s", csv), 2);
    cr_expect(strstr(output, "--range takes A:B"), "%s", output);
    cr_expect_eq(run("--losses cross_entropy --target 2 --csv %s", csv), 1);
    cr_expect(strstr(output, "not 2"), "%s", output);
    cr_expect_eq(run("--losses cross_entropy"), 2);
    cr_expect(strstr(output, "--out FILE.png, --csv FILE.csv"), "%s", output);
    cr_expect_eq(run("--losses binary_cross_entropy_with_logits --weight '[1,2]' --csv %s", csv), 1);
    cr_expect(strstr(output, "binary_cross_entropy_with_logits: "), "%s", output);
    cr_expect_eq(run("--losses cross_entropy --csv %s/no/dir/c.csv", tmpdir), 1);
    cr_expect(strstr(output, "no/dir/c.csv"), "%s", output);
    struct stat st;
    cr_expect_neq(stat(csv, &st), 0, "a failed run wrote %s", csv);
}
