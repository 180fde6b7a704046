/* Tests of the graph IR (ir/): the op tables, the builders, ir_verify on broken graphs, the edits
 * passes make, the text printer and parser, and the YAML form.
 *
 * Rows of broken graphs each name the problem ir_verify must report; rows of bad text each name the
 * parser's message. The round trip print(parse(print(g))) == print(g) runs on the imported graph of
 * every shared model, and two imported graphs are compared with golden dumps in tests/ir/.
 */
#include "import.h"
#include "ir.h"
#include "ir_fused.h"
#include "test_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- Ops ---------------------------------------------------------------------------------------- */

START_TEST(test_op_tables)
{
    for (int op = 0; op < IR_OP_COUNT; op++) {
        const char *name = ir_op_name((enum ir_op)op);
        ck_assert_int_eq(ir_op_from_name(name, strlen(name)), op);
        ck_assert_uint_le(ir_op_min_src((enum ir_op)op), ir_op_max_src((enum ir_op)op));
        ck_assert_uint_le(ir_op_max_src((enum ir_op)op), IR_MAX_SRC);
        ck_assert(ir_op_has((enum ir_op)op, IR_PROP_LEAF) == (ir_op_max_src((enum ir_op)op) == 0));
    }
    ck_assert_int_eq(ir_op_from_name("frobnicate", 10), -1);
    ck_assert(ir_op_has(IR_OP_ADD, IR_PROP_COMMUTATIVE) && ir_op_has(IR_OP_ADD, IR_PROP_ELEMENTWISE));
    ck_assert(!ir_op_has(IR_OP_MATMUL, IR_PROP_COMMUTATIVE));
    ck_assert(ir_op_has(IR_OP_RESHAPE, IR_PROP_VIEW) && ir_op_has(IR_OP_KV_STORE, IR_PROP_STATEFUL));
    ck_assert_uint_eq(ir_op_max_src(IR_OP_ROPE), 3);
    ck_assert_int_eq(ir_name_layer("blk.12.attn_q"), 12);
    ck_assert_int_eq(ir_name_layer("blk.7"), 7);
    ck_assert_int_eq(ir_name_layer("blk.x"), -1);
    ck_assert_int_eq(ir_name_layer("blk.3x"), -1);
    ck_assert_int_eq(ir_name_layer("output_norm"), -1);
    ck_assert_int_eq(ir_name_layer(NULL), -1);
}
END_TEST

/* The step and fused facts of ops.def, as the tables made from it give them. */
static const struct {
    enum ir_op op;
    bool operand, k;
} step_rows[] = {
    {IR_OP_ADD, true, false},  {IR_OP_MUL, true, false},   {IR_OP_SCALE, false, true},
    {IR_OP_SILU, false, false}, {IR_OP_GELU, false, false}, {IR_OP_SOFTCAP, false, true},
};

START_TEST(test_op_steps)
{
    uint32_t n_steps = 0, n_fused = 0;
    for (int i = 0; i < IR_OP_COUNT; i++) {
        enum ir_op op = (enum ir_op)i;
        enum ir_ew_step s = ir_ew_step_of(op);
        n_fused += ir_op_is_fused(op);
        if (s == IR_EW_NONE)
            continue;
        /* Every step op is a primitive elementwise op of one or two sources, with at most one parameter
         * (an f32: the step's constant), and its step leads back to it. */
        n_steps++;
        ck_assert_int_eq(ir_ew_step_op(s), op);
        ck_assert(ir_op_has(op, IR_PROP_ELEMENTWISE) && !ir_op_is_fused(op));
        ck_assert_uint_eq(ir_op_min_src(op), ir_op_max_src(op));
        ck_assert(ir_op_min_src(op) == 1 || ir_op_min_src(op) == 2);
        uint32_t n_params;
        ir_op_params(op, &n_params);
        ck_assert_uint_le(n_params, 1);
        ck_assert(ir_ew_step_has_k(s) == (n_params == 1));
    }
    ck_assert_uint_eq(n_steps, IR_EW_STEP_COUNT - 1);
    ck_assert_uint_eq(n_fused, 4);
    ck_assert(ir_op_is_fused(IR_OP_EW) && ir_op_is_fused(IR_OP_MATMUL_EW) && ir_op_is_fused(IR_OP_RMS_NORM_MUL) &&
              ir_op_is_fused(IR_OP_MATMUL_ROPE));
    ck_assert_int_eq(ir_ew_step_of(IR_OP_MATMUL), IR_EW_NONE);
    ck_assert_int_eq(ir_ew_step_op(IR_EW_NONE), IR_OP_COUNT);
    for (size_t i = 0; i < sizeof step_rows / sizeof step_rows[0]; i++) {
        enum ir_ew_step s = ir_ew_step_of(step_rows[i].op);
        ck_assert_msg(s != IR_EW_NONE, "%s is a step", ir_op_name(step_rows[i].op));
        ck_assert(ir_ew_step_has_operand(s) == step_rows[i].operand);
        ck_assert(ir_ew_step_has_k(s) == step_rows[i].k);
    }
    /* A step's constant is its op's parameter. */
    struct ir_graph *g = ir_graph_create();
    struct ir_node *x = ir_weight(g, "x", AE_TYPE_F32, 1, (int64_t[]){8});
    ck_assert(ir_ew_step_k(ir_scale(g, x, 0.5f)) == 0.5f);
    ck_assert(ir_ew_step_k(ir_softcap(g, x, 30.0f)) == 30.0f);
    ck_assert(ir_ew_step_k(ir_silu(g, x)) == 0.0f);
    ir_graph_destroy(g);
}
END_TEST

