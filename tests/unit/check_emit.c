/* Tests of the emit stage (compiler/emit/): templates, the backend-neutral lowering and the C printer.
 *
 * Templates: snippets found by name, placeholders filled, missing ones named. The lowering: small graphs
 * (fused, as the passes leave them, and primitive, as -O0 leaves them) lowered and described one step a
 * line, against the expected description; rows of graphs it must refuse, each with the message naming
 * the node, a step kind the target lacks among them; the arena aligned to the target's alignment. The C
 * printer: the C of graphs with step kinds no shared model uses (and of a MoE layer's) compiles with no
 * warnings. (check_e2e runs the C of every shared model.)
 */
#include "emit_c.h"
#include "lower.h"
#include "template.h"
#include "test_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Templates ---------------------------------------------------------------------------------- */

static const char tmpl_text[] =
    "/* a comment before the first snippet */\n"
    "//@ one\n"
    "x = $a + $b_2;\n"
    "\n"
    "//@ two\n"
    "\n"
    "y = $a$a;\n"
    "\n"
    "\n"
    "//@ one_more\n"
    "z\n";

START_TEST(test_templates)
{
    static const struct {
        const char *snippet, *want, *error;
    } rows[] = {
        {"one", "x = 1 + 2;\n", NULL},
        {"two", "\ny = 11;\n", NULL},            /* a leading blank line is written, trailing ones are not */
        {"one_more", "z\n", NULL},
        {"on", NULL, "no template snippet 'on'"}, /* names match whole */
        {"three", NULL, "no template snippet 'three'"},
    };
    const struct tmpl_arg args[] = {{"a", "1"}, {"b_2", "2"}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        ae_error err;
        int rc = tmpl_write(f, tmpl_text, rows[i].snippet, args, 2, &err);
        fclose(f);
        ck_assert(tmpl_has(tmpl_text, rows[i].snippet) == (rows[i].want != NULL));
        if (rows[i].want) {
            ck_assert_msg(rc == 0, "%s: %s", rows[i].snippet, err.msg);
            ck_assert_str_eq(out, rows[i].want);
        } else {
            ck_assert_int_eq(rc, -1);
            ck_assert_str_eq(err.msg, rows[i].error);
        }
        free(out);
    }
    /* A placeholder without a value is named. */
    FILE *f = fopen("/dev/null", "w");
    ae_error err;
    ck_assert_int_eq(tmpl_write(f, tmpl_text, "one", args, 1, &err), -1);
    ck_assert_str_eq(err.msg, "template snippet 'one': no value for $b_2");
    fclose(f);
}
END_TEST

/* ---- Lowering ----------------------------------------------------------------------------------- */

/* A target like the C one, whose matmul does not take q4_0 (to see the refusal). */
static bool matmul_not_q4_0(uint32_t type)
{
    return type != AE_TYPE_Q4_0;
}

static const struct lower_target test_target = {"test", "test", 64, matmul_not_q4_0, 0};

/* A graph parsed, verified, planned with the given alignment and lowered; the weights take slots in graph
 * order, 4096 bytes apart in the pack. Returns lower_program's status. */
struct lowered {
    struct ir_graph *g;
    struct pass_ctx c;
    struct pack_build pb;
    struct lower_program lp;
    ae_error err;
};

static int lower_text_for(struct lowered *x, const char *text, uint64_t alignment, uint32_t missing_kinds)
{
    memset(x, 0, sizeof *x);
    ck_assert_msg(ir_parse(&x->g, text, strlen(text), "graph", &x->err) == 0, "%s", x->err.msg);
    ck_assert_msg(ir_verify(x->g, &x->err) == 0, "%s", x->err.msg);
    pass_ctx_init(&x->c, &x->err);
    x->c.opt.alignment = alignment;
    x->c.opt.t_max = 16;
    x->c.opt.n_ctx = 64;
    ck_assert_msg(pass_run(x->g, &x->c, PASS_MEMPLAN) == 0, "%s", x->err.msg);
    x->pb.slot = malloc(x->g->n_nodes * sizeof *x->pb.slot);
    x->pb.offset = malloc(x->g->n_nodes * sizeof *x->pb.offset);
    for (uint32_t i = 0; i < x->g->n_nodes; i++) {
        x->pb.slot[i] = x->g->nodes[i]->op == IR_OP_WEIGHT ? x->pb.n_weights : UINT32_MAX;
        if (x->g->nodes[i]->op == IR_OP_WEIGHT) {
            x->pb.offset[x->pb.n_weights] = 4096 * (uint64_t)x->pb.n_weights;
            x->pb.n_weights++;
        }
    }
    struct lower_target t = test_target;
    t.arena_alignment = alignment;
    t.missing_kinds = missing_kinds;
    return lower_program(&x->lp, x->g, &x->c, &x->pb, &t, &x->err);
}

