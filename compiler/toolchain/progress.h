/* A progress bar for aetherc's long steps (hashing and writing a large model's weights): drawn on stderr
 * only when stderr is a terminal, at most ten times a second, and erased when the step ends, so that logs
 * and pipes never see it.
 */
#ifndef AE_PROGRESS_H
#define AE_PROGRESS_H

#include <stdbool.h>

#include "ae_program.h"

struct progress_bar {
    struct ae_progress p;    /* what the step reports to */
    const char *label;       /* "hashing the weights" */
    bool tty, drawn;
    double last;             /* when it was last drawn */
};

void progress_bar_start(struct progress_bar *b, const char *label);
void progress_bar_end(struct progress_bar *b);

#endif
