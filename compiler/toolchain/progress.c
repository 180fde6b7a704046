/* A progress bar on stderr (progress.h). */
#include "progress.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_WIDTH 30

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_update(void *ctx, uint64_t done, uint64_t total)
{
    struct progress_bar *b = ctx;
    double t = seconds();
    if (!b->tty || (b->drawn && t - b->last < 0.1 && done < total) || total == 0)
        return;
    b->last = t;
    b->drawn = true;
    if (done > total)
        done = total;
    int fill = (int)((double)done / (double)total * PROGRESS_WIDTH);
    char bar[PROGRESS_WIDTH + 1];
    for (int i = 0; i < PROGRESS_WIDTH; i++)
        bar[i] = i < fill ? '#' : ' ';
    bar[PROGRESS_WIDTH] = 0;
    fprintf(stderr, "\raetherc: %s [%s] %3d%% %.2f of %.2f GiB", b->label, bar, (int)(100.0 * (double)done / (double)total),
            (double)done / (1u << 30), (double)total / (1u << 30));
    fflush(stderr);
}

void progress_bar_start(struct progress_bar *b, const char *label)
{
    *b = (struct progress_bar){.p = {progress_update, b}, .label = label, .tty = isatty(STDERR_FILENO) == 1};
}

void progress_bar_end(struct progress_bar *b)
{
    if (b->drawn)
        fprintf(stderr, "\r\033[K");
    b->drawn = false;
}