/* ---- Builders ----------------------------------------------------------------------------------- */

/* One attention layer of a tiny model, built by hand: every builder, a valid graph. */
static struct ir_graph *build_small(void)
{
    struct ir_graph *g = ir_graph_create();
    struct ir_node *tok = ir_input(g, IR_INPUT_TOKENS);
    struct ir_node *pos = ir_input(g, IR_INPUT_POSITIONS);
    struct ir_node *emb = ir_weight(g, "token_embd.weight", AE_TYPE_Q8_0, 2, (int64_t[]){16, 64});
    struct ir_node *x = ir_get_rows(g, emb, tok);
    struct ir_node *nw = ir_weight(g, "blk.0.attn_norm.weight", AE_TYPE_F32, 1, (int64_t[]){64});
    struct ir_node *h = ir_mul(g, ir_rms_norm(g, x, 1e-5f), nw);
    ir_node_set_name(g, h, "blk.0.attn_norm");
    struct ir_node *wq = ir_weight(g, "blk.0.attn_q.weight", AE_TYPE_Q4_K, 2, (int64_t[]){256, 64 * 4});
    (void)wq;
    struct ir_node *wqkv = ir_weight(g, "blk.0.attn_qkv.weight", AE_TYPE_F16, 2, (int64_t[]){128, 64});
    struct ir_node *qkv = ir_matmul(g, wqkv, h);
    struct ir_node *q = ir_reshape(g, ir_slice(g, qkv, 1, 0, 64), 3, (int64_t[]){IR_DIM_T, 4, 16});
    struct ir_node *k = ir_reshape(g, ir_slice(g, qkv, 1, 64, 32), 3, (int64_t[]){IR_DIM_T, 2, 16});
    struct ir_node *v = ir_reshape(g, ir_slice(g, qkv, 1, 96, 32), 3, (int64_t[]){IR_DIM_T, 2, 16});
    struct ir_rope_params rp = {IR_ROPE_NEOX, 16, 512, 10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f};
    struct ir_node *ff = ir_weight(g, "rope_freqs.weight", AE_TYPE_F32, 1, (int64_t[]){8});
    q = ir_scale(g, ir_rope(g, q, pos, ff, &rp), 0.25f);
    k = ir_rope(g, k, pos, NULL, &rp);
    struct ir_node *kc = ir_kv_store(g, ir_kv_cache(g, 0, IR_KV_K, IR_F16, 2, 16), k);
    struct ir_node *vc = ir_kv_store(g, ir_kv_cache(g, 0, IR_KV_V, IR_F32, 2, 16), v);
    struct ir_node *a = ir_attention(g, q, kc, vc, 1.0f, 50.0f, 4096);
    a = ir_reshape(g, a, 2, (int64_t[]){IR_DIM_T, 64});
    struct ir_node *cat = ir_concat(g, a, x, 1);
    struct ir_node *p = ir_permute(g, cat, (int32_t[]){1, 0});
    p = ir_softmax(g, ir_permute(g, p, (int32_t[]){1, 0}), 0.5f);
    struct ir_node *y1 = ir_gelu(g, ir_slice(g, p, 1, 0, 64));
    struct ir_node *y2 = ir_silu(g, ir_layer_norm(g, x, 1e-6f));
    struct ir_node *y = ir_softcap(g, ir_last_row(g, ir_add(g, y1, y2)), 30.0f);
    ir_output(g, y, "logits");
    return g;
}