static int lower_text(struct lowered *x, const char *text, uint64_t alignment)
{
    return lower_text_for(x, text, alignment, 0);
}

static void lowered_free(struct lowered *x)
{
    lower_program_free(&x->lp);
    free(x->pb.slot);
    free(x->pb.offset);
    pass_ctx_free(&x->c);
    ir_graph_destroy(x->g);
}

/* "64", "T", "8T", "4T-4", "T+P", "R" */
static const char *size_str(struct lower_size s, char *buf)
{
    size_t k = 0;
    const struct { int64_t c; char sym; } terms[] = {{s.t, 'T'}, {s.p, 'P'}, {s.r, 'R'}};
    for (int i = 0; i < 3; i++) {
        if (!terms[i].c)
            continue;
        if (k && terms[i].c > 0)
            buf[k++] = '+';
        if (terms[i].c == -1)
            buf[k++] = '-';
        else if (terms[i].c != 1)
            k += (size_t)sprintf(buf + k, "%" PRId64, terms[i].c);
        buf[k++] = terms[i].sym;
    }
    if (s.k || !k)
        k += (size_t)sprintf(buf + k, k && s.k > 0 ? "+%" PRId64 : "%" PRId64, s.k);
    buf[k] = 0;
    return buf;
}

/* "A+256", "W3" (a weight's slot), "W3+96" (a view into it), "K0", "V0", "tok", "logits", "-" */
static const char *ref_str(const struct lower_ref *r, char *buf)
{
    char sz[48];
    switch (r->base) {
    case LOWER_NOWHERE: return "-";
    case LOWER_TOKENS: return "tok";
    case LOWER_LOGITS: return "logits";
    case LOWER_ARENA: sprintf(buf, "A+%s", size_str(r->offset, sz)); return buf;
    case LOWER_WEIGHTS:
        sprintf(buf, "W%" PRIu32 "%s%s", r->slot, lower_size_is_const(r->offset) && !r->offset.k ? "" : "+",
                lower_size_is_const(r->offset) && !r->offset.k ? "" : size_str(r->offset, sz));
        return buf;
    case LOWER_K_CACHE: sprintf(buf, "K%" PRId32, r->layer); return buf;
    case LOWER_V_CACHE: sprintf(buf, "V%" PRId32, r->layer); return buf;
    }
    return "?";
}

static const char *const kind_names[LOWER_KIND_COUNT] = {
    [LOWER_GET_ROWS] = "get_rows", [LOWER_MATMUL] = "matmul",       [LOWER_EW] = "ew",
    [LOWER_RMS_NORM] = "rms_norm", [LOWER_LAYER_NORM] = "layer_norm", [LOWER_SOFTMAX] = "softmax",
    [LOWER_ROPE] = "rope",         [LOWER_ATTENTION] = "attention", [LOWER_KV_STORE] = "kv_store",
    [LOWER_SLICE] = "slice",       [LOWER_CONCAT] = "concat",       [LOWER_PERMUTE] = "permute",
    [LOWER_COPY] = "copy",         [LOWER_BROADCAST] = "broadcast", [LOWER_TOPK] = "topk",
    [LOWER_MOE_WEIGHTS] = "moe_weights", [LOWER_MATMUL_ID] = "matmul_id", [LOWER_MOE_SUM] = "moe_sum",
    [LOWER_LAST_ROWS] = "last_rows",
};

