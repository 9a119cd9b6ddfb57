/* losslab plot (plot.c): loss and gradient curves over a range of logits, PNG and CSV. */
#ifndef LOSSLAB_PLOT_H
#define LOSSLAB_PLOT_H

/* argv[0] is "plot"; returns the exit code (0, 1 on a failure, 2 on a usage error). */
int ll_plot_main(int argc, char **argv);

#endif
