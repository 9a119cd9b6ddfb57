/* unet_drive's evaluation: test loss and the reference metrics (Dice, IoU, accuracy; pixels
 * outside the field of view ignored) of a model over the test images, and --eval CKPT (unet_drive.h). */
#include "head_loss.h"
#include "unet_drive.h"

tg_status evaluate(const tg_unet *m, int head, const config *c, const tg_dataset *test, unet_epoch *e)
{
    tg_loader_options lo = tg_loader_defaults(1, 0);
    lo.shuffle = false;
    lo.workers = 1;
    tg_loader *l = tg_loader_new(test, &lo);
    if (!l) return tg_last_status();
    tg_seg_metrics sm;
    tg_status st = tg_seg_metrics_init(&sm, 2, UNET_IGNORE_LABEL);
    loss_buffers lb = {0};
    bool prev_grad = tg_set_grad_enabled(false);
    tg_param_list_train(m->params, false);
    double loss_sum = 0, forward_seconds = 0, t_start = tg_now();
    int64_t images = 0;
    tg_batch b;
    while (st == TG_OK && (st = tg_loader_next(l, &b)) == TG_OK && b.x) {
        double t0 = tg_now();
        tg_tensor *logits = tg_unet_forward(m, b.x);
        forward_seconds += tg_now() - t0;
        tg_tensor *loss = logits ? head_loss(head, logits, b.y, c->class_weight, &lb) : NULL;
        if (!loss) st = tg_last_status();
        else {
            loss_sum += loss->data[0];
            images++;
            st = tg_seg_metrics_update(&sm, logits, b.y);
        }
        tg_tape_clear();
        tg_batch_free(&b);
    }
    tg_set_grad_enabled(prev_grad);
    tg_param_list_train(m->params, true);
    if (st == TG_OK) {
        tg_seg_scores s = tg_seg_metrics_compute(&sm);
        e->evaluated = true;
        e->test_loss = loss_sum / (double)images;
        e->dice = s.dice;
        e->miou = s.mean_iou;
        e->global_acc = s.global_acc;
        e->acc[0] = s.acc[0], e->acc[1] = s.acc[1];
        e->iou[0] = s.iou[0], e->iou[1] = s.iou[1];
        e->eval_seconds = tg_now() - t_start;
        e->infer_ms = 1e3 * forward_seconds / (double)images;
    }
    loss_buffers_free(&lb);
    tg_seg_metrics_free(&sm);
    tg_loader_free(l);
    return st;
}

int run_eval(config *c)
{
    int head;
    float mean[3], std[3];
    tg_unet *m = load_model(c->eval_ckpt, &head, mean, std);
    if (!m) return fail("cannot load the checkpoint");
    drive_data d;
    if (drive_data_open(c, false, c->mean_given ? NULL : mean, c->mean_given ? NULL : std, false, &d) != TG_OK) {
        tg_unet_free(m);
        drive_data_free(&d);
        return fail("cannot open the dataset");
    }
    unet_epoch e = {0};
    int rc = 0;
    if (evaluate(m, head, c, d.test, &e) != TG_OK) rc = fail("evaluation failed");
    else
        printf("%s (%s head): Dice %.4f, mIoU %.4f, global accuracy %.4f, vessel accuracy %.4f, vessel IoU %.4f, "
               "test loss %.4f on %lld test images (%.0f ms per image)\n",
               c->eval_ckpt, HEAD_NAME[head], e.dice, e.miou, e.global_acc, e.acc[1], e.iou[1], e.test_loss,
               (long long)d.test->length, e.infer_ms);
    drive_data_free(&d);
    tg_unet_free(m);
    return rc;
}