/* One line per step: "%5 matmul A+0 <- A+512 W1 [T x 8] +silu +mul(A+256)" and its kind's constants. */
static char *describe(const struct lower_program *lp)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    for (uint32_t i = 0; i < lp->n_steps; i++) {
        const struct lower_step *s = &lp->steps[i];
        char b[64], c[48];
        fprintf(f, "%%%" PRIu32 " %s%s %s <-", s->node, kind_names[s->kind], s->per_seq ? "/seq" : "",
                ref_str(&s->out, b));
        for (uint32_t k = 0; k < s->n_in; k++)
            fprintf(f, " %s", ref_str(&s->in[k], b));
        fprintf(f, " [%s x %" PRId64 "]", size_str(s->rows, c), s->cols);
        for (uint32_t k = 0; k < s->n_ew; k++) {
            const struct lower_ew *e = &s->ew[k];
            fprintf(f, " +%s", ir_op_name(ir_ew_step_op(e->op)));
            if (ir_ew_step_has_operand(e->op))
                fprintf(f, "(%s%s)", ref_str(&e->operand, b), e->operand_row ? " row" : "");
            if (ir_ew_step_has_k(e->op))
                fprintf(f, "(%g)", (double)e->k);
        }
        switch (s->kind) {
        case LOWER_GET_ROWS:
            fprintf(f, " n_rows=%" PRId64 " row_bytes=%" PRIu64, s->p.get_rows.n_rows, s->p.get_rows.row_bytes);
            break;
        case LOWER_MATMUL: fprintf(f, " n=%" PRId64 " k=%" PRId64, s->p.matmul.n, s->p.matmul.k); break;
        case LOWER_RMS_NORM: case LOWER_LAYER_NORM: fprintf(f, " eps=%g", (double)s->p.norm.eps); break;
        case LOWER_SOFTMAX: fprintf(f, " scale=%g", (double)s->p.softmax.scale); break;
        case LOWER_ROPE:
            fprintf(f, " heads=%" PRId64 " head_dim=%" PRId64 " n_dims=%" PRId32 " %s base=%g attn=%g", s->p.rope.heads,
                    s->p.rope.head_dim, s->p.rope.n_dims, s->p.rope.neox ? "neox" : "normal",
                    (double)s->p.rope.freq_base, (double)s->p.rope.attn_factor);
            if (s->p.rope.ext_factor != 0.0f)
                fprintf(f, " yarn=%g/%" PRId32 "/%g/%g", (double)s->p.rope.ext_factor, s->p.rope.n_ctx_orig,
                        (double)s->p.rope.beta_fast, (double)s->p.rope.beta_slow);
            break;
        case LOWER_ATTENTION:
            fprintf(f, " heads=%" PRId64 "/%" PRId64 " dims=%" PRId64 "/%" PRId64 " scale=%g softcap=%g"
                    " window=%" PRId32,
                    s->p.attention.n_head, s->p.attention.n_head_kv, s->p.attention.head_dim_k,
                    s->p.attention.head_dim_v, (double)s->p.attention.scale, (double)s->p.attention.softcap,
                    s->p.attention.window);
            break;
        case LOWER_KV_STORE: fprintf(f, " row_len=%" PRId64, s->p.kv_store.row_len); break;
        case LOWER_SLICE:
            fprintf(f, " outer=%s inner=%s len=%" PRId64 "/%" PRId64 " start=%" PRId64, size_str(s->p.slice.outer, b),
                    size_str(s->p.slice.inner, c), s->p.slice.len, s->p.slice.x_len, s->p.slice.start);
            break;
        case LOWER_CONCAT:
            fprintf(f, " outer=%s inner=%s len=%" PRId64 "+%" PRId64, size_str(s->p.concat.outer, b),
                    size_str(s->p.concat.inner, c), s->p.concat.a_len, s->p.concat.b_len);
            break;
        case LOWER_PERMUTE:
            fprintf(f, " dims=");
            for (int k = 0; k < 4; k++)
                fprintf(f, "%s%s", k ? "," : "", size_str(s->p.permute.dims[k], b));
            fprintf(f, " perm=%" PRId32 ",%" PRId32 ",%" PRId32 ",%" PRId32, s->p.permute.perm[0], s->p.permute.perm[1],
                    s->p.permute.perm[2], s->p.permute.perm[3]);
            break;
        case LOWER_BROADCAST:
            fprintf(f, " dims=");
            for (int k = 0; k < 4; k++)
                fprintf(f, "%s%s", k ? "," : "", size_str(s->p.broadcast.dims[k], b));
            fprintf(f, " from=");
            for (int k = 0; k < 4; k++)
                fprintf(f, "%s%s", k ? "," : "", size_str(s->p.broadcast.x_dims[k], b));
            break;
        case LOWER_TOPK: fprintf(f, " n=%" PRId64 " k=%" PRId64, s->p.topk.n, s->p.topk.k); break;
        case LOWER_MOE_WEIGHTS:
            fprintf(f, " n=%" PRId64 " k=%" PRId64 " norm=%d scale=%g", s->p.moe_weights.n, s->p.moe_weights.k,
                    s->p.moe_weights.norm, (double)s->p.moe_weights.scale);
            break;
        case LOWER_MATMUL_ID:
            fprintf(f, " experts=%" PRId64 " n=%" PRId64 " k=%" PRId64 " slots=%" PRId64 "%s", s->p.matmul_id.experts,
                    s->p.matmul_id.n, s->p.matmul_id.k, s->p.matmul_id.slots,
                    s->p.matmul_id.x_per_slot ? " per_slot" : "");
            break;
        case LOWER_MOE_SUM: fprintf(f, " k=%" PRId64, s->p.moe_sum.k); break;
        case LOWER_EW: case LOWER_COPY: case LOWER_LAST_ROWS: case LOWER_KIND_COUNT: break;
        }
        fprintf(f, "\n");
    }
    fclose(f);
    return out;
}

#define ROPE_PARAMS(ATTN)                                                                               \
    "{mode=neox, n_dims=4, base=10000, freq_scale=1, ext_factor=0, attn_factor=" ATTN                      \
    ", beta_fast=32, beta_slow=1, n_ctx_orig=512}"

