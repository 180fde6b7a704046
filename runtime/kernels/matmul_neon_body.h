/* The integer kernels of the NEON levels, included by matmul_neon.c once per level, with
 *   NEON_FN(name)              the level's name for a function,
 *   ROWS4(acc, q, p)           acc + the four 4-byte dot products of q (4 rows x 4 bytes) with the 4
 *                              activation bytes at p: lane r is row r's,
 *   DOT16(acc, q, x)           acc + an int32x4 whose lanes add up to the 16-byte dot product q . x.
 * Every kernel follows the canonical order of docs/kernels.md: an exact integer sum per block (or
 * super-block), then one fused multiply-add of it into the output's accumulator, blocks in order. Not a
 * header of its own: it has no guard.
 */

/* ---- 32-value blocks, x16 layout ------------------------------------------------------------------ */

/* The exact int32 block sums of the 4 rows of quarter q (rows 4q..4q+3) of one group block g with the
 * activation blocks xb[c], c < C: each unpacked chunk serves every activation row. Chunk j's low nibbles
 * are values 4j.., its high ones 16 + 4j.. (Q8_0: chunk j is values 4j..4j+3, signed). Unsigned weights
 * come out biased and bias * sum(x) is taken back out. */
static inline __attribute__((always_inline)) void NEON_FN(x16_isum32)(uint32_t type, const uint8_t *g, int q, int C,
                                                                      const struct ae_block_q8a *const *xb,
                                                                      int32x4_t *s)
{
    for (int c = 0; c < C; c++)
        s[c] = vdupq_n_s32(0);
    if (type == AE_TYPE_Q8_0) {
        const struct ae_x16_q8_0 *w = (const struct ae_x16_q8_0 *)g;
        for (int j = 0; j < 8; j++) {
            const int8x16_t wq = vld1q_s8(w->qs[j][4 * q]);
            for (int c = 0; c < C; c++)
                s[c] = ROWS4(s[c], wq, xb[c]->qs + 4 * j);
        }
        return;
    }
    const bool has_min = type == AE_TYPE_Q4_1 || type == AE_TYPE_Q5_1;
    const bool q5 = type == AE_TYPE_Q5_0 || type == AE_TYPE_Q5_1;
    const size_t qs_at = 32 + (has_min ? 32 : 0) + (q5 ? 64 : 0);
    uint32x4_t qh = vdupq_n_u32(0);
    if (q5)
        qh = vld1q_u32((const uint32_t *)(g + qs_at - 64) + 4 * q);
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    for (int j = 0; j < 4; j++) {
        const uint8x16_t raw = vld1q_u8(g + qs_at + 64 * j + 16 * q);
        uint8x16_t lo = vandq_u8(raw, m4), hi = vshrq_n_u8(raw, 4);
        if (q5) {
            uint8x16_t blo, bhi;
            q5_chunk_bits(qh, j, &blo, &bhi);
            lo = vorrq_u8(lo, blo);
            hi = vorrq_u8(hi, bhi);
        }
        for (int c = 0; c < C; c++) {
            s[c] = ROWS4(s[c], vreinterpretq_s8_u8(lo), xb[c]->qs + 4 * j);
            s[c] = ROWS4(s[c], vreinterpretq_s8_u8(hi), xb[c]->qs + 16 + 4 * j);
        }
    }
    const int bias = type == AE_TYPE_Q4_0 ? 8 : type == AE_TYPE_Q5_0 ? 16 : 0;
    if (bias)
        for (int c = 0; c < C; c++)
            s[c] = vaddq_s32(s[c], vdupq_n_s32(bias * xb[c]->neg_sum));
}

/* One group (16 rows at w, n_rows of them written) by C <= X16_COLS activation rows, all nb blocks:
 * per block, per quarter of 4 rows, acc = fma((float)isum, dw * dx, acc) (and fma(mw, sx, acc)). */