static const char small_text[] =
    "%0 = input {kind=tokens} : i32[T]\n"
    "%1 = input {kind=positions} : i32[T]\n"
    "%2 = weight @token_embd.weight : q8_0[16,64]\n"
    "%3 = get_rows @token_embd.weight, %0 : f32[T,64]\n"
    "%4 = weight @blk.0.attn_norm.weight : f32[64]\n"
    "%5 = rms_norm %3 {eps=1e-05} : f32[T,64]\n"
    "%6 = mul %5, @blk.0.attn_norm.weight : f32[T,64]  ; blk.0.attn_norm\n"
    "%7 = weight @blk.0.attn_q.weight : q4_k[256,256]\n"
    "%8 = weight @blk.0.attn_qkv.weight : f16[128,64]\n"
    "%9 = matmul %6, @blk.0.attn_qkv.weight : f32[T,128]\n"
    "%10 = slice %9 {axis=1, start=0} : f32[T,64]\n"
    "%11 = reshape %10 : f32[T,4,16]\n"
    "%12 = slice %9 {axis=1, start=64} : f32[T,32]\n"
    "%13 = reshape %12 : f32[T,2,16]\n"
    "%14 = slice %9 {axis=1, start=96} : f32[T,32]\n"
    "%15 = reshape %14 : f32[T,2,16]\n"
    "%16 = weight @rope_freqs.weight : f32[8]\n"
    "%17 = rope %11, %1, @rope_freqs.weight {mode=neox, n_dims=16, base=10000, freq_scale=1, ext_factor=0, "
    "attn_factor=1, beta_fast=32, beta_slow=1, n_ctx_orig=512} : f32[T,4,16]\n"
    "%18 = scale %17 {s=0.25} : f32[T,4,16]\n"
    "%19 = rope %13, %1 {mode=neox, n_dims=16, base=10000, freq_scale=1, ext_factor=0, attn_factor=1, "
    "beta_fast=32, beta_slow=1, n_ctx_orig=512} : f32[T,2,16]\n"
    "%20 = kv_cache {layer=0, kind=k} : f16[P,2,16]\n"
    "%21 = kv_store %20, %19 : f16[P+T,2,16]\n"
    "%22 = kv_cache {layer=0, kind=v} : f32[P,2,16]\n"
    "%23 = kv_store %22, %15 : f32[P+T,2,16]\n"
    "%24 = attention %18, %21, %23 {scale=1, softcap=50, window=4096} : f32[T,4,16]\n"
    "%25 = reshape %24 : f32[T,64]\n"
    "%26 = concat %25, %3 {axis=1} : f32[T,128]\n"
    "%27 = permute %26 {perm=[1,0]} : f32[128,T]\n"
    "%28 = permute %27 {perm=[1,0]} : f32[T,128]\n"
    "%29 = softmax %28 {scale=0.5} : f32[T,128]\n"
    "%30 = slice %29 {axis=1, start=0} : f32[T,64]\n"
    "%31 = gelu %30 : f32[T,64]\n"
    "%32 = layer_norm %3 {eps=1e-06} : f32[T,64]\n"
    "%33 = silu %32 : f32[T,64]\n"
    "%34 = add %31, %33 : f32[T,64]\n"
    "%35 = last_row %34 : f32[1,64]\n"
    "%36 = softcap %35 {cap=30} : f32[1,64]\n"
    "%37 = output %36 : f32[1,64]  ; logits\n";

static void assert_valid(const struct ir_graph *g)
{
    ae_error err = {{0}};
    ck_assert_msg(ir_verify(g, &err) == 0, "%s", err.msg);
}

START_TEST(test_builders)
{
    struct ir_graph *g = build_small();
    assert_valid(g);
    char *text = ir_print_string(g);
    ck_assert_str_eq(text, small_text);
    free(text);
    ck_assert_int_eq(g->nodes[9]->layer, -1);
    ck_assert_int_eq(g->nodes[6]->layer, 0);
    ck_assert_int_eq(ir_node_numel(g->nodes[21], 3, 5), 8 * 2 * 16);
    ck_assert_int_eq(ir_node_numel(g->nodes[27], 3, 5), 128 * 3);
    char buf[16];
    int need = ir_print_node(g->nodes[9], buf, sizeof buf);
    ck_assert_int_eq(need, (int)strlen("%9 = matmul %6, @blk.0.attn_qkv.weight : f32[T,128]"));
    ck_assert_uint_eq(strlen(buf), sizeof buf - 1);
    ir_graph_destroy(g);
}
END_TEST

/* ---- ir_verify on broken graphs ----------------------------------------------------------------- */

/* A valid start: tokens -> embedding rows [T,32] -> silu -> silu. */
struct base {
    struct ir_graph *g;
    struct ir_node *tok, *w, *e, *s1, *s2;
};

static struct base base_graph(void)
{
    struct base b;
    b.g = ir_graph_create();
    b.tok = ir_input(b.g, IR_INPUT_TOKENS);
    b.w = ir_weight(b.g, "w", AE_TYPE_F32, 2, (int64_t[]){16, 32});
    b.e = ir_get_rows(b.g, b.w, b.tok);
    b.s1 = ir_silu(b.g, b.e);
    b.s2 = ir_silu(b.g, b.s1);
    return b;
}

