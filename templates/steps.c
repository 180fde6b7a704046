/* The steps of the forward functions in C: one snippet (or a few) per kind of step of the lowering
 * (compiler/emit/lower.h), which the C printer (compiler/emit/emit_c.c) fills with C expressions for the
 * step's references ($x, $out: pointers into the arena, the weights, the cache), its sizes ($rows: a
 * constant or an expression in T and P) and its constants. Kernels are the runtime's (ae_kernels.h);
 * elementwise work is a plain loop, the steps of a fused chain in its body.
 *
 * The snippets of one node share that node's block: the names they declare there (n, R, D, x, y, rp, r,
 * ap, O, I, xd, xs, yd, k, yarn, parts) must not clash between the steps one node lowers to. The batched step's
 * per-sequence snippets (*_seq, last_rows) loop over the batch's runs, b->runs[q]. */

//@ get_rows
        const int64_t n = $count;
        for (int64_t i = 0; i < n; i++) {
            const int32_t id = $ids[i];
            if (id < 0 || id >= $n_rows)
                return ae_fail(err, "token id %d is outside the vocabulary (0..$max_id)", id);
            AE_CHECK(ae_layout_get_row($type, $layout, $table, $cols, id, $out + i * $cols, err), "$name");
        }

//@ matmul
        AE_CHECK(ae_matmul($type, $layout, $w, $n, $k, $x, $rows, $out, s->scratch, s->pool, err), "$name");

//@ matmul_parts
        const struct ae_matmul_part parts[$n_parts] = {
$parts
        };
        AE_CHECK(ae_matmul_parts(parts, $n_parts, $k, $x, $rows, s->scratch, s->pool, err), "$name");

//@ matmul_part
            {$type, $layout, $w, $n, $out},

//@ ew_loop
        const int64_t R = $rows, D = $cols;
        float *y = $out;
        for (int64_t r = 0; r < R; r++)
            for (int64_t i = 0; i < D; i++) {
                float v = $x[r * D + i];
$steps
                y[r * D + i] = v;
            }

//@ ew_operand
$x[r * D + i]

//@ ew_operand_row
$x[i]

//@ ew_add
                v = v + $operand;

//@ ew_mul
                v = v * $operand;

//@ ew_scale
                v = v * $k;

//@ ew_silu
                v = ew_silu(v);

//@ ew_gelu
                v = ew_gelu(v);

//@ ew_softcap
                v = ew_softcap(v, $k);

//@ ew_sigmoid
                v = 1.0f / (1.0f + expf(-v));

//@ rms_norm
        ae_rms_norm($x, $w, $out, $rows, $cols, $eps);

//@ layer_norm
        const int64_t R = $rows, D = $cols;
        const float *x = $x;
        float *y = $out;
        for (int64_t r = 0; r < R; r++) {
            double sum = 0, sq = 0;
            for (int64_t i = 0; i < D; i++) sum += x[r * D + i];
            const float mean = (float)(sum / D);
            for (int64_t i = 0; i < D; i++) { const float d = x[r * D + i] - mean; sq += (double)(d * d); }
            const float scale = 1.0f / sqrtf((float)(sq / D) + $eps);
            for (int64_t i = 0; i < D; i++) y[r * D + i] = (x[r * D + i] - mean) * scale;
        }

//@ softmax
        ae_softmax($x, $out, $rows, $cols);

//@ rope_yarn
        static const struct ae_rope_yarn yarn = {$ext_factor, $attn_factor, $n_ctx_orig, $beta_fast, $beta_slow};

//@ rope
        static const struct ae_rope_params rp = {$n_dims, $neox, $freq_base, $freq_scale, NULL, $yarn};
        struct ae_rope_params r = rp;

//@ rope_factors
        r.freq_factors = $factors;

//@ rope_call
        AE_CHECK(ae_rope($x, $out, $rows, $heads, $head_dim, P, &r, err), "$name");

//@ rope_call_seq
        for (int32_t q = 0; q < b->n_runs; q++) {
            const struct ae_batch_run *run = &b->runs[q];
            const int64_t o = (int64_t)run->row0 * $heads * $head_dim;
            AE_CHECK(ae_rope($x + o, $out + o, run->n_rows, $heads, $head_dim, run->pos0, &r, err), "$name");
        }

//@ attention
        const struct ae_attn_params ap = {.n_tokens = $rows, .pos0 = P, .n_ctx = s->n_ctx, .n_head = $n_head, .n_head_kv = $n_head_kv, .head_dim_k = $head_dim_k, .head_dim_v = $head_dim_v,
            .kv_type = s->kv_type, .scale = $scale, .softcap = $softcap, .window = $window};
        AE_CHECK(ae_attention(&ap, $q, $k, $v, $out, s->scratch, s->pool, err), "$name");

