/* The compiler's front half (frontend.h). */
#include "frontend.h"

#include <string.h>

#include "emit_c.h"

int frontend_compile(struct frontend *fe, const char *path, const struct import_options *io,
                     void (*configure)(struct pass_ctx *c, void *arg), void *arg, ae_error *err)
{
    memset(fe, 0, sizeof *fe);
    fe->path = path;
    struct import_options defaults;
    if (!io) {
        import_options_init(&defaults);
        io = &defaults;
    }
    if (ae_gguf_open(&fe->f, path, err) || import_model(&fe->g, fe->f, io, &fe->hp, err))
        goto fail;
    pass_ctx_init(&fe->c, err);
    fe->have_ctx = true;
    fe->c.gguf = fe->f;
    fe->c.opt.alignment = emit_c_target.arena_alignment; /* the target plans the arena: the C backend's */
    /* The plan holds for every context the program allows; a step is at most the default context. */
    fe->c.opt.n_ctx = fe->hp.n_ctx_max;
    if (configure)
        configure(&fe->c, arg);
    if (fe->c.opt.t_max > fe->hp.n_ctx)
        fe->c.opt.t_max = fe->hp.n_ctx;
    if (pass_pipeline_run(fe->g, &fe->c))
        goto fail;
    return 0;
fail:
    frontend_free(fe);
    return -1;
}

void frontend_free(struct frontend *fe)
{
    if (fe->have_ctx)
        pass_ctx_free(&fe->c);
    ir_graph_destroy(fe->g);
    ae_gguf_close(fe->f);
    memset(fe, 0, sizeof *fe);
}