static void break_cycle(struct base *b) { b->s1->src[0] = b->s2; }
static void break_null(struct base *b) { b->s1->src[0] = NULL; }
static void break_arity(struct base *b) { b->s1->n_src = 2, b->s1->src[1] = b->e; }
static void break_foreign(struct base *b)
{
    static struct ir_node stranger;
    stranger = *b->e;
    b->s1->src[0] = &stranger;
}
static void break_ids(struct base *b)
{
    struct ir_node *t = b->g->nodes[3];
    b->g->nodes[3] = b->g->nodes[4];
    b->g->nodes[4] = t;
}
static void break_matmul(struct base *b) { ir_matmul(b->g, ir_weight(b->g, "w2", AE_TYPE_F32, 2, (int64_t[]){8, 16}), b->e); }
static void break_dtype(struct base *b) { ir_add(b->g, b->e, b->tok); }
static void break_broadcast(struct base *b) { ir_add(b->g, b->e, ir_weight(b->g, "bias", AE_TYPE_F32, 1, (int64_t[]){16})); }
static void break_reshape(struct base *b) { ir_reshape(b->g, b->e, 2, (int64_t[]){IR_DIM_T, 31}); }
static void break_reshape_symbol(struct base *b) { ir_reshape(b->g, b->e, 2, (int64_t[]){IR_DIM_P, 32}); }
static void break_kv_store(struct base *b) { ir_kv_store(b->g, b->e, b->e); }
static void break_two_stores(struct base *b)
{
    struct ir_node *c = ir_kv_cache(b->g, 0, IR_KV_K, IR_F16, 2, 16);
    struct ir_node *x = ir_reshape(b->g, b->e, 3, (int64_t[]){IR_DIM_T, 2, 16});
    ir_kv_store(b->g, c, x);
    ir_kv_store(b->g, c, x);
}
static void break_two_caches(struct base *b)
{
    ir_kv_cache(b->g, 1, IR_KV_V, IR_F16, 2, 16);
    ir_kv_cache(b->g, 1, IR_KV_V, IR_F32, 2, 16);
}
static void break_cache_type(struct base *b) { ir_kv_cache(b->g, 0, IR_KV_K, AE_TYPE_Q8_0, 2, 16); }
static void break_rope(struct base *b)
{
    struct ir_node *x = ir_reshape(b->g, b->e, 3, (int64_t[]){IR_DIM_T, 2, 16});
    struct ir_rope_params rp = {IR_ROPE_NORMAL, 3, 512, 10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f};
    ir_rope(b->g, x, ir_input(b->g, IR_INPUT_POSITIONS), NULL, &rp);
}
static void break_rope_factors(struct base *b)
{
    struct ir_node *x = ir_reshape(b->g, b->e, 3, (int64_t[]){IR_DIM_T, 2, 16});
    struct ir_rope_params rp = {IR_ROPE_NORMAL, 16, 512, 10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f};
    ir_rope(b->g, x, ir_input(b->g, IR_INPUT_POSITIONS), ir_weight(b->g, "ff", AE_TYPE_F32, 1, (int64_t[]){16}), &rp);
}
static void break_attention(struct base *b)
{
    struct ir_node *q = ir_reshape(b->g, b->e, 3, (int64_t[]){IR_DIM_T, 4, 8});
    struct ir_node *w = ir_weight(b->g, "w24", AE_TYPE_F32, 2, (int64_t[]){16, 24});
    struct ir_node *k = ir_reshape(b->g, ir_get_rows(b->g, w, b->tok), 3, (int64_t[]){IR_DIM_T, 3, 8});
    ir_attention(b->g, q, k, k, 1.0f, 0.0f, 0);
}
static void break_duplicate_weight(struct base *b) { ir_weight(b->g, "w", AE_TYPE_F32, 2, (int64_t[]){16, 32}); }
static void break_weight_name(struct base *b) { ir_weight(b->g, "a b", AE_TYPE_F32, 1, (int64_t[]){4}); }
static void break_block_size(struct base *b) { ir_weight(b->g, "q", AE_TYPE_Q4_0, 2, (int64_t[]){2, 16}); }
static void break_weight_symbol(struct base *b) { ir_weight(b->g, "q", AE_TYPE_F32, 2, (int64_t[]){IR_DIM_T, 16}); }
static void break_output_name(struct base *b) { ir_output(b->g, b->s2, NULL); }
static void break_slice(struct base *b) { ir_slice(b->g, b->e, 1, 30, 4); }
static void break_permute(struct base *b) { ir_permute(b->g, b->e, (int32_t[]){0, 0}); }
static void break_concat(struct base *b) { ir_concat(b->g, b->e, b->tok, 0); }
static void break_softcap(struct base *b) { ir_softcap(b->g, b->e, 0.0f); }
static void break_dead(struct base *b) { ir_node_kill(b->s1); }
static void break_shape(struct base *b) { b->s2->shape[1] = 31; }
static void break_dim(struct base *b) { b->s2->shape[1] = -7; }

