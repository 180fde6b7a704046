/* aetherc inspect: says exactly what is in a GGUF file.
 *
 * Prints the header, every metadata key (long arrays summarized by count and first values), the tensor
 * table with --tensors, totals per type, and the hyperparameters as the compiler reads them. --json
 * prints the same as one JSON object. A file the reader rejects gets its message and exit status 1; a
 * file it reads whose settings no program can be compiled from (block_count 0, an epsilon that is NaN,
 * ...) is shown, with a warning on stderr naming the key and its byte offset.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "import.h"

/* Arrays longer than this are summarized by their count and first elements. */
#define ARRAY_PREVIEW 8
/* Strings longer than this are cut in the text form. */
#define STRING_PREVIEW 72

struct type_total {
    uint64_t tensors, params, bytes;
};

/* ---- Text form -------------------------------------------------------------------------------------- */

/* Prints s with C escapes for control bytes, cut to max bytes (0 = whole). */
static void text_str(FILE *f, struct ae_str s, uint64_t max)
{
    uint64_t n = max && s.len > max ? max : s.len;
    fputc('"', f);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
    if (n < s.len)
        fprintf(f, "... (%" PRIu64 " bytes)", s.len);
}

static void text_scalar(FILE *f, const struct ae_gguf_value *v)
{
    switch (v->type) {
    case AE_GGUF_U8: case AE_GGUF_U16: case AE_GGUF_U32: case AE_GGUF_U64: fprintf(f, "%" PRIu64, v->u); break;
    case AE_GGUF_I8: case AE_GGUF_I16: case AE_GGUF_I32: case AE_GGUF_I64: fprintf(f, "%" PRId64, v->i); break;
    case AE_GGUF_F32: fprintf(f, "%.9g", v->f); break;
    case AE_GGUF_F64: fprintf(f, "%.17g", v->f); break;
    case AE_GGUF_BOOL: fputs(v->b ? "true" : "false", f); break;
    case AE_GGUF_STRING: text_str(f, v->str, STRING_PREVIEW); break;
    case AE_GGUF_ARRAY: case AE_GGUF_TYPE_COUNT: break;
    }
}

/* The i-th element of an array as a value, for printing. */
static struct ae_gguf_value array_elem(const struct ae_gguf_array *a, uint64_t i)
{
    if (a->elems)
        return a->elems[i];
    struct ae_gguf_value v = {.type = a->type};
    if (a->type == AE_GGUF_F32 || a->type == AE_GGUF_F64)
        v.f = ae_gguf_arr_float(a, i);
    else if (a->type == AE_GGUF_BOOL)
        v.b = ae_gguf_arr_int(a, i) != 0;
    else
        v.i = ae_gguf_arr_int(a, i); /* u and i share storage; unsigned 64-bit values keep their bits */
    if (a->type == AE_GGUF_U64)
        memcpy(&v.u, a->data + i * 8, 8);
    return v;
}

static void text_value(FILE *f, const struct ae_gguf_value *v)
{
    if (v->type != AE_GGUF_ARRAY) {
        text_scalar(f, v);
        return;
    }
    const struct ae_gguf_array *a = &v->arr;
    fprintf(f, "[%s x %" PRIu64 "]", ae_gguf_type_name(a->type), a->n);
    if (a->n == 0)
        return;
    fputs(" ", f);
    for (uint64_t i = 0; i < a->n && i < ARRAY_PREVIEW; i++) {
        struct ae_gguf_value e = array_elem(a, i);
        if (i)
            fputs(", ", f);
        if (e.type == AE_GGUF_STRING)
            text_str(f, e.str, 24);
        else
            text_value(f, &e);
    }
    if (a->n > ARRAY_PREVIEW)
        fputs(", ...", f);
}

static const char *rope_name(const struct import_hparams *hp) { return hp->rope_mode == IR_ROPE_NEOX ? "neox" : "normal"; }

static const char *scaling_name(const struct import_hparams *hp)
{
    switch (hp->rope_scaling) {
    case IMPORT_ROPE_SCALING_NONE: return "none";
    case IMPORT_ROPE_SCALING_LINEAR: return "linear";
    case IMPORT_ROPE_SCALING_YARN: return "yarn";
    }
    return "unknown";
}