/* A layer as the passes leave it: every fused op. */
static const char fused_graph[] =
    "%0 = input {kind=tokens} : i32[T]  ; tokens\n"
    "%1 = input {kind=positions} : i32[T]  ; positions\n"
    "%2 = weight @emb : f32[16,8]\n"
    "%3 = get_rows @emb, %0 : f32[T,8]  ; x\n"
    "%4 = weight @norm : f32[8]\n"
    "%5 = rms_norm_mul %3, @norm {eps=1e-05} : f32[T,8]  ; h\n"
    "%6 = weight @wq : f16[8,8]\n"
    "%7 = weight @bq : f32[8]\n"
    "%8 = matmul_rope %5, @wq, %1, @bq " ROPE_PARAMS("1") " : f32[T,2,4]  ; q\n"
    "%9 = weight @wk : f16[4,8]\n"
    "%10 = matmul_rope %5, @wk, %1 " ROPE_PARAMS("1") " : f32[T,1,4]  ; k\n"
    "%11 = weight @wv : f16[4,8]\n"
    "%12 = matmul %5, @wv : f32[T,4]  ; v\n"
    "%13 = reshape %12 : f32[T,1,4]\n"
    "%14 = kv_cache {layer=0, kind=k} : f16[P,1,4]\n"
    "%15 = kv_cache {layer=0, kind=v} : f16[P,1,4]\n"
    "%16 = kv_store %14, %10 : f16[P+T,1,4]\n"
    "%17 = kv_store %15, %13 : f16[P+T,1,4]\n"
    "%18 = attention %8, %16, %17 {scale=0.5, softcap=0, window=0} : f32[T,2,4]  ; attn\n"
    "%19 = reshape %18 : f32[T,8]\n"
    "%20 = weight @wo : f16[8,8]\n"
    "%21 = matmul_ew %19, @wo, %3 {op0=add, op1=none, op2=none, op3=none, k0=0, k1=0, k2=0, k3=0} : f32[T,8]  ; res\n"
    "%22 = weight @wu : f16[8,8]\n"
    "%23 = matmul %21, @wu : f32[T,8]  ; up\n"
    "%24 = weight @wg : f16[8,8]\n"
    "%25 = matmul_ew %21, @wg, %23 {op0=silu, op1=mul, op2=none, op3=none, k0=0, k1=0, k2=0, k3=0} : f32[T,8]  ; par\n"
    "%26 = ew %25, %21, @norm {op0=add, op1=scale, op2=mul, op3=softcap, k0=0, k1=0.5, k2=0, k3=30} : f32[T,8]  ; out\n"
    "%27 = last_row %26 : f32[1,8]\n"
    "%28 = weight @lm : f16[16,8]\n"
    "%29 = matmul %27, @lm : f32[1,16]\n"
    "%30 = output %29 : f32[1,16]  ; logits\n";

/* Primitive ops as -O0 leaves them, the layout ops, and a view into a weight. */
static const char primitive_graph[] =
    "%0 = input {kind=tokens} : i32[T]  ; tokens\n"
    "%1 = input {kind=positions} : i32[T]  ; positions\n"
    "%2 = weight @emb : f32[16,8]\n"
    "%3 = get_rows @emb, %0 : f32[T,8]  ; x\n"
    "%4 = scale %3 {s=2} : f32[T,8]\n"
    "%5 = weight @b : f32[8]\n"
    "%6 = add %4, @b : f32[T,8]\n"
    "%7 = softcap %6 {cap=30} : f32[T,8]\n"
    "%8 = layer_norm %7 {eps=1e-05} : f32[T,8]\n"
    "%9 = softmax %8 {scale=0.5} : f32[T,8]\n"
    "%10 = slice %9 {axis=1, start=2} : f32[T,4]\n"
    "%11 = concat %10, %10 {axis=1} : f32[T,8]\n"
    "%12 = reshape %11 : f32[T,2,4]\n"
    "%13 = weight @ff : f32[2]\n"
    "%14 = rope %12, %1, @ff " ROPE_PARAMS("0.5") " : f32[T,2,4]\n"
    "%15 = permute %14 {perm=[1,0,2]} : f32[2,T,4]\n"
    "%16 = reshape %15 : f32[2,T,4]\n"
    "%17 = rms_norm %9 {eps=1e-05} : f32[T,8]\n"
    "%18 = output %17 : f32[T,8]  ; logits\n"
    "%19 = weight @tab : f32[4,8]\n"
    "%20 = last_row @tab : f32[1,8]\n"
    "%21 = rms_norm %20 {eps=1e-05} : f32[1,8]\n";

/* A mixture-of-experts layer's FFN and MLA's pieces: the router, top-k, the experts' matmuls, their
 * weighted sum, a gate through sigmoid, a broadcast key and a YaRN rope. */