static const struct broken_row {
    const char *what;
    void (*breaker)(struct base *b);
    const char *message; /* must appear in ir_verify's error */
} broken_rows[] = {
    {"cycle", break_cycle, "not defined before it"},
    {"undefined source", break_null, "undefined"},
    {"arity", break_arity, "2 sources, expected 1..1"},
    {"foreign source", break_foreign, "not a node of this graph"},
    {"ids out of order", break_ids, "ids must equal positions"},
    {"matmul shapes", break_matmul, "row length 16"},
    {"dtype", break_dtype, "dtype i32, expected f32"},
    {"broadcast", break_broadcast, "one row of its last dimension"},
    {"reshape count", break_reshape, "different element count"},
    {"reshape symbol", break_reshape_symbol, "different element count"},
    {"kv_store source", break_kv_store, "expected a kv_cache"},
    {"two stores", break_two_stores, "already written"},
    {"two caches", break_two_caches, "already has this cache"},
    {"cache dtype", break_cache_type, "expected f32 or f16"},
    {"rope n_dims", break_rope, "n_dims 3"},
    {"rope factors", break_rope_factors, "frequency factors [16], expected [8]"},
    {"attention heads", break_attention, "not a multiple of 3 kv heads"},
    {"duplicate weight", break_duplicate_weight, "weight w is already %1"},
    {"weight name", break_weight_name, "without spaces"},
    {"block size", break_block_size, "block size 32"},
    {"weight symbol", break_weight_symbol, "constant dimensions"},
    {"output name", break_output_name, "needs a name"},
    {"slice range", break_slice, "does not fit"},
    {"permutation", break_permute, "not a permutation"},
    {"concat", break_concat, "dtype"},
    {"softcap", break_softcap, "must be positive"},
    {"dead node", break_dead, "marked dead"},
    {"shape", break_shape, "shape [T,31], expected [T,32]"},
    {"bad dim", break_dim, "dimension is invalid"},
};
#define N_BROKEN ((int)(sizeof broken_rows / sizeof broken_rows[0]))

START_TEST(test_verify_catches)
{
    const struct broken_row *row = &broken_rows[_i];
    struct base b = base_graph();
    assert_valid(b.g);
    row->breaker(&b);
    ae_error err = {{0}};
    ck_assert_msg(ir_verify(b.g, &err) == -1, "%s: ir_verify accepted the graph", row->what);
    ck_assert_msg(strstr(err.msg, row->message) != NULL, "%s: expected \"%s\" in \"%s\"", row->what, row->message,
                  err.msg);
    ck_assert_msg(strstr(err.msg, "%") != NULL, "%s: the message does not name a node: %s", row->what, err.msg);
    ir_graph_destroy(b.g);
}
END_TEST

/* ---- Edits -------------------------------------------------------------------------------------- */

START_TEST(test_sort)
{
    struct ir_graph *g = build_small();
    /* Reverse the order: invalid until sorted, valid after, with the same nodes. */
    for (uint32_t i = 0; i < g->n_nodes / 2; i++) {
        struct ir_node *t = g->nodes[i];
        g->nodes[i] = g->nodes[g->n_nodes - 1 - i];
        g->nodes[g->n_nodes - 1 - i] = t;
    }
    for (uint32_t i = 0; i < g->n_nodes; i++)
        g->nodes[i]->id = i;
    ae_error err = {{0}};
    ck_assert_int_eq(ir_verify(g, &err), -1);
    ck_assert_msg(ir_graph_sort(g, &err) == 0, "%s", err.msg);
    assert_valid(g);
    ck_assert_int_eq(g->n_nodes, 38);
    ir_graph_destroy(g);

    struct base b = base_graph();
    break_cycle(&b);
    ck_assert_int_eq(ir_graph_sort(b.g, &err), -1);
    ck_assert_msg(strstr(err.msg, "cycle"), "%s", err.msg);
    ir_graph_destroy(b.g);
}
END_TEST

START_TEST(test_replace_kill_compact)
{
    struct base b = base_graph();
    /* s2 = silu(s1) becomes silu(e); s1 is then unused and removed. */
    struct ir_node *t = ir_scale(b.g, b.s2, 2.0f);
    ck_assert_uint_eq(ir_replace_uses(b.g, b.s1, b.e), 1);
    ck_assert_uint_eq(ir_replace_uses(b.g, b.s1, b.e), 0);
    ir_node_kill(b.s1);
    ir_graph_compact(b.g);
    assert_valid(b.g);
    ck_assert_uint_eq(b.g->n_nodes, 5);
    ck_assert_ptr_eq(b.s2->src[0], b.e);
    ck_assert_uint_eq(t->id, 4);
    char *text = ir_print_string(b.g);
    ck_assert_str_eq(text, "%0 = input {kind=tokens} : i32[T]\n"
                           "%1 = weight @w : f32[16,32]\n"
                           "%2 = get_rows @w, %0 : f32[T,32]\n"
                           "%3 = silu %2 : f32[T,32]\n"
                           "%4 = scale %3 {s=2} : f32[T,32]\n");
    free(text);
    ir_graph_destroy(b.g);
}
END_TEST

/* ---- Text form ---------------------------------------------------------------------------------- */