static inline __attribute__((always_inline)) void NEON_FN(x16_group32)(uint32_t type, int C, int64_t nb,
                                                                       const uint8_t *w, int n_rows, const uint8_t *x,
                                                                       size_t x_row, float *y, int64_t y_stride)
{
    const size_t gb = ae_layout_group_bytes(type, AE_LAYOUT_X16, AE_QK);
    const bool has_min = type == AE_TYPE_Q4_1 || type == AE_TYPE_Q5_1;
    float32x4_t acc[X16_COLS][4];
    for (int c = 0; c < C; c++)
        for (int q = 0; q < 4; q++)
            acc[c][q] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * gb;
        const struct ae_block_q8a *xb[X16_COLS];
        for (int c = 0; c < C; c++)
            xb[c] = (const struct ae_block_q8a *)(x + (size_t)c * x_row) + b;
        float32x4_t dw[4], mw[4];
        load_f16x16(g, dw);
        if (has_min)
            load_f16x16(g + 32, mw);
        for (int q = 0; q < 4; q++) {
            int32x4_t isum[X16_COLS];
            NEON_FN(x16_isum32)(type, g, q, C, xb, isum);
            for (int c = 0; c < C; c++) {
                acc[c][q] = vfmaq_f32(acc[c][q], vcvtq_f32_s32(isum[c]), vmulq_n_f32(dw[q], xb[c]->d));
                if (has_min)
                    acc[c][q] = vfmaq_n_f32(acc[c][q], mw[q], xb[c]->s);
            }
        }
    }
    for (int c = 0; c < C; c++)
        store_rows16(y + c * y_stride, acc[c], n_rows);
}

#define NEON_X16_32(T, t)                                                                                       \
    static void NEON_FN(x16_##t##_1)(int64_t nb, const uint8_t *w, int nr, const uint8_t *x, size_t xr, float *y, \
                                     int64_t ys)                                                                \
    {                                                                                                           \
        NEON_FN(x16_group32)(AE_TYPE_##T, 1, nb, w, nr, x, xr, y, ys);                                          \
    }                                                                                                           \
    static void NEON_FN(x16_##t##_n)(int64_t nb, const uint8_t *w, int nr, const uint8_t *x, size_t xr, float *y, \
                                     int64_t ys)                                                                \
    {                                                                                                           \
        NEON_FN(x16_group32)(AE_TYPE_##T, X16_COLS, nb, w, nr, x, xr, y, ys);                                   \
    }                                                                                                           \
    static void NEON_FN(gemm_x16_##t)(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr, \
                                      int64_t nc, float *y, int64_t ys)                                         \
    {                                                                                                           \
        x16_tiles(NEON_FN(x16_##t##_1), NEON_FN(x16_##t##_n), k / AE_QK, w, ws, nr, x, xr, nc, y, ys);           \
    }
NEON_X16_32(Q4_0, q4_0)
NEON_X16_32(Q4_1, q4_1)
NEON_X16_32(Q5_0, q5_0)
NEON_X16_32(Q5_1, q5_1)
NEON_X16_32(Q8_0, q8_0)
#undef NEON_X16_32

/* ---- 32-value blocks, rows layout ----------------------------------------------------------------- */

/* One block of one weight row as bytes in value order (values 0-15, 16-31), and its scale and minimum. */
static inline void NEON_FN(row32_load)(uint32_t type, const uint8_t *blk, int8x16_t *q0, int8x16_t *q1, uint16_t *d,
                                       uint16_t *m)
{
    memcpy(d, blk, 2);
    switch (type) {
    case AE_TYPE_Q4_0:
        nibbles(blk + 2, q0, q1);
        break;
    case AE_TYPE_Q4_1:
        memcpy(m, blk + 2, 2);
        nibbles(blk + 4, q0, q1);
        break;
    case AE_TYPE_Q5_0:
    case AE_TYPE_Q5_1: {
        const size_t at = type == AE_TYPE_Q5_1 ? 4 : 2;
        if (type == AE_TYPE_Q5_1)
            memcpy(m, blk + 2, 2);
        int8x16_t h0, h1;
        nibbles(blk + at + 4, q0, q1);
        q5_high(blk + at, &h0, &h1);
        *q0 = vorrq_s8(*q0, h0);
        *q1 = vorrq_s8(*q1, h1);
        break;
    }
    default: /* Q8_0 */
        *q0 = vld1q_s8((const int8_t *)blk + 2);
        *q1 = vld1q_s8((const int8_t *)blk + 18);
        break;
    }
}

/* Up to 4 rows (lane r = row r; rows past n_rows repeat the last) by one activation row. */
static inline __attribute__((always_inline)) void NEON_FN(rows32)(uint32_t type, int64_t nb, const uint8_t *w,
                                                                  size_t w_row, int n_rows, const uint8_t *x, float *y)
{
    const size_t wb = ae_type_info(type)->block_bytes;
    const int bias = type == AE_TYPE_Q4_0 ? 8 : type == AE_TYPE_Q5_0 ? 16 : 0;
    const bool has_min = type == AE_TYPE_Q4_1 || type == AE_TYPE_Q5_1;
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const struct ae_block_q8a *xb = (const struct ae_block_q8a *)x + b;
        const int8x16_t x0 = vld1q_s8(xb->qs), x1 = vld1q_s8(xb->qs + 16);
        int32x4_t t[4];
        uint16_t d[4], m[4] = {0, 0, 0, 0};
        for (int r = 0; r < 4; r++) {
            const int rr = r < n_rows ? r : n_rows - 1;
            int8x16_t q0, q1;
            NEON_FN(row32_load)(type, w + (size_t)rr * w_row + (size_t)b * wb, &q0, &q1, &d[r], &m[r]);
            t[r] = DOT16(DOT16(vdupq_n_s32(0), q0, x0), q1, x1);
        }
        int32x4_t isum = group4(t[0], t[1], t[2], t[3]);
        if (bias)
            isum = vaddq_s32(isum, vdupq_n_s32(bias * xb->neg_sum));
        const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d)));
        acc = vfmaq_f32(acc, vcvtq_f32_s32(isum), vmulq_n_f32(dw, xb->d));
        if (has_min)
            acc = vfmaq_n_f32(acc, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(m))), xb->s);
    }
    float out[4];
    vst1q_f32(out, acc);
    for (int r = 0; r < n_rows; r++)
        y[r] = out[r];
}

