// Prefill matrix product on tensor cores (VK_NV_cooperative_matrix): Y[m, n] = EPILOGUE(X[m] . W[n]), the
// weights already dequantized to f16 rows by dequant_f16.comp.
//
// Tiles of 64 rows by 128 weight rows, 32 values of K at a time. The workgroup (8 subgroups of 32) holds
// the activation tile, converted to f16, and the weight tile in shared memory, and loads the next pair of
// tiles into registers while it multiplies the current one; each subgroup multiplies a 32 x 32 corner of
// the tile as 2 x 2 16x16 matrices with fp32 accumulators. The results pass through a small shared
// staging area per subgroup, where the epilogue's elementwise steps are applied element by element
// before the store. A row's result depends only on its own activations, in the same order of K for every
// step size: the prompt's split into steps does not change it. Workgroups: x over the rows / 64 (so that
// neighbouring workgroups share a weight tile in the cache), y over N / 128.
#include "common.glsl"
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require

#define X_REF 1
#define W16_REF 2
#define Y_REF 3
#define N_ROWS pc.k[0]
#define K_COLS pc.k[1]
#define M_ROWS pc.k[2]
#define M_TIMES_T pc.k[3]

#define BM 64
#define BN 128
#define BK 32
#define LD (BK + 8)                    // row pitch of the shared tiles, off the same banks

layout(local_size_x = 256) in;

shared float16_t xs[BM * LD];          // activation tile, row m at m * LD
shared float16_t ws[BN * LD];          // weight tile, row n at n * LD
shared float stage[8 * 16 * 16];       // one 16 x 16 result per subgroup at a time

// The activation and weight values of K step k0 that invocation tid stores: 2 vec4s of activations (64
// rows x 8 vec4s), 2 uvec4s of weight halves (128 rows x 4 uvec4s).
void load_tiles(uint k0, uint m0, uint n0, uint M, uint tid, out vec4 xr[2], out uvec4 wr[2])
{
    for (uint r = 0; r < 2; r++) {
        const uint e = tid + 256 * r, mm = e >> 3, kk = 4 * (e & 7u), m = m0 + mm;
        xr[r] = m < M ? Vec4s(pc.ref[X_REF]).v[(m * K_COLS + k0 + kk) / 4] : vec4(0.0);
        const uint nn = e >> 2, kw = 8 * (e & 3u), n = n0 + nn;
        wr[r] = n < N_ROWS ? U32x4s(pc.ref[W16_REF]).v[(n * K_COLS + k0 + kw) / 8] : uvec4(0);
    }
}

void main()
{
    const uint M = times_t(M_ROWS, M_TIMES_T, STEP.T);
    const uint tid = gl_LocalInvocationIndex, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    const uint sm = (sg >> 2) * 32, sn = (sg & 3u) * 32;   // this subgroup's corner of the tile

    vec4 xr[2];
    uvec4 wr[2];
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[2][2];
    for (uint i = 0; i < 2; i++)
        for (uint j = 0; j < 2; j++)
            acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

    load_tiles(0, m0, n0, M, tid, xr, wr);
    for (uint k0 = 0; k0 < K_COLS; k0 += BK) {
        barrier(); // the previous step's multiplications are done with the tiles
        for (uint r = 0; r < 2; r++) {
            const uint e = tid + 256 * r, mm = e >> 3, kk = 4 * (e & 7u);
            const uint at = mm * LD + kk;
            xs[at] = float16_t(xr[r].x);
            xs[at + 1] = float16_t(xr[r].y);
            xs[at + 2] = float16_t(xr[r].z);
            xs[at + 3] = float16_t(xr[r].w);
            const uint nn = e >> 2, kw = 8 * (e & 3u), aw = nn * LD + kw;
            for (uint h = 0; h < 4; h++) {
                const f16vec2 p = unpackFloat2x16(wr[r][h]);
                ws[aw + 2 * h] = p.x;
                ws[aw + 2 * h + 1] = p.y;
            }
        }
        barrier();
        if (k0 + BK < K_COLS) // the next tiles' loads are in flight during the multiplications
            load_tiles(k0 + BK, m0, n0, M, tid, xr, wr);
        for (uint kk = 0; kk < BK; kk += 16) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a[2], b[2];
            for (uint i = 0; i < 2; i++)
                coopMatLoadNV(a[i], xs, (sm + 16 * i) * LD + kk, LD, false);
            for (uint j = 0; j < 2; j++) // B = W^T: column n of B is row n of the tile
                coopMatLoadNV(b[j], ws, (sn + 16 * j) * LD + kk, LD, true);
            for (uint i = 0; i < 2; i++)
                for (uint j = 0; j < 2; j++)
                    acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
        }
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
