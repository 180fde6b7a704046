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

void main()
{
    const uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, lane = gl_LocalInvocationIndex;
    const uint pos = uint(step_params().P) + t;
    const uint kvh = h / (N_HEAD / N_HEAD_KV);
    F32s q = F32s(pc.ref[Q_REF]);
    for (uint d = lane; d < DK; d += WG_SIZE) {
        const float v = q.v[(t * N_HEAD + h) * DK + d];
        qs[d] = KV_F32 != 0u ? v : round_half(v);
    }
    const uint first = WINDOW > 0u && pos >= WINDOW ? pos - WINDOW + 1 : 0u;
    float m = -1.0 / 0.0, l = 0.0;
    float acc[MAX_D / WG_SIZE];
    for (uint i = 0; i < MAX_D / WG_SIZE; i++)
        acc[i] = 0.0;
    barrier();
    for (uint j0 = first / WG_SIZE * WG_SIZE; j0 <= pos; j0 += WG_SIZE) {
        const uint j = j0 + lane;
        float s = -1.0 / 0.0;
        if (j >= first && j <= pos) {
            const uint at = (j * N_HEAD_KV + kvh) * DK;
            float dot = 0.0;
            for (uint d = 0; d < DK; d++)
                dot += qs[d] * kv_at(pc.ref[K_REF], at + d);
            s = dot * SCALE;
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
        for (uint i = 0; i * WG_SIZE + lane < DV; i++) {
            const uint d = i * WG_SIZE + lane;
            float a = acc[i] * corr;
            for (uint jj = 0; jj < n; jj++)
                a += ps[jj] * kv_at(pc.ref[V_REF], ((j0 + jj) * N_HEAD_KV + kvh) * DV + d);
            acc[i] = a;
        }
        m = m_new;
    }
    F32s o = F32s(pc.ref[O_REF]);
    for (uint i = 0; i * WG_SIZE + lane < DV; i++)
        o.v[(t * N_HEAD + h) * DV + i * WG_SIZE + lane] = acc[i] / l;
}