//@ attention_seq
        for (int32_t q = 0; q < b->n_runs; q++) {
            const struct ae_batch_run *run = &b->runs[q];
            const struct ae_attn_params ap = {.n_tokens = run->n_rows, .pos0 = run->pos0, .n_ctx = s->n_ctx, .n_head = $n_head, .n_head_kv = $n_head_kv, .head_dim_k = $head_dim_k, .head_dim_v = $head_dim_v,
                .kv_type = s->kv_type, .scale = $scale, .softcap = $softcap, .window = $window};
            AE_CHECK(ae_attention(&ap, $q + (int64_t)run->row0 * $n_head * $head_dim_k, $k, $v, $out + (int64_t)run->row0 * $n_head * $head_dim_v, s->scratch, s->pool, err), "$name");
        }

//@ kv_store
        AE_CHECK(ae_kv_store(s->kv_type, $out, s->n_ctx, $row_len, P, $x, $rows, err), "$name");

//@ slice
        const int64_t O = $outer, I = $inner;
        for (int64_t o = 0; o < O; o++)
            memcpy($out + o * $len * I, $x + (o * $x_len + $start) * I, sizeof(float) * $len * I);

//@ concat
        const int64_t O = $outer, I = $inner;
        for (int64_t o = 0; o < O; o++) {
            memcpy($out + o * $len * I, $a + o * $a_len * I, sizeof(float) * $a_len * I);
            memcpy($out + (o * $len + $a_len) * I, $b + o * $b_len * I, sizeof(float) * $b_len * I);
        }

//@ permute
        const int64_t xd[4] = {$d0, $d1, $d2, $d3};
        const int64_t xs[4] = {xd[1] * xd[2] * xd[3], xd[2] * xd[3], xd[3], 1};
        const int64_t yd[4] = {xd[$p0], xd[$p1], xd[$p2], xd[$p3]};
        float *y = $out;
        const float *x = $x;
        int64_t k = 0;
        for (int64_t a = 0; a < yd[0]; a++) for (int64_t b = 0; b < yd[1]; b++)
            for (int64_t c = 0; c < yd[2]; c++) for (int64_t d = 0; d < yd[3]; d++)
                y[k++] = x[a * xs[$p0] + b * xs[$p1] + c * xs[$p2] + d * xs[$p3]];

//@ copy
        memcpy($out, $x, sizeof(float) * $count);

//@ broadcast
        const int64_t yd[4] = {$d0, $d1, $d2, $d3}, xd[4] = {$x0, $x1, $x2, $x3};
        int64_t xs[4] = {xd[1] * xd[2] * xd[3], xd[2] * xd[3], xd[3], 1};
        for (int i = 0; i < 4; i++)
            if (xd[i] == 1)
                xs[i] = 0;
        float *y = $out;
        const float *x = $x;
        int64_t k = 0;
        for (int64_t a = 0; a < yd[0]; a++) for (int64_t b = 0; b < yd[1]; b++)
            for (int64_t c = 0; c < yd[2]; c++) for (int64_t d = 0; d < yd[3]; d++)
                y[k++] = x[a * xs[0] + b * xs[1] + c * xs[2] + d * xs[3]];

//@ topk
        ae_moe_topk($x, $rows, $n, $k, $out, (int32_t *)s->scratch);

//@ moe_weights
        ae_moe_weights($probs, $ids, $rows, $n, $k, $norm, $scale, $out);

//@ matmul_id
        AE_CHECK(ae_matmul_id($type, $layout, $w, $experts, $n, $k, $x, $per_slot, $ids, $rows, $slots, $out, s->scratch, s->pool, err), "$name");

//@ moe_sum
        ae_moe_sum($x, $w, $rows, $k, $cols, $out);

//@ kv_store_seq
        for (int32_t q = 0; q < b->n_runs; q++) {
            const struct ae_batch_run *run = &b->runs[q];
            AE_CHECK(ae_kv_store(s->kv_type, $out, s->n_ctx, $row_len, run->pos0, $x + (int64_t)run->row0 * $row_len, run->n_rows, err), "$name");
        }

//@ last_rows
        for (int32_t q = 0; q < b->n_runs; q++) {
            const struct ae_batch_run *run = &b->runs[q];
            memcpy($out + (int64_t)q * $cols, $x + ((int64_t)run->row0 + run->n_rows - 1) * $cols, sizeof(float) * $cols);
        }
