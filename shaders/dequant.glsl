// Dequantization of one weight row, eight values at a time, for the weight type WTYPE.
//
// dq8(row, j, v) sets v[0..7] to values 8j..8j+7 of the row that starts at address row. Each type's
// formula is ggml's (and runtime/format/dequant.c's): the scale products in the same order, q * d
// where ggml writes q * d. Every block size is even and every half-precision field sits at an even
// offset, so a row that starts 2-byte aligned can be read with 16-bit loads for its scales and
// 8-bit loads for its quants. WBLOCK is the block's values, WBYTES its bytes.

uint wbyte(uint64_t row, uint off) { return uint(U8s(row).v[off]); }
float whalf(uint64_t row, uint off) { return half_to_float(U16s(row).v[off >> 1]); }
uint wpair(uint64_t row, uint off) { return uint(U16s(row).v[off >> 1]); } // bytes off, off + 1 (off even)

// The float types also give single values (rows of these need not hold a multiple of 8): dq1(row, k).
#if WTYPE == TYPE_F32
#define WBLOCK 1
#define WBYTES 4
float dq1(uint64_t row, uint k) { return F32s(row).v[k]; }
void dq8(uint64_t row, uint j, out float v[8])
{
    F32s w = F32s(row);
    for (uint i = 0; i < 8; i++)
        v[i] = w.v[8 * j + i];
}
#elif WTYPE == TYPE_F16 || WTYPE == TYPE_BF16
#define WBLOCK 1
#define WBYTES 2
#if WTYPE == TYPE_F16
float dq1(uint64_t row, uint k) { return half_to_float(U16s(row).v[k]); }
#else
float dq1(uint64_t row, uint k) { return bf16_to_float(U16s(row).v[k]); }
#endif
void dq8(uint64_t row, uint j, out float v[8])
{
    U16s w = U16s(row);
    for (uint i = 0; i < 8; i++)
#if WTYPE == TYPE_F16
        v[i] = half_to_float(w.v[8 * j + i]);
#else
        v[i] = bf16_to_float(w.v[8 * j + i]);
#endif
}
#elif WTYPE == TYPE_Q4_0 || WTYPE == TYPE_Q4_1 || WTYPE == TYPE_Q5_0 || WTYPE == TYPE_Q5_1
// Element e of a block: nibble e of the 16 quant bytes (low nibbles first), plus for Q5 bit e of qh.
#define WBLOCK 32
#if WTYPE == TYPE_Q4_0
#define WBYTES 18
#define QS_AT 2
#elif WTYPE == TYPE_Q4_1
#define WBYTES 20
#define QS_AT 4
#elif WTYPE == TYPE_Q5_0
#define WBYTES 22
#define QS_AT 6
#else
#define WBYTES 24
#define QS_AT 8
#endif
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 2, g = j & 3u, at = b * WBYTES;
    const uint first = at + QS_AT + 8u * (g & 1u), shift = 4u * (g >> 1);
    const float d = whalf(row, at);
#if WTYPE == TYPE_Q4_1 || WTYPE == TYPE_Q5_1
    const float m = whalf(row, at + 2);
#endif
#if WTYPE == TYPE_Q5_0 || WTYPE == TYPE_Q5_1
    const uint qh_at = at + QS_AT - 4;
    const uint qh = wpair(row, qh_at) | wpair(row, qh_at + 2) << 16;