static void assert_round_trip(const struct ir_graph *g, const char *what)
{
    ae_error err = {{0}};
    char *text = ir_print_string(g);
    ck_assert(text != NULL);
    struct ir_graph *g2;
    ck_assert_msg(ir_parse(&g2, text, strlen(text), what, &err) == 0, "%s", err.msg);
    ck_assert_msg(ir_verify(g2, &err) == 0, "%s: the parsed graph is invalid: %s", what, err.msg);
    char *text2 = ir_print_string(g2);
    ck_assert_msg(strcmp(text, text2) == 0, "%s: print(parse(print(g))) differs from print(g)", what);
    ck_assert_uint_eq(g->n_nodes, g2->n_nodes);
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        ck_assert(memcmp(&g->nodes[i]->p, &g2->nodes[i]->p, sizeof g->nodes[i]->p) == 0);
        ck_assert_int_eq(g->nodes[i]->layer, g2->nodes[i]->layer);
    }
    free(text2);
    free(text);
    ir_graph_destroy(g2);
}

START_TEST(test_round_trip_small)
{
    struct ir_graph *g = build_small();
    assert_round_trip(g, "small");
    ir_graph_destroy(g);
    /* Comments, blank lines and ids that are not dense parse; printing renumbers. */
    const char *text = "; a comment\n\n   %5 = input {kind=tokens} : i32[T]\n"
                       "%9=input{kind=positions}:i32[ T ]  ;  pos\n"
                       "%2 = weight @blk.3.w : bf16[4,8]\n"
                       "%7 = get_rows @blk.3.w,%5 : f32[T,8]  ; blk.3.rows\r\n";
    ae_error err = {{0}};
    ck_assert_msg(ir_parse(&g, text, strlen(text), "t", &err) == 0, "%s", err.msg);
    assert_valid(g);
    char *out = ir_print_string(g);
    ck_assert_str_eq(out, "%0 = input {kind=tokens} : i32[T]\n"
                          "%1 = input {kind=positions} : i32[T]  ; pos\n"
                          "%2 = weight @blk.3.w : bf16[4,8]\n"
                          "%3 = get_rows @blk.3.w, %0 : f32[T,8]  ; blk.3.rows\n");
    ck_assert_int_eq(g->nodes[2]->layer, 3);
    ck_assert_int_eq(g->nodes[3]->layer, 3);
    free(out);
    ir_graph_destroy(g);
}
END_TEST

static const struct parse_row {
    const char *text;
    const char *message;
} parse_rows[] = {
    {"%0 = frob : f32[T]", "t:1:6: expected an op name, found 'frob"},
    {"%0 = silu %1 : f32[T]", "%1 is used before it is defined"},
    {"%0 = input {kind=tokens} : x99[T]", "expected a ggml type name"},
    {"%0 = input {kind=tokens} : i32[Q]", "expected a dimension"},
    {"%0 = input {kind=bananas} : i32[T]", "one of the parameter's names"},
    {"%0 = input {flavor=1} : i32[T]", "a parameter of this op"},
    {"%0 = silu {eps=1} : f32[T]", "takes 1 to 1 operands"},
    {"%0 = input {kind=tokens} : i32[T]\n%0 = input {kind=positions} : i32[T]", "t:2: %0 is defined twice"},
    {"%0 = input {kind=tokens} i32[T]", "expected ':' before the type"},
    {"%0 = matmul %1, @w : f32[T,4]", "is used before it is defined"},
    {"%0 = weight @w : f32[4]\n%1 = matmul %0, @v : f32[4]", "weight @v is used before"},
    {"%0 = weight @w : f32[4]\n%1 = weight @w : f32[4]", "weight @w is defined twice"},
    {"%0 = input {kind=tokens} : i32[T] junk", "expected the end of the line"},
    {"%0 = input {kind=tokens} : i32[T,", "a dimension"},
    {"%0 = scale %0 {s=abc} : f32[T]", "used before"},
    {"%0 = input {kind=tokens} : i32[T]\n%1 = scale %0 {s=abc} : f32[T]", "expected a number"},
    {"%0 = input {kind=tokens} : i32[T]\n%1 = permute %0 {perm=[0,1,2,3,4]} : i32[T]", "at most 4"},
    {"%0 = input {kind=tokens} : i32[T]\n%1 = permute %0 {perm=[1,0]} : i32[T]", "one entry per dimension"},
    {"0 = input {kind=tokens} : i32[T]", "expected '%' starting a node line"},
    {"%99999999 = input {kind=tokens} : i32[T]", "below 2^24"},
    {"%0 = input {kind=tokens} : i32[T]  ;", "an origin name"},
};
#define N_PARSE_ROWS ((int)(sizeof parse_rows / sizeof parse_rows[0]))

START_TEST(test_parse_errors)
{
    const struct parse_row *row = &parse_rows[_i];
    struct ir_graph *g = NULL;
    ae_error err = {{0}};
    ck_assert_msg(ir_parse(&g, row->text, strlen(row->text), "t", &err) == -1, "accepted: %s", row->text);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(err.msg, row->message) != NULL, "expected \"%s\" in \"%s\"", row->message, err.msg);
}
END_TEST