static const char moe_graph[] =
    "%0 = input {kind=tokens} : i32[T]  ; tokens\n"
    "%1 = input {kind=positions} : i32[T]  ; positions\n"
    "%2 = weight @emb : f32[16,8]\n"
    "%3 = get_rows @emb, %0 : f32[T,8]  ; x\n"
    "%4 = weight @router : f32[4,8]\n"
    "%5 = matmul %3, @router : f32[T,4]  ; logits\n"
    "%6 = softmax %5 {scale=1} : f32[T,4]  ; probs\n"
    "%7 = topk %6 {k=2} : i32[T,2]  ; topk\n"
    "%8 = moe_weights %6, %7 {norm=1, scale=1.5} : f32[T,2]  ; weights\n"
    "%9 = weight @up : f16[4,32,8]\n"
    "%10 = matmul_id %3, @up, %7 : f32[T,2,32]  ; up\n"
    "%11 = weight @down : f16[4,8,32]\n"
    "%12 = matmul_id %10, @down, %7 : f32[T,2,8]  ; down\n"
    "%13 = moe_sum %12, %8 : f32[T,8]  ; moe\n"
    "%14 = sigmoid %13 : f32[T,8]  ; gate\n"
    "%15 = reshape %14 : f32[T,1,8]\n"
    "%16 = broadcast %15 : f32[T,2,8]  ; heads\n"
    "%17 = rope %16, %1 {mode=normal, n_dims=8, base=10000, freq_scale=0.25, ext_factor=1, attn_factor=0.878, "
    "beta_fast=32, beta_slow=1, n_ctx_orig=512} : f32[T,2,8]  ; yarn\n"
    "%18 = reshape %17 : f32[T,16]\n"
    "%19 = output %18 : f32[T,16]  ; logits\n";

