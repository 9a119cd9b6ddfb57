/* unet_drive's step-dump and init subcommands (stepdump.c). */
#ifndef UNET_STEPDUMP_H
#define UNET_STEPDUMP_H

/* argv[0] is "step-dump" or "init"; returns the exit code. */
int unet_stepdump_main(int argc, char **argv);

#endif