/* Dumps the fuzzer (tests/fuzz/fuzz_ir_parse.c) found mishandled. Each parses; message NULL: it
 * verifies and round-trips; otherwise ir_verify rejects it with that message (and, under the
 * sanitizers, without overflowing on the way). */
static const struct fuzz_row {
    const char *what;
    const char *text;
    const char *message;
} fuzz_rows[] = {
    {"subnormal parameter", "%0 = input {kind=tokens} : i32[T]\n%1 = weight @e : f32[8,4]\n"
     "%2 = get_rows @e, %0 : f32[T,4]\n%3 = scale %2 {s=1e-45} : f32[T,4]\n", NULL},
    {"reshape element count overflow", "%0 = weight @w : f32[4611686018427387904,4]\n%1 = reshape %0 : f32[2,4]\n",
     "more than 2^48 elements"},
    {"slice end overflow", "%0 = weight @w : f32[4,4]\n"
     "%1 = slice %0 {axis=1, start=2147483647} : f32[4,9223372036854775807]\n", "more than 2^48 elements"},
    {"concat sum overflow", "%0 = weight @w : f32[4,9223372036854775807]\n%1 = concat %0, %0 {axis=1} : f32[4,2]\n",
     "more than 2^48 elements"},
    {"matmul_rope heads overflow", "%0 = input {kind=tokens} : i32[T]\n%1 = input {kind=positions} : i32[T]\n"
     "%2 = weight @e : f32[8,4]\n%3 = get_rows @e, %0 : f32[T,4]\n"
     "%4 = matmul_rope %3, @e, %1 : f32[T,4611686018427387904,4]\n", "more than 2^48 elements"},
    {"sparse large ids (the id table follows the line count, not the largest id)",
     "%16777215 = input {kind=tokens} : i32[T]\n%256 = input {kind=positions} : i32[T]\n"
     "%0 = weight @e : f32[8,4]\n%7 = get_rows @e, %16777215 : f32[T,4]\n", NULL},
    {"largest weight", "%0 = weight @w : q4_0[4398046511104,64]\n", NULL},
};
#define N_FUZZ_ROWS ((int)(sizeof fuzz_rows / sizeof fuzz_rows[0]))

START_TEST(test_fuzz_regressions)
{
    const struct fuzz_row *row = &fuzz_rows[_i];
    struct ir_graph *g = NULL;
    ae_error err = {{0}};
    ck_assert_msg(ir_parse(&g, row->text, strlen(row->text), "t", &err) == 0, "%s: %s", row->what, err.msg);
    int rc = ir_verify(g, &err);
    if (row->message) {
        ck_assert_msg(rc == -1, "%s: ir_verify accepted the graph", row->what);
        ck_assert_msg(strstr(err.msg, row->message) != NULL, "%s: expected \"%s\" in \"%s\"", row->what,
                      row->message, err.msg);
    } else {
        ck_assert_msg(rc == 0, "%s: %s", row->what, err.msg);
        assert_round_trip(g, row->what);
    }
    ir_graph_destroy(g);
}
END_TEST

/* ---- Imported graphs ---------------------------------------------------------------------------- */

static const char *const shared_models[] = {
    "stories260K.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf", "llama-2-tiny-random.gguf",
    "synthetic/tiny-llama-f32.gguf", "synthetic/tiny-llama-f16.gguf", "synthetic/tiny-llama-bf16.gguf",
    "synthetic/tiny-llama-q8_0.gguf", "synthetic/tiny-llama-q6_k.gguf", "synthetic/tiny-llama-q5_k.gguf",
    "synthetic/tiny-llama-q5_1.gguf", "synthetic/tiny-llama-q5_0.gguf", "synthetic/tiny-llama-q4_k.gguf",
    "synthetic/tiny-llama-q4_k_m.gguf", "synthetic/tiny-llama-q4_1.gguf", "synthetic/tiny-llama-q4_0.gguf",
    "synthetic/tiny-llama-q3_k.gguf", "synthetic/tiny-llama-q2_k.gguf", "synthetic/tiny-qwen2-f32.gguf",
    "synthetic/tiny-qwen2-q8_0.gguf", "synthetic/tiny-qwen2-q4_k.gguf", "synthetic/tiny-qwen2-q4_0.gguf",
    "synthetic/tiny-phi3-f32.gguf", "synthetic/tiny-phi3-q8_0.gguf", "synthetic/tiny-phi3-q4_k.gguf",
    "synthetic/tiny-phi3-q4_0.gguf", "synthetic/tiny-gemma2-f32.gguf", "synthetic/tiny-gemma2-q8_0.gguf",
    "synthetic/tiny-gemma2-q4_0.gguf",
};
#define N_SHARED ((int)(sizeof shared_models / sizeof shared_models[0]))