#define NEON_ROWS32(T, t)                                                                                       \
    static void NEON_FN(gemm_rows_##t)(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr, \
                                       int64_t nc, float *y, int64_t ys)                                        \
    {                                                                                                           \
        for (int64_t c = 0; c < nc; c++)                                                                        \
            for (int64_t r = 0; r < nr; r += 4)                                                                 \
                NEON_FN(rows32)(AE_TYPE_##T, k / AE_QK, (const uint8_t *)w + (size_t)r * ws, ws,                \
                                nr - r < 4 ? (int)(nr - r) : 4, (const uint8_t *)x + (size_t)c * xr, y + c * ys + r); \
    }
NEON_ROWS32(Q4_0, q4_0)
NEON_ROWS32(Q4_1, q4_1)
NEON_ROWS32(Q5_0, q5_0)
NEON_ROWS32(Q5_1, q5_1)
NEON_ROWS32(Q8_0, q8_0)
#undef NEON_ROWS32

/* ---- K-quants, x16 layout ------------------------------------------------------------------------- */

/* The exact sums of quarter q (4 rows) of one K-quant group block g with the activation super-blocks
 * xb[c], c < C (each unpacked chunk serves them all): isum = sum over groups of sc * (q . x) (Q6_K: the
 * quants taken as q + 32, the 32 taken back out through the scales and bsums), msum = sum over groups of
 * m * bsum (Q2_K, Q4_K, Q5_K). */
