// Prefill matrix product for any weight type: Y[m, n] = EPILOGUE(X[m] . W[n]) for the step's rows m.
//
// Tiles of 64 rows by 64 weight rows, 32 values of K at a time: the workgroup dequantizes the weight tile
// and copies the activation tile into shared memory, then each of its 256 invocations accumulates a
// 4 x 4 block of outputs. Every output adds its products in the order of k, whatever the tile it falls in
// and however many rows the step has, so a row's result does not depend on the step it came in.
// Workgroups: x over N / 64, y over the rows / 64.
#include "common.glsl"
#include "dequant.glsl"

#define X_REF 1
#define W_REF 2
#define Y_REF 3
#define N_ROWS pc.k[0]
#define K_COLS pc.k[1]
#define M_ROWS pc.k[2]
#define M_TIMES_T pc.k[3]

#define BM 64
#define BN 64
#define BK 32

layout(local_size_x = 256) in;

shared float xs[BK][BM + 1];
shared float ws[BK][BN + 1];

void main()
{
    const uint M = times_t(M_ROWS, M_TIMES_T, STEP.T);
    const uint tid = gl_LocalInvocationIndex, tx = tid & 15u, ty = tid >> 4;
    const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
    const uint64_t row_bytes = wrow_bytes(K_COLS);
    F32s x = F32s(pc.ref[X_REF]);
    float acc[4][4];
    for (uint i = 0; i < 4; i++)
        for (uint j = 0; j < 4; j++)
            acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < K_COLS; k0 += BK) {
        // Activations: 64 rows x 32 values, 8 per invocation.
        for (uint e = tid; e < BM * BK; e += 256) {
            const uint mm = e / BK, kk = e % BK, m = m0 + mm, k = k0 + kk;
            xs[kk][mm] = m < M && k < K_COLS ? x.v[m * K_COLS + k] : 0.0;
        }
        // Weights: 64 rows x 32 values as 8-value pieces, one per invocation.
        {
            const uint nn = tid >> 2, piece = tid & 3u, n = n0 + nn, k = k0 + 8 * piece;
            float v[8];
            if (n < N_ROWS && k + 8 <= K_COLS)
                dq8(pc.ref[W_REF] + uint64_t(n) * row_bytes, k / 8, v);
            else
                for (uint i = 0; i < 8; i++) {
#if WBLOCK == 1
                    v[i] = n < N_ROWS && k + i < K_COLS ? dq1(pc.ref[W_REF] + uint64_t(n) * row_bytes, k + i) : 0.0;
#else
                    v[i] = 0.0;
#endif
                }
            for (uint i = 0; i < 8; i++)
                ws[8 * piece + i][nn] = v[i];
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            float a[4], b[4];
            for (uint i = 0; i < 4; i++) {
                a[i] = xs[kk][ty * 4 + i];
                b[i] = ws[kk][tx * 4 + i];
            }
            for (uint i = 0; i < 4; i++)
                for (uint j = 0; j < 4; j++)
                    acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    F32s y = F32s(pc.ref[Y_REF]);
    for (uint i = 0; i < 4; i++)
        for (uint j = 0; j < 4; j++) {
            const uint m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
            if (m < M && n < N_ROWS) {
                float v = acc[i][j];
                EPILOGUE(v, m, n, N_ROWS);
                y.v[m * N_ROWS + n] = v;
            }
        }
}