static struct ir_graph *import_shared(const char *file, const struct import_options *opt, ae_gguf **f_out)
{
    char rel[256];
    ae_error err = {{0}};
    ae_gguf *f;
    snprintf(rel, sizeof rel, "models/%s", file);
    ck_assert_msg(ae_gguf_open(&f, test_shared_path(rel), &err) == 0, "%s", err.msg);
    struct ir_graph *g;
    ck_assert_msg(import_model(&g, f, opt, NULL, &err) == 0, "%s", err.msg);
    if (f_out)
        *f_out = f;
    else
        ae_gguf_close(f);
    return g;
}

/* Reads YAML text back with libyaml's parser: the emitter's output must be a well-formed document. */
static void assert_yaml_loads(const char *text, size_t len, const char *what)
{
    yaml_parser_t p;
    yaml_event_t ev;
    ck_assert(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int scalars = 0;
    for (;;) {
        ck_assert_msg(yaml_parser_parse(&p, &ev), "%s: YAML does not parse: %s", what,
                      p.problem ? p.problem : "?");
        yaml_event_type_t t = ev.type;
        if (t == YAML_SCALAR_EVENT)
            scalars++;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    ck_assert_int_gt(scalars, 10);
}

static void assert_yaml(const struct ir_graph *g, const char *what)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert(f != NULL);
    ae_error err = {{0}};
    ck_assert_msg(ir_emit_yaml(g, f, &err) == 0, "%s", err.msg);
    fclose(f);
    ck_assert(strncmp(buf, "nodes:\n- id: 0\n", 15) == 0);
    assert_yaml_loads(buf, len, what);
    free(buf);
}

START_TEST(test_round_trip_models)
{
    struct ir_graph *g = import_shared(shared_models[_i], NULL, NULL);
    assert_round_trip(g, shared_models[_i]);
    assert_yaml(g, shared_models[_i]);
    ir_graph_destroy(g);
}
END_TEST

START_TEST(test_round_trip_options)
{
    struct import_options opt;
    import_options_init(&opt);
    opt.kv_type = AE_TYPE_F32;
    opt.all_logits = true;
    struct ir_graph *g = import_shared("synthetic/tiny-phi3-q4_k.gguf", &opt, NULL);
    assert_round_trip(g, "phi3 with f32 cache and all logits");
    char *text = ir_print_string(g);
    ck_assert(strstr(text, "kv_cache {layer=3, kind=v} : f32[P,4,32]") != NULL);
    ck_assert(strstr(text, "last_row") == NULL);
    ck_assert(strstr(text, "output %") != NULL && strstr(text, ": f32[T,512]  ; logits\n") != NULL);
    free(text);
    ir_graph_destroy(g);
}
END_TEST

/* The imported graphs of two models against dumps kept in tests/ir/ (run from the repository root). A
 * change to an importer shows up here as a diff to review; regenerate the file when it is intended:
 *   aetherc run --interp MODEL --tokens 1 --dump-ir tests/ir/<name>.ir */
static const char *const golden_rows[][2] = {
    {"stories260K.gguf", "tests/ir/stories260K.ir"},
    {"synthetic/tiny-phi3-q4_k.gguf", "tests/ir/tiny-phi3-q4_k.ir"},
};

START_TEST(test_golden)
{
    size_t size;
    char *golden = test_read_file(golden_rows[_i][1], &size);
    struct ir_graph *g = import_shared(golden_rows[_i][0], NULL, NULL);
    char *text = ir_print_string(g);
    ck_assert_msg(strlen(text) == size && memcmp(text, golden, size) == 0,
                  "the graph of %s differs from %s", golden_rows[_i][0], golden_rows[_i][1]);
    struct ir_graph *g2;
    ae_error err = {{0}};
    ck_assert_msg(ir_parse(&g2, golden, size, golden_rows[_i][1], &err) == 0, "%s", err.msg);
    assert_valid(g2);
    ir_graph_destroy(g2);
    free(text);
    free(golden);
    ir_graph_destroy(g);
}
END_TEST

static Suite *ir_suite(void)
{
    Suite *s = suite_create("ir");
    TCase *tc = tcase_create("build");
    tcase_add_test(tc, test_op_tables);
    tcase_add_test(tc, test_op_steps);
    tcase_add_test(tc, test_builders);
    tcase_add_loop_test(tc, test_verify_catches, 0, N_BROKEN);
    tcase_add_test(tc, test_sort);
    tcase_add_test(tc, test_replace_kill_compact);
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_round_trip_small);
    tcase_add_loop_test(tc, test_parse_errors, 0, N_PARSE_ROWS);
    tcase_add_loop_test(tc, test_fuzz_regressions, 0, N_FUZZ_ROWS);
    tcase_add_loop_test(tc, test_round_trip_models, 0, N_SHARED);
    tcase_add_test(tc, test_round_trip_options);
    tcase_add_loop_test(tc, test_golden, 0, (int)(sizeof golden_rows / sizeof golden_rows[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(ir_suite());
}
