/* From an optimized graph to a program, or to a run in memory (build_program.h). */
#include "build_program.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ae_program.h"
#include "ae_tokenizer.h"
#include "ae_version.h"
#include "emit_c.h"
#include "pack_build.h"
#include "progress.h"
#include "toolchain.h"

/* What --info prints about the compilation. */
static void describe(const struct build_model *m, const char *compiler, char *buf, size_t size)
{
    const struct pass_stats *st = &m->c->stats;
    size_t k = (size_t)snprintf(buf, size, "%s\npasses: ", m->path);
    for (int p = 0; p < PASS_COUNT && k < size; p++)
        if (!(m->c->opt.disabled & (1u << p)))
            k += (size_t)snprintf(buf + k, size - k, "%s%s", k && buf[k - 1] != ' ' ? ", " : "", pass_name((enum pass_id)p));
    if (k < size)
        k += (size_t)snprintf(buf + k, size - k, "\nnodes: %" PRIu32 " imported, %" PRIu32 " after the passes\nfused groups:",
                              st->nodes_in, st->nodes_out);
    bool any = false;
    for (int f = 0; f < FUSE_KIND_COUNT && k < size; f++)
        if (st->fused[f]) {
            k += (size_t)snprintf(buf + k, size - k, "%s %" PRIu32 " %s", any ? "," : "", st->fused[f],
                                  fuse_kind_name((enum fuse_kind)f));
            any = true;
        }
    if (!any && k < size)
        k += (size_t)snprintf(buf + k, size - k, " none");
    if (k < size)
        k += (size_t)snprintf(buf + k, size - k, "\nactivation arena: %" PRIu64 " bytes planned for %" PRId64
                              " tokens (no reuse: %" PRIu64 ")\ncompiler: %s", m->c->plan.peak, m->c->plan.t_max,
                              m->c->plan.naive, compiler);
}

static int emit_to_memory(const struct build_model *m, const struct pack_build *pb, const char *info,
                          const char *compiler, const struct emit_vk_options *vk, bool no_server, char **src,
                          ae_error *err)
{
    size_t size;
    FILE *f = open_memstream(src, &size);
    if (!f)
        return ae_fail(err, "out of memory");
    const char *slash = strrchr(m->path, '/');
    struct ae_str name = {0};
    ae_gguf_get_str(m->f, "general.name", &name, NULL);
    char model_name[128];
    snprintf(model_name, sizeof model_name, "%.*s", name.len ? (int)(name.len > 100 ? 100 : name.len) : 0,
             name.len ? name.ptr : "");
    /* The tokenizer kind, so that the program links that kind's encoder only. */
    static const char *const tokenizers[AE_TOKENIZER_KIND_COUNT] = {
        [AE_TOKENIZER_SPM] = "&ae_tokenizer_spm", [AE_TOKENIZER_BPE] = "&ae_tokenizer_bpe",
        [AE_TOKENIZER_WPM] = "&ae_tokenizer_wpm"};
    struct ae_str tok_model = {0};
    ae_gguf_get_str(m->f, "tokenizer.ggml.model", &tok_model, NULL);
    const int tok_kind = ae_tokenizer_kind_of(tok_model);
    struct emit_options eo = {
        .model_file = slash ? slash + 1 : m->path,
        .model_name = model_name[0] ? model_name : (slash ? slash + 1 : m->path),
        .info = info,
        .compiler = compiler,
        .t_max = (int32_t)m->c->opt.t_max,
        .vk = vk,
        .tokenizer = tok_kind >= 0 ? tokenizers[tok_kind] : NULL,
        .no_server = no_server,
    };
    int rc = emit_c(f, m->g, m->c, pb, m->hp, &eo, err);
    if (fclose(f) != 0 && rc == 0)
        rc = ae_fail(err, "out of memory writing the C source");
    if (rc < 0) {
        free(*src);
        *src = NULL;
    }
    return rc;
}