START_TEST(test_lower_graphs)
{
    static const struct {
        const char *graph, *want;
    } rows[] = {
        /* Offsets: [T, 8] f32 takes 512 bytes at T_max 16; weights take slots in graph order. matmul_rope is a
         * matmul with the bias as its epilogue, then rope in place; kv_store writes the layer's cache;
         * last_row is a view (T - 1) rows into its source. */
        {fused_graph,
         "%3 get_rows A+0 <- W0 tok [T x 8] n_rows=16 row_bytes=32\n"
         "%5 rms_norm A+512 <- A+0 W1 [T x 8] eps=1e-05\n"
         "%8 matmul A+1024 <- A+512 W2 [T x 8] +add(W3 row) n=8 k=8\n"
         "%8 rope A+1024 <- A+1024 - [T x 4] heads=2 head_dim=4 n_dims=4 neox base=10000 attn=1\n"
         "%10 matmul A+1536 <- A+512 W4 [T x 4] n=4 k=8\n"
         "%10 rope A+1536 <- A+1536 - [T x 4] heads=1 head_dim=4 n_dims=4 neox base=10000 attn=1\n"
         "%12 matmul A+1792 <- A+512 W5 [T x 4] n=4 k=8\n"
         "%16 kv_store K0 <- A+1536 [T x 4] row_len=4\n"
         "%17 kv_store V0 <- A+1792 [T x 4] row_len=4\n"
         "%18 attention A+512 <- A+1024 K0 V0 [T x 4] heads=2/1 dims=4/4 scale=0.5 softcap=0 window=0\n"
         "%21 matmul A+1024 <- A+512 W6 [T x 8] +add(A+0) n=8 k=8\n"
         "%23 matmul A+0 <- A+1024 W7 [T x 8] n=8 k=8\n"
         "%25 matmul A+512 <- A+1024 W8 [T x 8] +silu +mul(A+0) n=8 k=8\n"
         "%26 ew A+0 <- A+512 [T x 8] +add(A+1024) +scale(0.5) +mul(W1 row) +softcap(30)\n"
         "%29 matmul A+512 <- A+32T-32 W9 [1 x 16] n=16 k=8\n"
         "%30 copy logits <- A+512 [1 x 16]\n"},
        /* Each elementwise op is a chain of one step; the layout ops see [outer, len, inner]; permute pads
         * to four dimensions. */
        {primitive_graph,
         "%3 get_rows A+0 <- W0 tok [T x 8] n_rows=16 row_bytes=32\n"
         "%4 ew A+512 <- A+0 [T x 8] +scale(2)\n"
         "%6 ew A+0 <- A+512 [T x 8] +add(W1 row)\n"
         "%7 ew A+512 <- A+0 [T x 8] +softcap(30)\n"
         "%8 layer_norm A+0 <- A+512 [T x 8] eps=1e-05\n"
         "%9 softmax A+512 <- A+0 [T x 8] scale=0.5\n"
         "%10 slice A+1024 <- A+512 [T x 4] outer=T inner=1 len=4/8 start=2\n"
         "%11 concat A+0 <- A+1024 A+1024 [T x 8] outer=T inner=1 len=4+4\n"
         "%14 rope A+1024 <- A+0 W2 [T x 4] heads=2 head_dim=4 n_dims=4 neox base=10000 attn=0.5\n"
         "%15 permute A+0 <- A+1024 [2T x 4] dims=1,T,2,4 perm=0,2,1,3\n"
         "%17 rms_norm A+0 <- A+512 - [T x 8] eps=1e-05\n"
         "%18 copy logits <- A+0 [T x 8]\n"
         "%21 rms_norm A+512 <- W3+96 - [1 x 8] eps=1e-05\n"},
        /* The experts' steps: top-k writes i32 ids, matmul_id's rows are the tokens (slots apart), the
         * second takes one row per slot; sigmoid is an elementwise step; YaRN travels with the rope. */
        {moe_graph,
         "%3 get_rows A+4096 <- W0 tok [T x 8] n_rows=16 row_bytes=32\n"
         "%5 matmul A+0 <- A+4096 W1 [T x 4] n=4 k=8\n"
         "%6 softmax A+256 <- A+0 [T x 4] scale=1\n"
         "%7 topk A+5120 <- A+256 [T x 2] n=4 k=2\n"
         "%8 moe_weights A+5248 <- A+256 A+5120 [T x 2] n=4 k=2 norm=1 scale=1.5\n"
         "%10 matmul_id A+0 <- A+4096 W2 A+5120 [T x 32] experts=4 n=32 k=8 slots=2\n"
         "%12 matmul_id A+4096 <- A+0 W3 A+5120 [T x 8] experts=4 n=8 k=32 slots=2 per_slot\n"
         "%13 moe_sum A+0 <- A+4096 A+5248 [T x 8] k=2\n"
         "%14 ew A+1024 <- A+0 [T x 8] +sigmoid\n"
         "%16 broadcast A+0 <- A+1024 [2T x 8] dims=1,T,2,8 from=1,T,1,8\n"
         "%17 rope A+1024 <- A+0 - [T x 8] heads=2 head_dim=8 n_dims=8 normal base=10000 attn=0.878 "
         "yarn=1/512/32/1\n"
         "%19 copy logits <- A+1024 [T x 16]\n"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct lowered x;
        ck_assert_msg(lower_text(&x, rows[i].graph, 64) == 0, "%s", x.err.msg);
        char *d = describe(&x.lp);
        ck_assert_msg(strcmp(d, rows[i].want) == 0, "row %zu:\n%s", i, d);
        free(d);
        lowered_free(&x);
    }
}
END_TEST


/* Graphs the lowering refuses, each with what the message must say. */
#define HEAD "%0 = input {kind=tokens} : i32[T]\n%1 = input {kind=positions} : i32[T]\n%2 = weight @e : f32[16,8]\n" \
             "%3 = get_rows @e, %0 : f32[T,8]  ; x\n"
#define ATTN_HEAD HEAD "%4 = reshape %3 : f32[T,2,4]\n%5 = kv_cache {layer=0, kind=k} : f16[P,2,4]\n" \
                  "%6 = kv_cache {layer=0, kind=v} : f16[P,2,4]\n%7 = kv_store %5, %4 : f16[P+T,2,4]\n" \
                  "%8 = kv_store %6, %4 : f16[P+T,2,4]\n"

static const struct {
    const char *graph, *msg;
    uint32_t missing_kinds; /* the target's */
} refused_rows[] = {
    {HEAD "%4 = weight @w : q4_0[4,32]\n%5 = weight @e2 : f32[16,32]\n%6 = get_rows @e2, %0 : f32[T,32]\n"
          "%7 = matmul %6, @w : f32[T,4]  ; blk.0.attn_q\n",
     "the test backend cannot emit '%7 = matmul %6, @w : f32[T,4]  ; blk.0.attn_q': no test matmul kernel for this "
     "weight type", 0},
    {HEAD "%4 = reshape %3 : f32[T,2,4]\n%5 = rope %4, %1 " ROPE_PARAMS("1") " : f32[T,2,4]\n"
          "%6 = rope %4, %0 " ROPE_PARAMS("1") " : f32[T,2,4]  ; q\n",
     "%6 = rope %4, %0 {mode=neox, n_dims=4, base=10000, freq_scale=1, ext_factor=0, attn_factor=1, beta_fast=32, "
     "beta_slow=1, n_ctx_orig=512} : f32[T,2,4]  ; q': rope positions must be the step's positions", 0},
    {ATTN_HEAD "%9 = attention %4, %7, %8 {scale=0.5, softcap=30, window=0} : f32[T,2,4]  ; attn\n",
     "attention with both a scale and a softcap has no test kernel yet", 0},
    {HEAD "%4 = softmax %3 {scale=1} : f32[T,8]\n%5 = topk %4 {k=2} : i32[T,2]  ; route\n",
     "the test backend cannot emit '%5 = topk %4 {k=2} : i32[T,2]  ; route': the test backend has no kernel for this op "
     "yet", 1u << LOWER_TOPK},
    {HEAD "%4 = weight @w : q4_0[2,4,32]\n%5 = weight @e2 : f32[16,32]\n%6 = get_rows @e2, %0 : f32[T,32]\n"
          "%7 = weight @r : f32[2,32]\n%8 = matmul %6, @r : f32[T,2]\n%9 = topk %8 {k=1} : i32[T,1]\n"
          "%10 = matmul_id %6, @w, %9 : f32[T,1,4]  ; experts\n",
     "': no test matmul kernel for this weight type", 0},
    {HEAD "%4 = reshape %3 : f32[T,2,4]\n%5 = attention %4, %4, %4 {scale=0.5, softcap=0, window=0} : f32[T,2,4]\n",
     "attention must read the KV cache after this step's kv_store", 0},
};

START_TEST(test_lower_refuses)
{
    struct lowered x;
    int rc = lower_text_for(&x, refused_rows[_i].graph, 64, refused_rows[_i].missing_kinds);
    ck_assert_msg(rc == -1, "row %d lowered", _i);
    ck_assert_msg(strstr(x.err.msg, refused_rows[_i].msg) != NULL, "row %d: '%s' lacks '%s'", _i, x.err.msg,
                  refused_rows[_i].msg);
    ck_assert_ptr_null(x.lp.steps); /* nothing is left behind */
    lowered_free(&x);
}
END_TEST

/* The batched step of the fused layer, for up to 4 sequences: the body as prefill, rope, the cache stores and
 * attention per sequence; last_row gathers each sequence's last row past the plan's peak (2048 bytes),
 * 4 rows of 8 floats (128 bytes, aligned to 64), and the tail's matmul and the logits run over R rows. */
START_TEST(test_lower_batched)
{
    struct lowered x;
    ck_assert_msg(lower_text(&x, fused_graph, 64) == 0, "%s", x.err.msg);
    lower_program_free(&x.lp);
    struct lower_target t = test_target;
    ck_assert_msg(lower_program_batched(&x.lp, x.g, &x.c, &x.pb, &t, 4, &x.err) == 0, "%s", x.err.msg);
    char *d = describe(&x.lp);
    static const char want[] =
        "%3 get_rows A+0 <- W0 tok [T x 8] n_rows=16 row_bytes=32\n"
        "%5 rms_norm A+512 <- A+0 W1 [T x 8] eps=1e-05\n"
        "%8 matmul A+1024 <- A+512 W2 [T x 8] +add(W3 row) n=8 k=8\n"
        "%8 rope/seq A+1024 <- A+1024 - [T x 4] heads=2 head_dim=4 n_dims=4 neox base=10000 attn=1\n"
        "%10 matmul A+1536 <- A+512 W4 [T x 4] n=4 k=8\n"
        "%10 rope/seq A+1536 <- A+1536 - [T x 4] heads=1 head_dim=4 n_dims=4 neox base=10000 attn=1\n"
        "%12 matmul A+1792 <- A+512 W5 [T x 4] n=4 k=8\n"
        "%16 kv_store/seq K0 <- A+1536 [T x 4] row_len=4\n"
        "%17 kv_store/seq V0 <- A+1792 [T x 4] row_len=4\n"
        "%18 attention/seq A+512 <- A+1024 K0 V0 [T x 4] heads=2/1 dims=4/4 scale=0.5 softcap=0 window=0\n"
        "%21 matmul A+1024 <- A+512 W6 [T x 8] +add(A+0) n=8 k=8\n"
        "%23 matmul A+0 <- A+1024 W7 [T x 8] n=8 k=8\n"
        "%25 matmul A+512 <- A+1024 W8 [T x 8] +silu +mul(A+0) n=8 k=8\n"
        "%26 ew A+0 <- A+512 [T x 8] +add(A+1024) +scale(0.5) +mul(W1 row) +softcap(30)\n"
        "%27 last_rows A+2048 <- A+0 [R x 8]\n"
        "%29 matmul A+2176 <- A+2048 W9 [R x 16] n=16 k=8\n"
        "%30 copy logits <- A+2176 [R x 16]\n";
    ck_assert_msg(strcmp(d, want) == 0, "%s", d);
    ck_assert_uint_eq(x.lp.arena_bytes, 2176 + 256);
    ck_assert_int_eq(x.lp.max_seqs, 4);
    free(d);
    lower_program_free(&x.lp);
    /* Graphs with no batched step say why. */
    static const struct {
        const char *graph, *msg;
    } refused[] = {
        {primitive_graph, "the graph's output is not the logits of its last row"},
        {HEAD "%4 = last_row %3 : f32[1,8]\n%5 = weight @b : f32[8]\n%6 = scale @b {s=2} : f32[8]\n"
              "%7 = add %4, %6 : f32[1,8]\n%8 = output %7 : f32[1,8]  ; logits\n",
         "'add' after the last row is taken reads a value from before"},
    };
    lowered_free(&x);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        ck_assert_msg(lower_text(&x, refused[i].graph, 64) == 0, "%s", x.err.msg);
        lower_program_free(&x.lp);
        ck_assert_msg(lower_program_batched(&x.lp, x.g, &x.c, &x.pb, &t, 4, &x.err) == -1, "row %zu was lowered", i);
        ck_assert_msg(strstr(x.err.msg, refused[i].msg), "row %zu: '%s'", i, x.err.msg);
        lowered_free(&x);
    }
}
END_TEST

