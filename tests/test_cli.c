/* examples/common/cli (the examples' helpers, not the library): strict flag parsing, mkdir -p. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/cli.h"
#include "tapegrad.h"
#include "test_support.h"

Test(cli, numbers_are_parsed_strictly)
{
    long long n = -1;
    cr_expect(cli_parse_long("42", 0, 100, &n) && n == 42);
    cr_expect(!cli_parse_long("42x", 0, 100, &n), "trailing characters");
    cr_expect(!cli_parse_long("", 0, 100, &n), "empty");
    cr_expect(!cli_parse_long("101", 0, 100, &n), "above the range");
    cr_expect(!cli_parse_long("-1", 0, 100, &n), "below the range");
    cr_expect(!cli_parse_long("99999999999999999999", 0, 100, &n), "overflow");
    double d = 0;
    cr_expect(cli_parse_double("1e-4", &d) && d == 1e-4);
    cr_expect(!cli_parse_double("nan", &d) && !cli_parse_double("inf", &d), "not finite");
    cr_expect(!cli_parse_double("0.1.2", &d));
}

Test(cli, make_dirs_creates_parents_and_refuses_files)
{
    char dir[256], path[512];
    tgt_make_tmpdir(dir, sizeof dir, "cli");
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    cr_expect(cli_make_dirs(path));
    cr_expect(cli_make_dirs(path), "an existing directory is fine");
    struct stat st;
    cr_expect(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_expect(!cli_make_dirs(path), "a file in the way is an error");
    snprintf(path, sizeof path, "%s/file/sub", dir);
    cr_expect(!cli_make_dirs(path));
    cr_expect_gt(cli_peak_rss_mb(), 0.0);
    tgt_remove_tree(dir);
}