static inline __attribute__((always_inline)) void NEON_FN(kx16_sums)(uint32_t type, const uint8_t *g, int q, int C,
                                                                     const struct kscales16 *ks,
                                                                     const struct ae_block_q8_k *const *xb,
                                                                     int32x4_t *isum, int32x4_t *msum)
{
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    for (int c = 0; c < C; c++) {
        isum[c] = vdupq_n_s32(0);
        msum[c] = vdupq_n_s32(0);
    }
    if (type == AE_TYPE_Q2_K || type == AE_TYPE_Q3_K) {
        /* value 128h + 32s + 4j + i: bits 2s, 2s + 1 of byte i of qs chunk 8h + j (Q3_K: less 4 unless bit
         * 4h + s of hmask chunk j is set), in group 8h + 2s + j / 4 */
        const uint8_t *qs = type == AE_TYPE_Q2_K ? ((const struct ae_x16_q2_k *)g)->qs[0][0]
                                                 : ((const struct ae_x16_q3_k *)g)->qs[0][0];
        const uint8_t *hm = type == AE_TYPE_Q3_K ? ((const struct ae_x16_q3_k *)g)->hmask[0][0] : NULL;
        const uint8x16_t m3 = vdupq_n_u8(3), one = vdupq_n_u8(1), four = vdupq_n_u8(4);
        for (int h = 0; h < 2; h++) {
            int32x4_t gs[KX16_COLS][8];
            for (int c = 0; c < C; c++)
                for (int i = 0; i < 8; i++)
                    gs[c][i] = vdupq_n_s32(0);
            for (int j = 0; j < 8; j++) {
                const uint8x16_t raw = vld1q_u8(qs + 64 * (8 * h + j) + 16 * q);
                const uint8x16_t bits = hm ? vld1q_u8(hm + 64 * j + 16 * q) : vdupq_n_u8(0);
                for (int s = 0; s < 4; s++) {
                    uint8x16_t u = vandq_u8(shr_u8(raw, 2 * s), m3);
                    if (hm)
                        u = vsubq_u8(vorrq_u8(u, vshlq_n_u8(vandq_u8(shr_u8(bits, 4 * h + s), one), 2)), four);
                    const int gi = 2 * s + j / 4;
                    for (int c = 0; c < C; c++)
                        gs[c][gi] = ROWS4(gs[c][gi], vreinterpretq_s8_u8(u), xb[c]->qs + 128 * h + 32 * s + 4 * j);
                }
            }
            for (int c = 0; c < C; c++)
                for (int i = 0; i < 8; i++)
                    isum[c] = vmlaq_s32(isum[c], gs[c][i], ks->sc[8 * h + i][q]);
        }
        if (type == AE_TYPE_Q2_K)
            for (int c = 0; c < C; c++)
                for (int gi = 0; gi < 16; gi++)
                    msum[c] = vmlaq_n_s32(msum[c], ks->m[gi][q], xb[c]->bsums[gi]);
        return;
    }
    if (type == AE_TYPE_Q6_K) {
        const struct ae_x16_q6_k *w = (const struct ae_x16_q6_k *)g;
        const uint8x16_t m3 = vdupq_n_u8(3);
        for (int h = 0; h < 2; h++) {
            /* four runs of 32 values: 128h + 32u + 4j + i, u = 0..3, from ql chunk 16h + 8(u&1) + j
             * (low nibbles for u < 2) and qh chunk 8h + j (bits 2u, 2u+1); value 128h + 32u + 4j is in
             * group 8h + 2u + j / 4 */
            int32x4_t gs[KX16_COLS][8];
            for (int c = 0; c < C; c++)
                for (int i = 0; i < 8; i++)
                    gs[c][i] = vdupq_n_s32(0);
            for (int j = 0; j < 8; j++) {
                const uint8x16_t l0 = vld1q_u8(w->ql[16 * h + j][4 * q]), l1 = vld1q_u8(w->ql[16 * h + 8 + j][4 * q]);
                const uint8x16_t hb = vld1q_u8(w->qh[8 * h + j][4 * q]);
                const int8x16_t u0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(hb, m3), 4)));
                const int8x16_t u1 =
                    vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4)));
                const int8x16_t u2 =
                    vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4)));
                const int8x16_t u3 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4)));
                const int gj = j / 4;
                for (int c = 0; c < C; c++) {
                    const int8_t *xs = xb[c]->qs + 128 * h + 4 * j;
                    gs[c][gj] = ROWS4(gs[c][gj], u0, xs);
                    gs[c][2 + gj] = ROWS4(gs[c][2 + gj], u1, xs + 32);
                    gs[c][4 + gj] = ROWS4(gs[c][4 + gj], u2, xs + 64);
                    gs[c][6 + gj] = ROWS4(gs[c][6 + gj], u3, xs + 96);
                }
            }
            for (int c = 0; c < C; c++)
                for (int i = 0; i < 8; i++)
                    isum[c] = vmlaq_s32(isum[c], gs[c][i], ks->sc[8 * h + i][q]);
        }
        for (int c = 0; c < C; c++) {
            int32x4_t off = vdupq_n_s32(0); /* sum over groups of sc * bsum */
            for (int gi = 0; gi < 16; gi++)
                off = vmlaq_n_s32(off, ks->sc[gi][q], xb[c]->bsums[gi]);
            isum[c] = vsubq_s32(isum[c], vshlq_n_s32(off, 5));
        }
        return;
    }
    const uint8_t *qs = type == AE_TYPE_Q4_K ? ((const struct ae_x16_q4_k *)g)->qs[0][0]
                                             : ((const struct ae_x16_q5_k *)g)->qs[0][0];
    const uint8_t *qh = type == AE_TYPE_Q5_K ? ((const struct ae_x16_q5_k *)g)->qh[0][0] : NULL;
    const uint8x16_t one = vdupq_n_u8(1);
    for (int h = 0; h < 4; h++) { /* groups 2h (low nibbles) and 2h + 1 (high) */
        int32x4_t glo[KX16_COLS], ghi[KX16_COLS];
        for (int c = 0; c < C; c++)
            glo[c] = ghi[c] = vdupq_n_s32(0);
        for (int j = 0; j < 8; j++) {
            const uint8x16_t raw = vld1q_u8(qs + 64 * (8 * h + j) + 16 * q);
            uint8x16_t lo = vandq_u8(raw, m4), hi = vshrq_n_u8(raw, 4);
            if (qh) { /* the fifth bits: bit 2h (low) and 2h + 1 (high) of qh chunk j */
                const uint8x16_t bits = vld1q_u8(qh + 64 * j + 16 * q);
                lo = vorrq_u8(lo, vshlq_n_u8(vandq_u8(shr_u8(bits, 2 * h), one), 4));
                hi = vorrq_u8(hi, vshlq_n_u8(vandq_u8(shr_u8(bits, 2 * h + 1), one), 4));
            }
            for (int c = 0; c < C; c++) {
                const int8_t *xs = xb[c]->qs + 64 * h + 4 * j;
                glo[c] = ROWS4(glo[c], vreinterpretq_s8_u8(lo), xs);
                ghi[c] = ROWS4(ghi[c], vreinterpretq_s8_u8(hi), xs + 32);
            }
        }
        for (int c = 0; c < C; c++) {
            isum[c] = vmlaq_s32(isum[c], glo[c], ks->sc[2 * h][q]);
            isum[c] = vmlaq_s32(isum[c], ghi[c], ks->sc[2 * h + 1][q]);
        }
    }
    for (int c = 0; c < C; c++)
        for (int gi = 0; gi < 8; gi++)
            msum[c] = vmlaq_n_s32(msum[c], ks->m[gi][q], xb[c]->bsums[2 * gi] + xb[c]->bsums[2 * gi + 1]);
}

