// Causal attention over the KV cache with an online softmax: out[t, h] = softmax(s) . V for the query of
// row t (position P + t) and head h, where s_j = softcap(scale * q . k_j) for keys j <= P + t (and
// P + t - j < window when there is a window). Keys are taken in blocks of 64 aligned to multiples of
// 64, the same blocks for a position whatever the step, so a query's result does not depend on how the
// prompt was split into steps. No T x P score matrix exists: each block's scores live in shared memory.
// With an f16 cache, q is rounded to fp16 first, as the CPU kernel does. One workgroup per (head, row).
#include "common.glsl"
#define WG_SIZE 64
#include "reduce.glsl"

#define Q_REF 1
#define K_REF 2
#define V_REF 3
#define O_REF 4
#define N_HEAD pc.k[0]
#define N_HEAD_KV pc.k[1]
#define DK pc.k[2]
#define DV pc.k[3]
#define SCALE kf(4)
#define SOFTCAP kf(5)
#define WINDOW pc.k[6]
#define MAX_D 256

layout(local_size_x = WG_SIZE) in;

shared float qs[MAX_D];
shared float ps[WG_SIZE];

float kv_at(uint64_t cache, uint i) { return KV_F32 != 0u ? F32s(cache).v[i] : float(F16s(cache).v[i]); }

// q . k for the key row at element `at` of the K cache: 8 halves (or 4 floats) per load where the rows
// allow it.
float key_dot(uint at)
{
    float dot = 0.0;
    if (KV_F32 == 0u && (DK & 7u) == 0u) {
        U32x4s k = U32x4s(pc.ref[K_REF]);
        for (uint d = 0; d < DK; d += 8) {
            const uvec4 h = k.v[(at + d) / 8];
            const vec2 a = unpackHalf2x16(h.x), b = unpackHalf2x16(h.y), c = unpackHalf2x16(h.z), e = unpackHalf2x16(h.w);
            dot += qs[d] * a.x; dot += qs[d + 1] * a.y; dot += qs[d + 2] * b.x; dot += qs[d + 3] * b.y;
            dot += qs[d + 4] * c.x; dot += qs[d + 5] * c.y; dot += qs[d + 6] * e.x; dot += qs[d + 7] * e.y;
        }
    } else if (KV_F32 != 0u && (DK & 3u) == 0u) {
        Vec4s k = Vec4s(pc.ref[K_REF]);
        for (uint d = 0; d < DK; d += 4) {
            const vec4 v = k.v[(at + d) / 4];
            dot += qs[d] * v.x; dot += qs[d + 1] * v.y; dot += qs[d + 2] * v.z; dot += qs[d + 3] * v.w;
        }
    } else
        for (uint d = 0; d < DK; d++)
            dot += qs[d] * kv_at(pc.ref[K_REF], at + d);
    return dot;
}

// Two adjacent values of a V row (element i even, the cache f16): one 32-bit load.
vec2 v_pair(uint i) { return unpackHalf2x16(U32s(pc.ref[V_REF]).v[i / 2]); }

void main()
{
    const uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, lane = gl_LocalInvocationIndex;
    const uint pos = uint(STEP.P) + t;
    const uint kvh = h / (N_HEAD / N_HEAD_KV);
    for (uint d = lane; d < DK; d += WG_SIZE) {
        const float v = F32s(pc.ref[Q_REF]).v[(t * N_HEAD + h) * DK + d];
        qs[d] = KV_F32 != 0u ? v : round_half(v);
    }
    const uint first = WINDOW > 0u && pos >= WINDOW ? pos - WINDOW + 1 : 0u;
    // Each invocation owns output dimensions 2 * (i * WG_SIZE + lane) and the one after (pairs), or
    // i * WG_SIZE + lane (singles) when the V rows are f32 or of odd length.
    const bool pairs = KV_F32 == 0u && (DV & 1u) == 0u;
    float m = -1.0 / 0.0, l = 0.0;
    float acc[MAX_D / WG_SIZE];
    for (uint i = 0; i < MAX_D / WG_SIZE; i++)
        acc[i] = 0.0;
    barrier();
    for (uint j0 = first / WG_SIZE * WG_SIZE; j0 <= pos; j0 += WG_SIZE) {
        const uint j = j0 + lane;
        float s = -1.0 / 0.0;
        if (j >= first && j <= pos) {
            s = key_dot((j * N_HEAD_KV + kvh) * DK) * SCALE;
            if (SOFTCAP > 0.0)
                s = SOFTCAP * safe_tanh(s / SOFTCAP);
        }
        const float m_new = max(m, wg_max(s));
        const float corr = exp(m - m_new);
        const float p = j >= first && j <= pos ? exp(s - m_new) : 0.0;
        l = l * corr + wg_sum(p);
        ps[lane] = p;
        barrier();
        const uint n = min(uint(WG_SIZE), pos + 1 - j0);
        if (pairs) {
            for (uint i = 0; 2 * (i * WG_SIZE + lane) < DV; i++) {
                const uint d = 2 * (i * WG_SIZE + lane);
                float a0 = acc[2 * i] * corr, a1 = acc[2 * i + 1] * corr;
                for (uint jj = 0; jj < n; jj++) {
                    const vec2 v = v_pair(((j0 + jj) * N_HEAD_KV + kvh) * DV + d);
                    a0 += ps[jj] * v.x;
                    a1 += ps[jj] * v.y;
                }
                acc[2 * i] = a0;
                acc[2 * i + 1] = a1;
            }
        } else
            for (uint i = 0; i * WG_SIZE + lane < DV; i++) {
                const uint d = i * WG_SIZE + lane;
                float a = acc[i] * corr;
                for (uint jj = 0; jj < n; jj++)
                    a += ps[jj] * kv_at(pc.ref[V_REF], ((j0 + jj) * N_HEAD_KV + kvh) * DV + d);
                acc[i] = a;
            }
        m = m_new;
    }
    const uint o = (t * N_HEAD + h) * DV;
    if (pairs)
        for (uint i = 0; 2 * (i * WG_SIZE + lane) < DV; i++) {
            const uint d = 2 * (i * WG_SIZE + lane);
            F32s(pc.ref[O_REF]).v[o + d] = acc[2 * i] / l;
            F32s(pc.ref[O_REF]).v[o + d + 1] = acc[2 * i + 1] / l;
        }
    else
        for (uint i = 0; i * WG_SIZE + lane < DV; i++)
            F32s(pc.ref[O_REF]).v[o + i * WG_SIZE + lane] = acc[i] / l;
}
