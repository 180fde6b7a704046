/* The compiler's front half, shared by every command that compiles: open the GGUF, import its graph,
 * run the pass pipeline. What comes out (the graph, the passes' results, the hyperparameters) is what
 * the emitters read.
 */
#ifndef AE_FRONTEND_H
#define AE_FRONTEND_H

#include "ae_gguf.h"
#include "import.h"
#include "ir.h"
#include "pass.h"

struct frontend {
    const char *path;
    ae_gguf *f;
    struct ir_graph *g;
    struct import_hparams hp;
    struct pass_ctx c;
    bool have_ctx;
};

/* Opens path, imports it with io (NULL: the defaults) and runs the pipeline. The pass options start as
 * pass_ctx_init leaves them, with the context set to the largest the program allows (hp.n_ctx_max);
 * configure (may be NULL) then adjusts them, and t_max is capped at the default context (hp.n_ctx). */
int frontend_compile(struct frontend *fe, const char *path, const struct import_options *io,
                     void (*configure)(struct pass_ctx *c, void *arg), void *arg, ae_error *err);
void frontend_free(struct frontend *fe);

#endif
