// Prefill matrix product on tensor cores (VK_NV_cooperative_matrix): Y[m, n] = EPILOGUE(X[m] . W[n]).
//
// Tiles of 64 rows by 128 weight rows, 32 values of K at a time. The workgroup (8 subgroups of 32)
// converts the activation tile to fp16 and dequantizes the weight tile to fp16 in shared memory; each
// subgroup then multiplies a 32 x 32 corner of the tile as 2 x 2 16x16 matrices with fp32 accumulators.
// Each invocation reads its share of the next 32 values of K (two activation vec4s, two 8-value weight
// pieces) into registers before the products of the current ones, so the loads overlap the products.
// The results pass through a small shared staging area per subgroup, where the epilogue's elementwise
// steps are applied element by element before the store. A row's result depends only on its own
// activations, in the same order of K for every step size: the prompt's split into steps does not change
// it. Workgroups: x over N / 128, y over the rows / 64.
#include "common.glsl"
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#include "dequant.glsl"

#define X_REF 1
#define W_REF 2
#define Y_REF 3
#define N_ROWS pc.k[0]
#define K_COLS pc.k[1]
#define M_ROWS pc.k[2]
#define M_TIMES_T pc.k[3]

#define BM 64
#define BN 128
#define BK 32
#define PAD 8                          // keeps rows of the tiles off the same shared-memory banks

layout(local_size_x = 256) in;

shared float16_t xs[BM * (BK + PAD)];  // activation tile, row m at m * (BK + PAD)
shared float16_t ws[BN * (BK + PAD)];  // weight tile, row n at n * (BK + PAD)
shared float stage[8 * 16 * 16];       // one 16 x 16 result per subgroup at a time

// This invocation's share of the tiles at k0: activation vec4s e and e + 256 of the 64 x 32 tile, weight
// pieces e and e + 256 of the 128 x 32 tile (zero past the rows). Rows past the end read the last row and
// are zeroed, so that there is no branch between the loads and the products that follow them.
void load_tiles(uint k0, uint M, uint64_t row_bytes, out vec4 xv[2], out float wv[2][8])
{
    const uint tid = gl_LocalInvocationIndex, n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
    for (uint r = 0; r < 2; r++) {
        const uint e = tid + 256 * r;
        const uint mm = e / (BK / 4), kk = 4 * (e % (BK / 4)), m = m0 + mm;
        const vec4 v = Vec4s(pc.ref[X_REF]).v[(min(m, M - 1) * K_COLS + k0 + kk) / 4];
        xv[r] = m < M ? v : vec4(0.0);
        const uint nn = e >> 2, piece = e & 3u, n = n0 + nn;
        dq8(pc.ref[W_REF] + uint64_t(min(n, N_ROWS - 1)) * row_bytes, (k0 >> 3) + piece, wv[r]);
        for (uint i = 0; i < 8; i++)
            wv[r][i] = n < N_ROWS ? wv[r][i] : 0.0;
    }
}

void store_tiles(vec4 xv[2], float wv[2][8])
{
    const uint tid = gl_LocalInvocationIndex;
    for (uint r = 0; r < 2; r++) {
        const uint e = tid + 256 * r;
        const uint mm = e / (BK / 4), kk = 4 * (e % (BK / 4)), at = mm * (BK + PAD) + kk;
        xs[at] = float16_t(xv[r].x);
        xs[at + 1] = float16_t(xv[r].y);
        xs[at + 2] = float16_t(xv[r].z);
        xs[at + 3] = float16_t(xv[r].w);
        const uint nn = e >> 2, piece = e & 3u, wat = nn * (BK + PAD) + 8 * piece;
        for (uint i = 0; i < 8; i++)
            ws[wat + i] = float16_t(wv[r][i]);
    }
}

void main()
{
    const uint M = times_t(M_ROWS, M_TIMES_T, STEP.T);
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
    const uint sm = (sg >> 2) * 32, sn = (sg & 3u) * 32;   // this subgroup's corner of the tile
    const uint64_t row_bytes = wrow_bytes(K_COLS);

    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[2][2];
    for (uint i = 0; i < 2; i++)
        for (uint j = 0; j < 2; j++)
            acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

    vec4 xv[2];
    float wv[2][8];
    load_tiles(0, M, row_bytes, xv, wv);
    for (uint k0 = 0; k0 < K_COLS; k0 += BK) {
        store_tiles(xv, wv);
        barrier();
        if (k0 + BK < K_COLS)
            load_tiles(k0 + BK, M, row_bytes, xv, wv);
        for (uint kk = 0; kk < BK; kk += 16) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a[2], b[2];
            for (uint i = 0; i < 2; i++)
                coopMatLoadNV(a[i], xs, (sm + 16 * i) * (BK + PAD) + kk, BK + PAD, false);
            for (uint j = 0; j < 2; j++) // B = W^T: column n of B is row n of the tile
                coopMatLoadNV(b[j], ws, (sn + 16 * j) * (BK + PAD) + kk, BK + PAD, true);
            for (uint i = 0; i < 2; i++)
                for (uint j = 0; j < 2; j++)
                    acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
        }
        barrier();
    }
    for (uint i = 0; i < 2; i++)
        for (uint j = 0; j < 2; j++) {
            coopMatStoreNV(acc[i][j], stage, sg * 256, 16, false);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < 256; e += 32) {
                const uint m = m0 + sm + 16 * i + e / 16, n = n0 + sn + 16 * j + e % 16;
                if (m < M && n < N_ROWS) {
                    float v = stage[sg * 256 + e];
                    EPILOGUE(v, m, n, N_ROWS);
                    F32s(pc.ref[Y_REF]).v[m * N_ROWS + n] = v;
                }
            }
            subgroupBarrier();
        }
}