/* The attention scale the graph uses: attention.scale, or 1/sqrt(head_dim_k). */
static double attn_scale(const struct import_hparams *hp)
{
    return hp->attn_scale != 0.0f ? hp->attn_scale : 1.0 / sqrt((double)hp->head_dim_k);
}

static void text_hparams(FILE *f, const struct import_hparams *hp)
{
    fprintf(f, "hyperparameters (%s, as the compiler reads them):\n", hp->arch);
    fprintf(f, "  n_vocab %" PRIu32 ", n_ctx_train %" PRIu32 ", n_embd %" PRIu32 ", n_layer %" PRIu32 ", n_ff %" PRIu32 "\n",
            hp->n_vocab, hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_ff);
    fprintf(f, "  n_head %" PRIu32 ", n_head_kv %" PRIu32 " (GQA %" PRIu32 "), head_dim k %" PRIu32 " v %" PRIu32 "\n",
            hp->n_head, hp->n_head_kv, hp->n_head / hp->n_head_kv, hp->head_dim_k, hp->head_dim_v);
    fprintf(f, "  rope %s, n_rot %" PRIu32 ", freq_base %g, scaling %s (freq_scale %g, original context %" PRIu32 ")\n",
            rope_name(hp), hp->n_rot, hp->rope_freq_base, scaling_name(hp), hp->rope_freq_scale, hp->n_ctx_orig);
    fprintf(f, "  rms_eps %g, attn_scale %g, attn_softcap %g, final_softcap %g, sliding_window %" PRIu32 ", embeddings %s\n",
            hp->rms_eps, attn_scale(hp), hp->attn_softcap, hp->final_softcap, hp->sliding_window,
            hp->tied_embeddings ? "tied (lm head = token_embd)" : "separate output.weight");
}