/* The arena is planned and referred to at the target's alignment: 64 bytes for the CPU, more for a GPU
 * whose storage buffers must start at multiples of 256. */
START_TEST(test_lower_alignment)
{
    static const uint64_t alignments[] = {64, 256, 4096};
    uint64_t peak[3];
    for (int i = 0; i < 3; i++) {
        struct lowered x;
        ck_assert_msg(lower_text(&x, primitive_graph, alignments[i]) == 0, "%s", x.err.msg);
        ck_assert_uint_eq(x.c.plan.peak % alignments[i], 0);
        ck_assert_msg(plan_check(x.c.plan.buf, x.c.plan.n, alignments[i], x.c.plan.peak, &x.err) == 0, "%s",
                      x.err.msg);
        for (uint32_t n = 0; n < x.g->n_nodes; n++) {
            const struct lower_ref *r = &x.lp.ref[n];
            if (r->base == LOWER_ARENA && lower_size_is_const(r->offset))
                ck_assert_msg(r->offset.k % (int64_t)alignments[i] == 0, "%%%" PRIu32 " at %" PRId64, n, r->offset.k);
        }
        peak[i] = x.lp.arena_bytes;
        lowered_free(&x);
    }
    /* The token ids and positions (64 bytes at T_max 16) take a whole aligned slot each. */
    ck_assert_uint_eq(peak[0], 3 * 512 + 64);
    ck_assert_uint_eq(peak[1], 3 * 512 + 256);
    ck_assert_uint_eq(peak[2] % 4096, 0);
    ck_assert_uint_gt(peak[2], peak[1]);
    /* The C backend plans for its own alignment. */
    ck_assert_uint_eq(emit_c_target.arena_alignment, 64);
}
END_TEST