/* One group (16 rows) by C <= KX16_COLS activation rows, all nb super-blocks. */
static inline __attribute__((always_inline)) void NEON_FN(kx16_group)(uint32_t type, int C, int64_t nb,
                                                                      const uint8_t *w, int n_rows, const uint8_t *x,
                                                                      size_t x_row, float *y, int64_t y_stride)
{
    const size_t gb = ae_layout_group_bytes(type, AE_LAYOUT_X16, AE_QK_K);
    const bool has_min = type == AE_TYPE_Q2_K || type == AE_TYPE_Q4_K || type == AE_TYPE_Q5_K;
    float32x4_t acc[KX16_COLS][4];
    for (int c = 0; c < C; c++)
        for (int q = 0; q < 4; q++)
            acc[c][q] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * gb;
        const struct ae_block_q8_k *xb[KX16_COLS];
        for (int c = 0; c < C; c++)
            xb[c] = (const struct ae_block_q8_k *)(x + (size_t)c * x_row) + b;
        struct kscales16 ks;
        float32x4_t d[4], dmin[4];
        load_f16x16(g, d);
        if (type == AE_TYPE_Q6_K) {
            kscales16_q6(((const struct ae_x16_q6_k *)g)->scales[0], &ks);
        } else if (type == AE_TYPE_Q2_K) {
            kscales16_q2(((const struct ae_x16_q2_k *)g)->scales[0], &ks);
            load_f16x16(g + 32, dmin);
        } else if (type == AE_TYPE_Q3_K) {
            kscales16_q3(((const struct ae_x16_q3_k *)g)->scales[0], &ks);
        } else {
            kscales16_q45(((const struct ae_x16_q4_k *)g)->scales[0], &ks); /* at the same offset in Q5_K */
            load_f16x16(g + 32, dmin);
        }
        for (int q = 0; q < 4; q++) {
            int32x4_t isum[KX16_COLS], msum[KX16_COLS];
            NEON_FN(kx16_sums)(type, g, q, C, &ks, xb, isum, msum);
            for (int c = 0; c < C; c++) {
                acc[c][q] = vfmaq_f32(acc[c][q], vcvtq_f32_s32(isum[c]), vmulq_n_f32(d[q], xb[c]->d));
                if (has_min) /* fma(-(float)msum, dmin, acc) */
                    acc[c][q] = vfmsq_f32(acc[c][q], vcvtq_f32_s32(msum[c]), vmulq_n_f32(dmin[q], xb[c]->d));
            }
        }
    }
    for (int c = 0; c < C; c++)
        store_rows16(y + c * y_stride, acc[c], n_rows);
}