static int write_text(const char *path, const char *text, ae_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ae_fail(err, "%s: cannot create: %s", path, strerror(errno));
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc ? ae_fail(err, "%s: write failed: %s", path, strerror(errno)) : 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The compiler the program is built with, and the line its --version shows. */
static void compiler_names(const struct build_options *o, const struct cc_target *target, char *cc, size_t cc_size,
                           char *line, size_t line_size)
{
    if (o->use_tcc)
        snprintf(cc, cc_size, "libtcc");
    else
        snprintf(cc, cc_size, "gcc -O2%s%s%s for %s", o->march ? " -march=" : "", o->march ? o->march : "",
                 o->static_link ? " -static" : "", target->triple);
    snprintf(line, line_size, "aetherc %s with %s", ae_version(), cc);
}

static int write_weights(const char *path, const struct pack_build *pb, ae_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ae_fail(err, "%s: cannot create: %s", path, strerror(errno));
    struct ae_pack_weights w = pack_build_weights(pb);
    int rc = ae_pack_write(f, pb->meta, pb->meta_size, &w, err);
    if (fclose(f) != 0 && rc == 0)
        rc = ae_fail(err, "%s: write failed: %s", path, strerror(errno));
    return rc;
}

int build_program(const struct build_model *m, const struct build_options *o, struct build_result *r, ae_error *err)
{
    const struct cc_target *target = o->target ? o->target : cc_target_host();
    if (!target)
        return ae_fail(err, "aetherc runs on a machine it cannot build for; name one with --target");
    struct toolchain_paths paths;
    if (toolchain_find(&paths, target, err) < 0)
        return -1;
    char compiler[160], version_line[320];
    compiler_names(o, target, compiler, sizeof compiler, version_line, sizeof version_line);
    char info[4096];
    describe(m, compiler, info, sizeof info);

    struct progress_bar bar;
    progress_bar_start(&bar, "hashing the weights");
    struct pack_build pb;
    int prc = pack_build(&pb, m->g, m->c, m->f, true, &bar.p, err);
    progress_bar_end(&bar);
    if (prc < 0)
        return -1;
    char *src = NULL;
    char tmpdir[] = "/tmp/aetherc-XXXXXX";
    bool made_tmp = false;
    char c_path[PATH_MAX] = "", map_path[PATH_MAX];
    int rc = -1;
    struct emit_vk_options vk = {.dump_dir = o->dump_spirv_dir};
    if (emit_to_memory(m, &pb, info, version_line, o->cpu_only ? NULL : &vk, o->static_link, &src, err) < 0)
        goto done;

    /* The C file: kept in --emit-c DIR, or in a temporary folder for gcc. */
    const char *dir = o->emit_c_dir;
    if (!dir && !o->use_tcc) {
        if (!mkdtemp(tmpdir)) {
            ae_fail(err, "cannot make a temporary folder: %s", strerror(errno));
            goto done;
        }
        made_tmp = true;
        dir = tmpdir;
    }
    if (dir) {
        if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
            ae_fail(err, "%s: cannot create: %s", dir, strerror(errno));
            goto done;
        }
        char out_copy[PATH_MAX];
        snprintf(out_copy, sizeof out_copy, "%s", o->output);
        snprintf(c_path, sizeof c_path, "%s/%s.c", dir, basename(out_copy));
        snprintf(map_path, sizeof map_path, "%s/%s.map", dir, basename(out_copy));
        if (write_text(c_path, src, err) < 0)
            goto done;
    }
    struct cc_options cco = {.target = target, .march = o->march, .static_link = o->static_link, .debug = o->debug,
                             .link_map = o->emit_c_dir ? map_path : NULL};
    if (o->use_tcc ? cc_tcc_build(src, o->output, &paths, err) : cc_gcc_build(c_path, o->output, &paths, &cco, err)) {
        if (made_tmp)
            ae_fail_prefix(err, "compiling the generated C (--emit-c DIR keeps it)");
        goto done;
    }
    struct stat st;
    r->program_bytes = stat(o->output, &st) == 0 ? (uint64_t)st.st_size : 0;
    r->weights_bytes = pb.weights_size;
    memcpy(r->weights_hash, pb.weights_hash, AE_HASH_BYTES);

    progress_bar_start(&bar, "writing the weights");
    pb.progress = &bar.p;
    if (o->weights_external) {
        char wpath[PATH_MAX + 8];
        snprintf(wpath, sizeof wpath, "%s.weights", o->output);
        rc = write_weights(wpath, &pb, err);
    } else {
        struct ae_pack_weights w = pack_build_weights(&pb);
        rc = ae_pack_append(o->output, pb.meta, pb.meta_size, &w, err);
    }
    progress_bar_end(&bar);
done:
    if (made_tmp) {
        if (c_path[0])
            unlink(c_path);
        rmdir(tmpdir);
    }
    free(src);
    pack_build_free(&pb);
    return rc;
}

int build_and_run(const struct build_model *m, int argc, char **argv, int *status, ae_error *err)
{
    struct toolchain_paths paths;
    if (!cc_target_host())
        return ae_fail(err, "libtcc cannot run programs on this machine");
    if (toolchain_find(&paths, cc_target_host(), err) < 0)
        return -1;
    char info[4096], version_line[256];
    describe(m, "libtcc (in memory)", info, sizeof info);
    snprintf(version_line, sizeof version_line, "aetherc %s with libtcc, in memory", ae_version());
    double t0 = now();
    struct pack_build pb;
    if (pack_build(&pb, m->g, m->c, m->f, false, NULL, err) < 0)
        return -1;
    int rc = -1;
    char *src = NULL;
    char **args = NULL;
    if (pack_build_materialize(&pb, err) < 0)
        goto done;
    struct emit_vk_options vk = {0};
    if (emit_to_memory(m, &pb, info, version_line, &vk, false, &src, err) < 0)
        goto done;
    /* The program reads the weights where pack_build found them: the GGUF mapping, fold's constants (and
     * packed copies of interleaved weights, which an in-place run's layout pass does not choose). */
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "in place from %s", m->path);
    struct ae_program_weights w = {pb.meta, pb.meta_size, pb.source, pb.bytes, pb.n_weights, where};
    ae_program_set_weights(&w); /* the program runs on aetherc's runtime (cc_tcc.c) */
    fprintf(stderr, "aetherc: compiling %s with libtcc\n", m->path);
    /* The program reports its speed and the time to its first token. */
    if (!(args = malloc(((size_t)argc + 2) * sizeof *args))) {
        ae_fail(err, "out of memory");
        goto done;
    }
    bool timings = false;
    for (int i = 0; i < argc; i++)
        timings |= !strcmp(argv[i], "--timings");
    memcpy(args, argv, (size_t)argc * sizeof *args);
    args[argc] = "--timings";
    args[argc + 1] = NULL;
    rc = cc_tcc_run(src, &paths, timings ? argc : argc + 1, args, status, t0, err);
done:
    ae_program_set_weights(NULL);
    free(args);
    free(src);
    pack_build_free(&pb);
    return rc < 0 ? -1 : 0;
}