/* ---- The C printer ------------------------------------------------------------------------------ */

/* The C of both graphs (every step kind, every elementwise step) compiles with no warnings. */
START_TEST(test_c_compiles)
{
    static const char *const graphs[] = {fused_graph, primitive_graph, moe_graph};
    const char *inc = getenv("AE_RUNTIME_INCLUDE");
    ck_assert_msg(inc && *inc, "AE_RUNTIME_INCLUDE is not set: run the tests through make check");
    struct lowered x;
    ck_assert_msg(lower_text(&x, graphs[_i], 64) == 0, "%s", x.err.msg);
    struct import_hparams hp = {.arch = "test", .n_vocab = 16, .n_layer = 1, .n_head_kv = 1, .head_dim_k = 4,
                                .head_dim_v = 4, .n_ctx_train = 64, .n_ctx = 64, .n_ctx_min = 16, .n_ctx_max = 64};
    struct emit_options o = {.model_file = "graph.ir", .model_name = "a \"test\" */ model", .info = "line 1\nline 2",
                             .compiler = "aetherc (test)", .t_max = 16};
    char path[] = "/tmp/check_emit_XXXXXX.c";
    int fd = mkstemps(path, 2);
    ck_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_msg(emit_c(f, x.g, &x.c, &x.pb, &hp, &o, &x.err) == 0, "%s", x.err.msg);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "gcc -std=c17 -O0 -Wall -Wextra -Werror -I%s -fsyntax-only %s 2>&1", inc, path);
    FILE *p = popen(cmd, "r");
    char log[4096] = "";
    size_t n = fread(log, 1, sizeof log - 1, p);
    log[n] = 0;
    int rc = pclose(p);
    ck_assert_msg(rc == 0, "the C of graph %d has warnings:\n%s", _i, log);
    /* The program names the kernel tables of the types its matmuls read, and no other. */
    static const char *const kernels[] = {
        "kernels[] = {&ae_kernels_f16, NULL};",
        "kernels[] = {NULL};",
        "kernels[] = {&ae_kernels_f32, &ae_kernels_f16, NULL};",
    };
    size_t c_len;
    char *c = test_read_file(path, &c_len);
    ck_assert_msg(memmem(c, c_len, kernels[_i], strlen(kernels[_i])), "graph %d does not name its kernel tables as %s",
                  _i, kernels[_i]);
    free(c);
    unlink(path);
    lowered_free(&x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("emit");
    TCase *tc = tcase_create("emit");
    tcase_add_test(tc, test_templates);
    tcase_add_test(tc, test_lower_graphs);
    tcase_add_loop_test(tc, test_lower_refuses, 0, (int)(sizeof refused_rows / sizeof refused_rows[0]));
    tcase_add_test(tc, test_lower_alignment);
    tcase_add_test(tc, test_lower_batched);
    tcase_add_loop_test(tc, test_c_compiles, 0, 3);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
