/* libFuzzer target for unet_drive's log.jsonl reader, as --report-only and --resume use it
 * (clang only; scripts/fuzz.sh builds and runs it; built with examples/unet_drive/report.c and
 * run.c). Each input is read as a log (unet_run_read); the best and last evaluated epochs are
 * looked up and every epoch is written back as a log line (unet_epoch_json). The first input byte
 * picks the checkpoint epoch for --resume's check (run_log_check); a log it accepts must read back
 * from the lines written for it with the same epochs. Never a crash, a leak or undefined
 * behaviour. With TG_FUZZ_SEED_DIR set, initialisation writes a valid 3-epoch log there. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "run.h"

static const char SEED[] =
    "{\"head\": \"sigmoid\", \"num_classes\": 1, \"params\": 68057, \"base_c\": 4, \"crop\": 64, \"batch\": 2, "
    "\"epochs\": 3, \"epoch\": 1, \"lr\": 0.00334, \"train_loss\": 0.778300, \"train_seconds\": 0.293, "
    "\"images_per_second\": 6.820, \"data_wait_share\": 0.00000, \"peak_rss_mb\": 226.0, \"test_loss\": 0.694500, "
    "\"dice\": 0.207700, \"miou\": 0.092300, \"global_acc\": 0.170000, \"acc_background\": 0.055000, "
    "\"acc_vessel\": 0.829700, \"iou_background\": 0.068700, \"iou_vessel\": 0.115900, \"eval_seconds\": 1.200, "
    "\"infer_ms_per_image\": 1132.00}\n"
    "{\"head\": \"sigmoid\", \"num_classes\": 1, \"params\": 68057, \"base_c\": 4, \"crop\": 64, \"batch\": 2, "
    "\"epochs\": 3, \"epoch\": 2, \"lr\": 0.00201, \"train_loss\": 0.701, \"train_seconds\": 0.3, "
    "\"images_per_second\": 6.6, \"data_wait_share\": null, \"peak_rss_mb\": 227.0}\n"
    "{\"head\": \"sigmoid\", \"num_classes\": 1, \"params\": 68057, \"base_c\": 4, \"crop\": 64, \"batch\": 2, "
    "\"epochs\": 3, \"epoch\": 3, \"lr\": 1e-05, \"train_loss\": 0.69, \"dice\": 0.25, \"miou\": null}\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("TG_FUZZ_SEED_DIR");
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/log.jsonl", dir);
        FILE *f = fopen(path, "w");
        if (f) {
            fputc(2, f); /* checkpoint epoch 2 */
            fputs(SEED, f);
            fclose(f);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const int ckpt_epoch = data[0] % 8;
    FILE *f = fmemopen((void *)(data + 1), size - 1 ? size - 1 : 1, "r");
    if (!f) return 0;
    if (size == 1) fgetc(f); /* empty stream */
    unet_run run;
    tg_status st = unet_run_read(f, "log.jsonl", &run);
    fclose(f);
    if (st != TG_OK) {
        if (run.epochs || run.n_epochs) abort(); /* a failed read owns nothing */
        return 0;
    }
    (void)unet_run_best(&run);
    (void)unet_run_last_eval(&run);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    for (int i = 0; out && i < run.n_epochs; i++) {
        char line[2048];
        unet_epoch_json(&run, &run.epochs[i], line, sizeof line);
        fprintf(out, "%s\n", line);
    }
    if (out) fclose(out);
    if (run_log_check(&run, "log.jsonl", "sigmoid", ckpt_epoch) == TG_OK) {
        if (run.n_epochs != ckpt_epoch) abort(); /* an accepted log holds exactly epochs 1..E */
        /* what --resume writes back for the kept epochs reads again as the same epochs */
        char *kept = NULL;
        size_t klen = 0;
        FILE *k = open_memstream(&kept, &klen);
        for (int i = 0; k && i < run.n_epochs; i++) {
            char line[2048];
            unet_epoch_json(&run, &run.epochs[i], line, sizeof line);
            fprintf(k, "%s\n", line);
        }
        if (k) fclose(k);
        FILE *again = kept && klen ? fmemopen(kept, klen, "r") : NULL;
        if (again) {
            unet_run back;
            if (unet_run_read(again, "rewritten", &back) != TG_OK || back.n_epochs != run.n_epochs) abort();
            for (int i = 0; i < back.n_epochs; i++)
                if (back.epochs[i].epoch != run.epochs[i].epoch ||
                    back.epochs[i].evaluated != run.epochs[i].evaluated)
                    abort();
            unet_run_free(&back);
            fclose(again);
        }
        free(kept);
    }
    free(text);
    unet_run_free(&run);
    return 0;
}