static void shape_str(const struct ae_gguf_tensor *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < t->n_dims && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

static void print_text(FILE *f, const ae_gguf *g, bool tensors, const struct type_total *totals,
                       const struct import_hparams *hp, const char *hp_error)
{
    fprintf(f, "file: %s\n", g->path);
    fprintf(f, "format: GGUF v%" PRIu32 ", %" PRIu64 " bytes, alignment %" PRIu64 ", data section at byte %" PRIu64 "\n",
            g->version, g->size, g->alignment, g->data_offset);
    fprintf(f, "metadata: %" PRIu64 " keys\n", g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct ae_gguf_kv *kv = &g->kv[i];
        fprintf(f, "  %-44.*s %-7s ", (int)kv->key.len, kv->key.ptr, ae_gguf_type_name(kv->value.type));
        text_value(f, &kv->value);
        fputc('\n', f);
    }
    uint64_t params = 0, bytes = 0;
    for (int t = 0; t < AE_TYPE_ID_LIMIT; t++)
        params += totals[t].params, bytes += totals[t].bytes;
    fprintf(f, "tensors: %" PRIu64 ", %" PRIu64 " parameters, %" PRIu64 " bytes\n", g->n_tensors, params, bytes);
    for (int t = 0; t < AE_TYPE_ID_LIMIT; t++)
        if (totals[t].tensors)
            fprintf(f, "  %-8s %5" PRIu64 " tensors %14" PRIu64 " parameters %14" PRIu64 " bytes\n", ae_type_name((uint32_t)t),
                    totals[t].tensors, totals[t].params, totals[t].bytes);
    if (tensors) {
        fprintf(f, "  %-40s %-8s %-24s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const struct ae_gguf_tensor *t = &g->tensors[i];
            char shape[96];
            shape_str(t, shape, sizeof shape);
            fprintf(f, "  %-40s %-8s %-24s %12" PRIu64 " %12" PRIu64 "\n", t->name, ae_type_name(t->type), shape,
                    t->offset, t->n_bytes);
        }
    }
    if (hp)
        text_hparams(f, hp);
    else
        fprintf(f, "hyperparameters: none (%s)\n", hp_error);
}

/* ---- JSON form -------------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if it is not valid. */
static int utf8_len(const unsigned char *s, uint64_t n)
{
    if (s[0] < 0x80)
        return 1;
    int len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    if (len == 0 || (uint64_t)len > n)
        return 0;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    uint32_t cp = len == 2 ? (s[0] & 0x1fu) : len == 3 ? (s[0] & 0x0fu) : (s[0] & 0x07u);
    for (int i = 1; i < len; i++)
        cp = cp << 6 | (s[i] & 0x3fu);
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string: escapes, and invalid UTF-8 bytes as U+FFFD so the output stays valid JSON. */
static void json_str(FILE *f, const char *p, uint64_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    fputc('"', f);
    for (uint64_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
            i++;
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            int n = utf8_len(s + i, len - i);
            if (n == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(s + i, 1, (size_t)n, f);
                i += (uint64_t)n;
            }
        }
    }
    fputc('"', f);
}

static void json_number(FILE *f, double x, int digits)
{
    if (isfinite(x))
        fprintf(f, "%.*g", digits, x);
    else
        fputs("null", f);
}

static void json_value(FILE *f, const struct ae_gguf_value *v)
{
    switch (v->type) {
    case AE_GGUF_U8: case AE_GGUF_U16: case AE_GGUF_U32: case AE_GGUF_U64: fprintf(f, "%" PRIu64, v->u); break;
    case AE_GGUF_I8: case AE_GGUF_I16: case AE_GGUF_I32: case AE_GGUF_I64: fprintf(f, "%" PRId64, v->i); break;
    case AE_GGUF_F32: json_number(f, v->f, 9); break;
    case AE_GGUF_F64: json_number(f, v->f, 17); break;
    case AE_GGUF_BOOL: fputs(v->b ? "true" : "false", f); break;
    case AE_GGUF_STRING: json_str(f, v->str.ptr, v->str.len); break;
    case AE_GGUF_ARRAY: {
        const struct ae_gguf_array *a = &v->arr;
        fprintf(f, "{\"array\": \"%s\", \"count\": %" PRIu64 ", \"first\": [", ae_gguf_type_name(a->type), a->n);
        for (uint64_t i = 0; i < a->n && i < ARRAY_PREVIEW; i++) {
            struct ae_gguf_value e = array_elem(a, i);
            if (i)
                fputs(", ", f);
            json_value(f, &e);
        }
        fputs("]}", f);
        break;
    }
    case AE_GGUF_TYPE_COUNT: fputs("null", f); break;
    }
}

static void print_json(FILE *f, const ae_gguf *g, bool tensors, const struct type_total *totals,
                       const struct import_hparams *hp, const char *hp_error)
{
    fputs("{\n  \"file\": ", f);
    json_str(f, g->path, strlen(g->path));
    fprintf(f, ",\n  \"version\": %" PRIu32 ",\n  \"size\": %" PRIu64 ",\n  \"alignment\": %" PRIu64
            ",\n  \"data_offset\": %" PRIu64 ",\n  \"metadata\": {", g->version, g->size, g->alignment, g->data_offset);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        json_str(f, g->kv[i].key.ptr, g->kv[i].key.len);
        fprintf(f, ": {\"type\": \"%s\", \"value\": ", ae_gguf_type_name(g->kv[i].value.type));
        json_value(f, &g->kv[i].value);
        fputc('}', f);
    }
    fputs(g->n_kv ? "\n  },\n" : "},\n", f);
    if (tensors) {
        fputs("  \"tensors\": [", f);
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const struct ae_gguf_tensor *t = &g->tensors[i];
            fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
            json_str(f, t->name, strlen(t->name));
            fprintf(f, ", \"type\": \"%s\", \"shape\": [", ae_type_name(t->type));
            for (uint32_t d = 0; d < t->n_dims; d++)
                fprintf(f, "%s%" PRId64, d ? ", " : "", t->ne[d]);
            fprintf(f, "], \"offset\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", t->offset, t->n_bytes);
        }
        fputs(g->n_tensors ? "\n  ],\n" : "],\n", f);
    }
    uint64_t params = 0, bytes = 0;
    for (int t = 0; t < AE_TYPE_ID_LIMIT; t++)
        params += totals[t].params, bytes += totals[t].bytes;
    fprintf(f, "  \"totals\": {\"tensors\": %" PRIu64 ", \"parameters\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"by_type\": {",
            g->n_tensors, params, bytes);
    bool first = true;
    for (int t = 0; t < AE_TYPE_ID_LIMIT; t++)
        if (totals[t].tensors) {
            fprintf(f, "%s\"%s\": {\"tensors\": %" PRIu64 ", \"parameters\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
                    first ? "" : ", ", ae_type_name((uint32_t)t), totals[t].tensors, totals[t].params, totals[t].bytes);
            first = false;
        }
    fputs("}},\n", f);
    if (hp) {
        fprintf(f, "  \"hyperparameters\": {\"arch\": \"%s\", \"n_vocab\": %" PRIu32 ", \"n_ctx_train\": %" PRIu32
                ", \"n_embd\": %" PRIu32 ", \"n_layer\": %" PRIu32 ", \"n_ff\": %" PRIu32 ", \"n_head\": %" PRIu32
                ", \"n_head_kv\": %" PRIu32 ", \"head_dim_k\": %" PRIu32 ", \"head_dim_v\": %" PRIu32
                ", \"n_rot\": %" PRIu32 ", \"rope\": \"%s\", \"rope_freq_base\": ",
                hp->arch, hp->n_vocab, hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_ff, hp->n_head, hp->n_head_kv,
                hp->head_dim_k, hp->head_dim_v, hp->n_rot, rope_name(hp));
        json_number(f, hp->rope_freq_base, 9);
        fprintf(f, ", \"rope_scaling\": \"%s\", \"rope_freq_scale\": ", scaling_name(hp));
        json_number(f, hp->rope_freq_scale, 9);
        fprintf(f, ", \"rope_orig_ctx\": %" PRIu32 ", \"rms_eps\": ", hp->n_ctx_orig);
        json_number(f, hp->rms_eps, 9);
        fputs(", \"attn_scale\": ", f);
        json_number(f, attn_scale(hp), 9);
        fputs(", \"attn_softcap\": ", f);
        json_number(f, hp->attn_softcap, 9);
        fputs(", \"final_softcap\": ", f);
        json_number(f, hp->final_softcap, 9);
        fprintf(f, ", \"sliding_window\": %" PRIu32 ", \"tied_embeddings\": %s}\n}\n", hp->sliding_window,
                hp->tied_embeddings ? "true" : "false");
    } else {
        fputs("  \"hyperparameters\": null,\n  \"hyperparameters_error\": ", f);
        json_str(f, hp_error, strlen(hp_error));
        fputs("\n}\n", f);
    }
}

