// Rotary position embedding of x [T, heads, head_dim] into y (may be x): row t is at position P + t. Angles follow the CPU kernel exactly: theta
// starts at the position and is multiplied by theta_scale = base^(-2/n_rot) once per pair, in float;
// angle_i = freq_scale * (theta_i / freq_factor_i). The angle is reduced to [-pi, pi] in three steps
// before sin and cos, so that large positions keep their precision. With attn_factor != 1 the rotated
// features are then multiplied by it. One workgroup per (head, row).
#include "common.glsl"

#define X_REF 1
#define Y_REF 2
#define FF_REF 3
#define HEAD_DIM pc.k[1]
#define N_ROT pc.k[2]
#define NEOX pc.k[3]
#define THETA_SCALE kf(4)
#define FREQ_SCALE kf(5)
#define ATTN_FACTOR kf(6)

layout(local_size_x = 64) in;

// sin and cos of a with a reduced by 2 pi in three parts (Cody and Waite).
void sincos_reduced(float a, out float s, out float c)
{
    const float k = round(a * 0.15915494309189535);
    float r = fma(-k, 6.28125, a);
    r = fma(-k, 1.9353071693331003e-3, r);
    r = fma(-k, 1.0253131677018246e-11, r);
    s = sin(r);
    c = cos(r);
}

void main()
{
    const uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, heads = gl_NumWorkGroups.x;
    const int pos = STEP.P + int(t);
    const uint base = (t * heads + h) * HEAD_DIM, half_rot = N_ROT / 2;
    F32s x = F32s(pc.ref[X_REF]);
    F32s y = F32s(pc.ref[Y_REF]);
    for (uint i = gl_LocalInvocationIndex; i < half_rot; i += 64) {
        float theta = float(pos);
        for (uint j = 0; j < i; j++)
            theta *= THETA_SCALE;
        const float ff = pc.ref[FF_REF] != 0 ? F32s(pc.ref[FF_REF]).v[i] : 1.0;
        float s, c;
        sincos_reduced(FREQ_SCALE * (theta / ff), s, c);
        const uint a = NEOX != 0u ? i : 2 * i, b = NEOX != 0u ? i + half_rot : 2 * i + 1;
        const float x0 = x.v[base + a], x1 = x.v[base + b];
        float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
        if (ATTN_FACTOR != 1.0) {
            y0 *= ATTN_FACTOR;
            y1 *= ATTN_FACTOR;
        }
        y.v[base + a] = y0;
        y.v[base + b] = y1;
    }
    if (pc.ref[X_REF] != pc.ref[Y_REF])
        for (uint i = N_ROT + gl_LocalInvocationIndex; i < HEAD_DIM; i += 64)
            y.v[base + i] = x.v[base + i];
}