#define NEON_KX16(T, t)                                                                                         \
    static void NEON_FN(kx16_##t##_1)(int64_t nb, const uint8_t *w, int nr, const uint8_t *x, size_t xr, float *y, \
                                      int64_t ys)                                                               \
    {                                                                                                           \
        NEON_FN(kx16_group)(AE_TYPE_##T, 1, nb, w, nr, x, xr, y, ys);                                           \
    }                                                                                                           \
    static void NEON_FN(kx16_##t##_n)(int64_t nb, const uint8_t *w, int nr, const uint8_t *x, size_t xr, float *y, \
                                      int64_t ys)                                                               \
    {                                                                                                           \
        NEON_FN(kx16_group)(AE_TYPE_##T, KX16_COLS, nb, w, nr, x, xr, y, ys);                                   \
    }                                                                                                           \
    static void NEON_FN(gemm_x16_##t)(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr, \
                                      int64_t nc, float *y, int64_t ys)                                         \
    {                                                                                                           \
        kx16_tiles(NEON_FN(kx16_##t##_1), NEON_FN(kx16_##t##_n), k / AE_QK_K, w, ws, nr, x, xr, nc, y, ys);      \
    }
NEON_KX16(Q4_K, q4_k)
NEON_KX16(Q5_K, q5_k)
NEON_KX16(Q6_K, q6_k)
NEON_KX16(Q2_K, q2_k)
NEON_KX16(Q3_K, q3_k)
#undef NEON_KX16

/* ---- K-quants, rows layout ------------------------------------------------------------------------ */

static void NEON_FN(dot_q2_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q2_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        const uint8x16_t packed = vld1q_u8(w[i].scales);
        int32x4_t sc[4];
        widen_scales(vandq_u8(packed, vdupq_n_u8(0x0f)), sc);
        const int msum = summs16(x[i].bsums, vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(vshrq_n_u8(packed, 4)))),
                                 vreinterpretq_s16_u16(vmovl_high_u8(vshrq_n_u8(packed, 4))));
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8x16_t v0 = vld1q_u8(w[i].qs + 32 * h), v1 = vld1q_u8(w[i].qs + 32 * h + 16);
            const int8_t *y = x[i].qs + 128 * h;
            int32x4_t g[8]; /* groups 8h .. 8h+7 */
            for (int j = 0; j < 4; j++) {
                const int8x16_t q0 = vreinterpretq_s8_u8(vandq_u8(shr_u8(v0, 2 * j), m3));
                const int8x16_t q1 = vreinterpretq_s8_u8(vandq_u8(shr_u8(v1, 2 * j), m3));
                g[2 * j] = DOT16(vdupq_n_s32(0), q0, vld1q_s8(y + 32 * j));
                g[2 * j + 1] = DOT16(vdupq_n_s32(0), q1, vld1q_s8(y + 32 * j + 16));
            }
            isum = vmlaq_s32(isum, group4(g[0], g[1], g[2], g[3]), sc[2 * h]);
            isum = vmlaq_s32(isum, group4(g[4], g[5], g[6], g[7]), sc[2 * h + 1]);
        }
        const float d = h2f(w[i].d) * x[i].d;
        const float dmin = h2f(w[i].dmin) * x[i].d;
        acc = kq_step(acc, vaddvq_s32(isum), msum, d, dmin, 1);
    }
    *out = acc;
}

