/* The attention kernel's algorithm, written once over a 16-lane vector type and included by
 * attention.c once per instruction-set level (scalar, AVX2, AVX-512), each time with the V16 operations
 * of that level and ATTN_FN set to its name and target attribute. Every level performs the same float
 * operations on the same lanes in the same order (docs/kernels.md, "Attention"), so all give the same
 * bytes. Not a header of its own: it is part of attention.c.
 *
 * One call does one task: the query rows of n_tok tokens (positions pos0.., at most ATTN_TOKENS) times
 * the query heads of kv head g. Keys go in blocks of 16 positions, aligned to multiples of 16: the block's
 * K rows are transposed into kt (dims-major, lane = key) and its V rows widened to f32, once for all the
 * task's query rows; each query row then takes the block's 16 scores at once (lane j: the dot product
 * of q with key j, sequential over the dimensions), and updates its running maximum, sum and output.
 */

ATTN_FN(attn_task_body)(const struct attn_job *job, int64_t tok0, int n_tok, int64_t g, float *ws)
{
    const struct ae_attn_params *p = job->p;
    const int group = p->n_head / p->n_head_kv, dk = p->head_dim_k, dv = p->head_dim_v;
    const int n_rows = n_tok * group;
    const bool f16 = p->kv_type == AE_TYPE_F16;
    /* scratch: kt [dk][16], vb [16][dv], q [n_rows][dk], o [n_rows][dv], m and l [n_rows] */
    float *kt = ws, *vb = kt + (size_t)dk * 16, *qr = vb + (size_t)16 * dv;
    float *o = qr + (size_t)n_rows * dk, *mx = o + (size_t)n_rows * dv, *lsum = mx + n_rows;
    for (int r = 0; r < n_rows; r++) {
        const int64_t t = tok0 + r / group, h = g * group + r % group;
        const float *src = job->q + (t * p->n_head + h) * dk;
        for (int d = 0; d < dk; d++) /* with an F16 cache, q is rounded to fp16 as the cache is */
            qr[(size_t)r * dk + d] = f16 ? ae_fp16_to_fp32(ae_fp32_to_fp16(src[d])) : src[d];
        for (int d = 0; d < dv; d++)
            o[(size_t)r * dv + d] = 0.0f;
        mx[r] = -INFINITY;
        lsum[r] = 0.0f;
    }
    const int64_t last_pos = p->pos0 + tok0 + n_tok - 1;
    const int64_t first_pos = p->pos0 + tok0;
    const int64_t lo_all = p->window > 0 && first_pos - p->window + 1 > 0 ? first_pos - p->window + 1 : 0;
    const uint8_t *kbase = job->k + (size_t)g * (size_t)dk * job->elt;
    const uint8_t *vbase = job->v + (size_t)g * (size_t)dv * job->elt;
    const float inv_cap = p->softcap > 0.0f ? 1.0f / p->softcap : 0.0f;
    for (int64_t b0 = lo_all / 16 * 16; b0 <= last_pos; b0 += 16) {
        /* the block's keys that some query of the task sees: b0 + ja .. b0 + jb - 1 */
        const int ja = b0 < lo_all ? (int)(lo_all - b0) : 0;
        const int jb = b0 + 16 > last_pos + 1 ? (int)(last_pos + 1 - b0) : 16;
        kv_block(job, kbase, vbase, b0, ja, jb, kt, vb);
        for (int r0 = 0; r0 < n_rows; r0 += 4) {
            /* the scores of up to 4 rows at once: four independent chains of fmaf over the dimensions */
            const int nr = n_rows - r0 < 4 ? n_rows - r0 : 4;
            V16 s4[4] = {v16_zero(), v16_zero(), v16_zero(), v16_zero()};
            const float *q0 = qr + (size_t)r0 * dk;
            if (nr == 4) {
                for (int d = 0; d < dk; d++) {
                    const V16 k = v16_load(kt + (size_t)d * 16);
                    s4[0] = v16_fma(v16_set1(q0[d]), k, s4[0]);
                    s4[1] = v16_fma(v16_set1(q0[dk + d]), k, s4[1]);
                    s4[2] = v16_fma(v16_set1(q0[2 * dk + d]), k, s4[2]);
                    s4[3] = v16_fma(v16_set1(q0[3 * dk + d]), k, s4[3]);
                }
            } else {
                for (int i = 0; i < nr; i++)
                    for (int d = 0; d < dk; d++)
                        s4[i] = v16_fma(v16_set1(q0[(size_t)i * dk + d]), v16_load(kt + (size_t)d * 16), s4[i]);
            }
            for (int i = 0; i < nr; i++) {
                const int r = r0 + i;
                const int64_t pos = first_pos + r / group;
                const int64_t lo = p->window > 0 && pos - p->window + 1 > 0 ? pos - p->window + 1 : 0;
                if (b0 > pos || b0 + 16 <= lo)
                    continue;
                /* the keys this row sees in the block: j0 .. j1 - 1 */
                const int j0 = b0 < lo ? (int)(lo - b0) : 0;
                const int j1 = b0 + 16 > pos + 1 ? (int)(pos + 1 - b0) : 16;
                V16 s = v16_mul(s4[i], v16_set1(p->scale));
                if (p->softcap > 0.0f) { /* tanh, lane by lane, as the other levels do */
                    float t[16];
                    v16_store(t, s);
                    for (int j = 0; j < 16; j++) {
                        const float c = t[j] * inv_cap;
                        t[j] = tanhf(c) * p->softcap;
                    }
                    s = v16_load(t);
                }
                s = v16_keep(s, j0, j1); /* -inf outside the row's keys */
                const float m_new = fmaxf(mx[r], v16_hmax(s));
                const float alpha = attn_exp1(mx[r] - m_new);
                const V16 e = v16_exp(v16_sub(s, v16_set1(m_new)));
                float pj[16];
                v16_store(pj, e);
                lsum[r] = fmaf(lsum[r], alpha, v16_reduce16(e));
                mx[r] = m_new;
                float *out = o + (size_t)r * dv;
                int d = 0;
                for (; d + 16 <= dv; d += 16) {
                    V16 acc = v16_mul(v16_load(out + d), v16_set1(alpha));
                    for (int j = j0; j < j1; j++)
                        acc = v16_fma(v16_set1(pj[j]), v16_load(vb + (size_t)j * dv + d), acc);
                    v16_store(out + d, acc);
                }
                for (; d < dv; d++) { /* a last part shorter than 16: the same operations one lane at a time */
                    float acc = out[d] * alpha;
                    for (int j = j0; j < j1; j++)
                        acc = fmaf(pj[j], vb[(size_t)j * dv + d], acc);
                    out[d] = acc;
                }
            }
        }
    }
    for (int r = 0; r < n_rows; r++) {
        const int64_t t = tok0 + r / group, h = g * group + r % group;
        float *dst = job->out + (t * p->n_head + h) * dv;
        const float *src = o + (size_t)r * dv;
        int d = 0;
        for (; d + 16 <= dv; d += 16)
            v16_store(dst + d, v16_div(v16_load(src + d), v16_set1(lsum[r])));
        for (; d < dv; d++)
            dst[d] = src[d] / lsum[r];
    }
}