#endif
    uint pairs[4]; // the 8 quant bytes, two to a 16-bit load (first is even)
    for (uint i = 0; i < 4; i++)
        pairs[i] = wpair(row, first + 2 * i);
    for (uint i = 0; i < 8; i++) {
        int q = int((pairs[i >> 1] >> (8u * (i & 1u) + shift)) & 15u);
#if WTYPE == TYPE_Q5_0 || WTYPE == TYPE_Q5_1
        q |= int((qh >> (8u * g + i)) & 1u) << 4;
#endif
#if WTYPE == TYPE_Q4_0
        v[i] = float(q - 8) * d;
#elif WTYPE == TYPE_Q5_0
        v[i] = float(q - 16) * d;
#else
        v[i] = float(q) * d + m;
#endif
    }
}
#elif WTYPE == TYPE_Q8_0
#define WBLOCK 32
#define WBYTES 34
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 2, at = b * WBYTES;
    const float d = whalf(row, at);
    for (uint i = 0; i < 8; i += 2) { // two quants to a 16-bit load
        const uint pair = wpair(row, at + 2 + 8 * (j & 3u) + i);
        v[i] = float(int(pair << 24) >> 24) * d;
        v[i + 1] = float(int(pair << 16) >> 24) * d;
    }
}
#elif WTYPE == TYPE_Q2_K
#define WBLOCK 256
#define WBYTES 84
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 5, e = (j & 31u) * 8, at = b * WBYTES;
    const uint h = e >> 7, s = (e & 127u) >> 5, l = e & 31u;
    const uint sc = wbyte(row, at + (e >> 4));
    const float dl = whalf(row, at + 80) * float(sc & 15u);
    const float ml = whalf(row, at + 82) * float(sc >> 4);
    for (uint i = 0; i < 8; i++)
        v[i] = dl * float((wbyte(row, at + 16 + 32 * h + l + i) >> (2 * s)) & 3u) - ml;
}
#elif WTYPE == TYPE_Q3_K
#define WBLOCK 256
#define WBYTES 110
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 5, e = (j & 31u) * 8, at = b * WBYTES;
    const uint h = e >> 7, s = (e & 127u) >> 5, l = e & 31u, k = e >> 5, g = e >> 4;
    const uint low = g < 8 ? wbyte(row, at + 96 + g) & 15u : wbyte(row, at + 96 + g - 8) >> 4;
    const uint high = (wbyte(row, at + 96 + 8 + (g & 3u)) >> (2 * (g >> 2))) & 3u;
    const float dl = whalf(row, at + 108) * float(int(low | high << 4) - 32);
    for (uint i = 0; i < 8; i++) {
        const int q = int((wbyte(row, at + 32 + 32 * h + l + i) >> (2 * s)) & 3u) -
                      (((wbyte(row, at + l + i) >> k) & 1u) != 0u ? 0 : 4);
        v[i] = dl * float(q);
    }
}
#elif WTYPE == TYPE_Q4_K || WTYPE == TYPE_Q5_K
#define WBLOCK 256
#if WTYPE == TYPE_Q4_K
#define WBYTES 144
#define QS_AT 16
#else
#define WBYTES 176
#define QS_AT 48
#endif
// The 6-bit scale and min of group g (< 8), from the 12 scale bytes at at + 4.
void k_scale_min(uint64_t row, uint at, uint g, out uint sc, out uint m)
{
    if (g < 4) {
        sc = wbyte(row, at + 4 + g) & 63u;
        m = wbyte(row, at + 8 + g) & 63u;
    } else {
        sc = (wbyte(row, at + 8 + g) & 15u) | (wbyte(row, at + g) >> 6) << 4;
        m = (wbyte(row, at + 8 + g) >> 4) | (wbyte(row, at + 4 + g) >> 6) << 4;
    }
}
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 5, e = (j & 31u) * 8, at = b * WBYTES;
    const uint g = e >> 5, l = e & 31u, shift = 4u * (g & 1u);
    uint sc, m;
    k_scale_min(row, at, g, sc, m);
    const float dl = whalf(row, at) * float(sc);
    const float ml = whalf(row, at + 2) * float(m);
    for (uint i = 0; i < 8; i++) {
        uint q = (wbyte(row, at + QS_AT + 32 * (g >> 1) + l + i) >> shift) & 15u;
#if WTYPE == TYPE_Q5_K
        q += ((wbyte(row, at + 16 + l + i) >> g) & 1u) << 4;
#endif
        v[i] = dl * float(q) - ml;
    }
}
#elif WTYPE == TYPE_Q6_K
#define WBLOCK 256
#define WBYTES 210
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 5, e = (j & 31u) * 8, at = b * WBYTES;
    const uint h = e >> 7, s = (e & 127u) >> 5, l = e & 31u;
    const float dl = whalf(row, at + 208) * float(int(I8s(row).v[at + 192 + (e >> 4)]));
    const uint ql_at = at + 64 * h + 32 * (s & 1u), shift = 4u * (s >> 1);
    for (uint i = 0; i < 8; i++) {
        const uint lo = (wbyte(row, ql_at + l + i) >> shift) & 15u;
        const uint hi = (wbyte(row, at + 128 + 32 * h + l + i) >> (2 * s)) & 3u;
        v[i] = dl * float(int(lo | hi << 4) - 32);
    }
}
#elif WTYPE == TYPE_IQ4_NL || WTYPE == TYPE_IQ4_XS
// 4-bit indices into a fixed table of 16 values; nibbles as in Q4_0 (per group of 32).
const int iq4_values[16] = int[16](-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
#if WTYPE == TYPE_IQ4_NL
#define WBLOCK 32
#define WBYTES 18
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 2, g = j & 3u, at = b * WBYTES;
    const uint first = at + 2 + 8u * (g & 1u), shift = 4u * (g >> 1);
    const float d = whalf(row, at);
    for (uint i = 0; i < 8; i++)
        v[i] = d * float(iq4_values[(wbyte(row, first + i) >> shift) & 15u]);
}
#else
#define WBLOCK 256
#define WBYTES 136
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 5, e = (j & 31u) * 8, at = b * WBYTES;
    const uint g = e >> 5, within = e & 31u;
    const uint sh = uint(U16s(row).v[(at + 2) >> 1]);
    const int sc = int(((wbyte(row, at + 4 + g / 2) >> (4 * (g & 1u))) & 15u) | ((sh >> (2 * g)) & 3u) << 4);
    const float dl = whalf(row, at) * float(sc - 32);
    const uint first = at + 8 + 16 * g + (within & 15u), shift = within >= 16u ? 4u : 0u;
    for (uint i = 0; i < 8; i++)
        v[i] = dl * float(iq4_values[(wbyte(row, first + i) >> shift) & 15u]);
}
#endif
#elif WTYPE == TYPE_TQ1_0
// Ternary digits, five to a byte (trit t of byte b: the top trit of b * 3^t mod 256).
#define WBLOCK 256
#define WBYTES 54
uint tq1_trit(uint byte_, uint t)
{
    const uint pow3[5] = uint[5](1u, 3u, 9u, 27u, 81u);
    return (((byte_ * pow3[t]) & 255u) * 3u) >> 8;
}
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 5, at = b * WBYTES;
    const float d = whalf(row, at + 52);
    for (uint i = 0; i < 8; i++) {
        const uint e = (j & 31u) * 8 + i;
        uint byte_at, t;
        if (e < 160) {
            t = e / 32;
            byte_at = e % 32;
        } else if (e < 240) {
            t = (e - 160) / 16;
            byte_at = 32 + (e - 160) % 16;
        } else {
            t = (e - 240) / 4;
            byte_at = 48 + (e - 240) % 4;
        }
        v[i] = float(int(tq1_trit(wbyte(row, at + byte_at), t)) - 1) * d;
    }
}
#elif WTYPE == TYPE_TQ2_0
// Ternary digits as 2-bit values minus one: byte 32h + m holds element 128h + 32l + m in bit pair l.
#define WBLOCK 256
#define WBYTES 66
void dq8(uint64_t row, uint j, out float v[8])
{
    const uint b = j >> 5, e = (j & 31u) * 8, at = b * WBYTES;
    const uint h = e >> 7, l = (e & 127u) >> 5, m = e & 31u;
    const float d = whalf(row, at + 64);
    for (uint i = 0; i < 8; i++)
        v[i] = float(int((wbyte(row, at + 32 * h + m + i) >> (2 * l)) & 3u) - 1) * d;
}
#else
#error "dequant.glsl: no dequantizer for this WTYPE"
#endif

// Bytes of one row of n values.
uint64_t wrow_bytes(uint n) { return uint64_t(n / WBLOCK) * WBYTES; }