static void NEON_FN(dot_q3_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q3_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const uint8x16_t m3 = vdupq_n_u8(3), one = vdupq_n_u8(1);
    const int8x16_t four = vdupq_n_s8(4);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int32x4_t sc[4];
        widen_scales_signed(vsubq_s8(vreinterpretq_s8_u8(q3_k_scales(w[i].scales)), vdupq_n_s8(32)), sc);
        const uint8x16_t hm0 = vld1q_u8(w[i].hmask), hm1 = vld1q_u8(w[i].hmask + 16);
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8x16_t v0 = vld1q_u8(w[i].qs + 32 * h), v1 = vld1q_u8(w[i].qs + 32 * h + 16);
            const int8_t *y = x[i].qs + 128 * h;
            int32x4_t g[8];
            for (int j = 0; j < 4; j++) {
                /* low | high << 2, minus 4: low - 4 where the high bit is clear, low where it is set */
                const uint8x16_t a0 = vorrq_u8(vandq_u8(shr_u8(v0, 2 * j), m3),
                                               vshlq_n_u8(vandq_u8(shr_u8(hm0, 4 * h + j), one), 2));
                const uint8x16_t a1 = vorrq_u8(vandq_u8(shr_u8(v1, 2 * j), m3),
                                               vshlq_n_u8(vandq_u8(shr_u8(hm1, 4 * h + j), one), 2));
                g[2 * j] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(a0), four), vld1q_s8(y + 32 * j));
                g[2 * j + 1] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(a1), four), vld1q_s8(y + 32 * j + 16));
            }
            isum = vmlaq_s32(isum, group4(g[0], g[1], g[2], g[3]), sc[2 * h]);
            isum = vmlaq_s32(isum, group4(g[4], g[5], g[6], g[7]), sc[2 * h + 1]);
        }
        const float d = h2f(w[i].d) * x[i].d;
        acc = kq_step(acc, vaddvq_s32(isum), 0, d, 0.0f, 0);
    }
    *out = acc;
}

/* Q4_K and Q5_K: scales and mins per group of 32; value 64h + l (l < 32) is in group 2h, 64h + 32 + l
 * in group 2h + 1. qh: Q5_K's fifth bits, NULL for Q4_K. */
static inline int32x4_t NEON_FN(k45_isum)(const uint8_t qs[AE_QK_K / 2], const uint8_t *qh, const int8_t *y,
                                          const int32x4_t sc[2])
{
    const uint8x16_t m4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);
    const uint8x16_t qh0 = qh ? vld1q_u8(qh) : vdupq_n_u8(0), qh1 = qh ? vld1q_u8(qh + 16) : vdupq_n_u8(0);
    int32x4_t g[8];
    for (int h = 0; h < 4; h++) {
        const uint8x16_t v0 = vld1q_u8(qs + 32 * h), v1 = vld1q_u8(qs + 32 * h + 16);
        uint8x16_t l0 = vandq_u8(v0, m4), l1 = vandq_u8(v1, m4), u0 = vshrq_n_u8(v0, 4), u1 = vshrq_n_u8(v1, 4);
        if (qh) {
            l0 = vorrq_u8(l0, vshlq_n_u8(vandq_u8(shr_u8(qh0, 2 * h), one), 4));
            l1 = vorrq_u8(l1, vshlq_n_u8(vandq_u8(shr_u8(qh1, 2 * h), one), 4));
            u0 = vorrq_u8(u0, vshlq_n_u8(vandq_u8(shr_u8(qh0, 2 * h + 1), one), 4));
            u1 = vorrq_u8(u1, vshlq_n_u8(vandq_u8(shr_u8(qh1, 2 * h + 1), one), 4));
        }
        const int8_t *yh = y + 64 * h;
        g[2 * h] = DOT16(DOT16(vdupq_n_s32(0), vreinterpretq_s8_u8(l0), vld1q_s8(yh)), vreinterpretq_s8_u8(l1),
                         vld1q_s8(yh + 16));
        g[2 * h + 1] = DOT16(DOT16(vdupq_n_s32(0), vreinterpretq_s8_u8(u0), vld1q_s8(yh + 32)), vreinterpretq_s8_u8(u1),
                             vld1q_s8(yh + 48));
    }
    return vmlaq_s32(vmulq_s32(group4(g[0], g[1], g[2], g[3]), sc[0]), group4(g[4], g[5], g[6], g[7]), sc[1]);
}