/* ---- The command ---------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: aetherc inspect FILE [--tensors] [--json]\n"
               "  Prints what a GGUF file holds: header, metadata, totals per type and the model's\n"
               "  hyperparameters as the compiler reads them.\n"
               "  --tensors   also list every tensor (name, type, shape, offset, bytes)\n"
               "  --json      print one JSON object instead of text\n");
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool tensors = false, json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tensors"))
            tensors = true;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "aetherc inspect: unknown flag '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "aetherc inspect: one file at a time ('%s' and '%s' given)\n", path, argv[i]);
            return 2;
        } else
            path = argv[i];
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    ae_gguf *g;
    ae_error err;
    if (ae_gguf_open(&g, path, &err) < 0) {
        fprintf(stderr, "aetherc: %s\n", err.msg);
        return 1;
    }
    struct type_total totals[AE_TYPE_ID_LIMIT] = {{0}};
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct ae_gguf_tensor *t = &g->tensors[i];
        totals[t->type].tensors++;
        totals[t->type].params += t->n_elements;
        totals[t->type].bytes += t->n_bytes;
    }
    struct import_hparams hp;
    ae_error hp_err;
    bool have_hp = true;
    if (!ae_gguf_find_kv(g, "general.architecture")) {
        have_hp = false;
        snprintf(hp_err.msg, sizeof hp_err.msg, "no general.architecture: not a model file");
    } else if (import_model_hparams(g, &hp, &hp_err) < 0) {
        /* The file is shown as it is; a setting no program can be compiled from is flagged. */
        have_hp = false;
        fprintf(stderr, "aetherc: warning: %s\n", hp_err.msg);
    }
    if (json)
        print_json(stdout, g, tensors, totals, have_hp ? &hp : NULL, hp_err.msg);
    else
        print_text(stdout, g, tensors, totals, have_hp ? &hp : NULL, hp_err.msg);
    ae_gguf_close(g);
    return 0;
}