static void NEON_FN(dot_q4_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q4_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int32x4_t sc[2];
        int16x8_t mins;
        k_scales_mins(w[i].scales, sc, &mins);
        const int isum = vaddvq_s32(NEON_FN(k45_isum)(w[i].qs, NULL, x[i].qs, sc));
        const float d = h2f(w[i].d) * x[i].d;
        const float dmin = h2f(w[i].dmin) * x[i].d;
        acc = kq_step(acc, isum, summs32(x[i].bsums, mins), d, dmin, 1);
    }
    *out = acc;
}

static void NEON_FN(dot_q5_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q5_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int32x4_t sc[2];
        int16x8_t mins;
        k_scales_mins(w[i].scales, sc, &mins);
        const int isum = vaddvq_s32(NEON_FN(k45_isum)(w[i].qs, w[i].qh, x[i].qs, sc));
        const float d = h2f(w[i].d) * x[i].d;
        const float dmin = h2f(w[i].dmin) * x[i].d;
        acc = kq_step(acc, isum, summs32(x[i].bsums, mins), d, dmin, 1);
    }
    *out = acc;
}

static void NEON_FN(dot_q6_k)(int64_t k, const void *vw, const void *vx, float *out)
{
    const struct ae_block_q6_k *w = vw;
    const struct ae_block_q8_k *x = vx;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / AE_QK_K; i++) {
        int32x4_t sc[4];
        widen_scales_signed(vld1q_s8(w[i].scales), sc);
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            const int8_t *y = x[i].qs + 128 * h;
            int32x4_t g[8]; /* group 8h + 2j + half: values 128h + 32j + 16 half .. + 15 */
            for (int half = 0; half < 2; half++) {
                const int l = 16 * half;
                const uint8x16_t a = vld1q_u8(ql + l), b = vld1q_u8(ql + 32 + l), hb = vld1q_u8(qh + l);
                const uint8x16_t q0 = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
                const uint8x16_t q1 = vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
                const uint8x16_t q2 = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
                const uint8x16_t q3 = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
                g[half] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(q0), off), vld1q_s8(y + l));
                g[2 + half] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(q1), off), vld1q_s8(y + 32 + l));
                g[4 + half] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(q2), off), vld1q_s8(y + 64 + l));
                g[6 + half] = DOT16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(q3), off), vld1q_s8(y + 96 + l));
            }
            isum = vmlaq_s32(isum, group4(g[0], g[1], g[2], g[3]), sc[2 * h]);
            isum = vmlaq_s32(isum, group4(g[4], g[5], g[6], g[7]), sc[2 * h + 1]);
        }
        const float d = h2f(w[i].d) * x[i].d;
        acc = kq_step(acc, vaddvq_s32(isum), 0, d, 0.0f, 0);
    }
    *out = acc;
}

#define NEON_ROWS_K(t)                                                                                          \
    static void NEON_FN(gemm_rows_##t)(int64_t k, const void *w, size_t ws, int64_t nr, const void *x, size_t xr, \
                                       int64_t nc, float *y, int64_t ys)                                        \
    {                                                                                                           \
        for (int64_t c = 0; c < nc; c++)                                                                        \
            for (int64_t r = 0; r < nr; r++)                                                                    \
                NEON_FN(dot_##t)(k, (const uint8_t *)w + (size_t)r * ws, (const uint8_t *)x + (size_t)c * xr,    \
                                 &y[c * ys + r]);                                                               \
    }
NEON_ROWS_K(q2_k)
NEON_ROWS_K(q3_k)
NEON_ROWS_K(q4_k)
NEON_ROWS_K(q5_k)
NEON_ROWS_K(q6_k)
#undef NEON_ROWS_K
