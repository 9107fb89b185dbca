/*
 * md5x8: eight MD5s at once in the eight 32-bit lanes of an AVX2 register, as md5x4 (md5-x4.c)
 * does four in SSE. MD5 is one long chain of dependent steps, so a lane's speed is set by the
 * chain's latency, not by how many instructions a step takes: eight lanes in one register hash
 * about twice the bytes four do in the same time. With AVX-512VL (chosen at run time) each round
 * function is one vpternlogd and each rotation one vprold, as in md5x4.
 * x86-64 with AVX2 only; elsewhere the addon does not export it and md5-lanes.ts stays at four
 * lanes.
 */
#include "fs-native.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include "md5-rounds.h"

#define STEP(f, a, b, c, d, g, k, s) \
  a = _mm256_add_epi32(b, ROTL(_mm256_add_epi32(_mm256_add_epi32(a, f(b, c, d)), _mm256_add_epi32(_mm256_set1_epi32((int)k), m[g])), s));

/* Four lanes' words 4q..4q+3, transposed: out[i] holds word 4q+i of lanes p[0..3]. */
#define TRANSPOSE4(out, p, q)                                                                        \
  {                                                                                                  \
    __m128i r0 = _mm_loadu_si128((const __m128i *)(p)[0] + (q)), r1 = _mm_loadu_si128((const __m128i *)(p)[1] + (q)); \
    __m128i r2 = _mm_loadu_si128((const __m128i *)(p)[2] + (q)), r3 = _mm_loadu_si128((const __m128i *)(p)[3] + (q)); \
    __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);                        \
    __m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);                        \
    out[0] = _mm_unpacklo_epi64(t0, t2);                                                             \
    out[1] = _mm_unpackhi_epi64(t0, t2);                                                             \
    out[2] = _mm_unpacklo_epi64(t1, t3);                                                             \
    out[3] = _mm_unpackhi_epi64(t1, t3);                                                             \
  }

/* m[w] holds word w of the current block of all 8 lanes: lanes 0-3 low, 4-7 high. */
#define LOAD_BLOCKS(m, p)                                                                           \
  for (int q = 0; q < 4; q++) {                                                                     \
    __m128i lo[4], hi[4];                                                                           \
    TRANSPOSE4(lo, p, q)                                                                            \
    TRANSPOSE4(hi, p + 4, q)                                                                        \
    for (int i = 0; i < 4; i++) m[4 * q + i] = _mm256_inserti128_si256(_mm256_castsi128_si256(lo[i]), hi[i], 1); \
  }

/* state: A, B, C, D, each as 8 lanes. */
#define BODY                                                                                        \
  __m256i A = _mm256_loadu_si256((const __m256i *)state), B = _mm256_loadu_si256((const __m256i *)state + 1); \
  __m256i C = _mm256_loadu_si256((const __m256i *)state + 2), D = _mm256_loadu_si256((const __m256i *)state + 3); \
  const uint8_t *p[8];                                                                              \
  for (int l = 0; l < 8; l++) p[l] = in[l];                                                         \
  for (size_t n = 0; n < blocks; n++) {                                                             \
    __m256i m[16];                                                                                  \
    LOAD_BLOCKS(m, p)                                                                               \
    __m256i a = A, b = B, c = C, d = D;                                                             \
    ROUNDS                                                                                          \
    A = _mm256_add_epi32(A, a);                                                                     \
    B = _mm256_add_epi32(B, b);                                                                     \
    C = _mm256_add_epi32(C, c);                                                                     \
    D = _mm256_add_epi32(D, d);                                                                     \
    for (int l = 0; l < 8; l++) p[l] += 64;                                                         \
  }                                                                                                 \
  _mm256_storeu_si256((__m256i *)state, A);                                                         \
  _mm256_storeu_si256((__m256i *)state + 1, B);                                                     \
  _mm256_storeu_si256((__m256i *)state + 2, C);                                                     \
  _mm256_storeu_si256((__m256i *)state + 3, D);

#define F(x, y, z) _mm256_xor_si256(z, _mm256_and_si256(x, _mm256_xor_si256(y, z)))
#define G(x, y, z) _mm256_xor_si256(y, _mm256_and_si256(z, _mm256_xor_si256(x, y)))
#define H(x, y, z) _mm256_xor_si256(_mm256_xor_si256(x, y), z)
#define I(x, y, z) _mm256_xor_si256(y, _mm256_or_si256(x, _mm256_xor_si256(z, _mm256_set1_epi32(-1))))
#define ROTL(x, s) _mm256_or_si256(_mm256_slli_epi32(x, s), _mm256_srli_epi32(x, 32 - (s)))
__attribute__((target("avx2"))) static void x8_avx2(uint32_t *state, const uint8_t *const *in, size_t blocks) { BODY }
#undef F
#undef G
#undef H
#undef I
#undef ROTL

#define F(x, y, z) _mm256_ternarylogic_epi32(x, y, z, 0xca)
#define G(x, y, z) _mm256_ternarylogic_epi32(x, y, z, 0xe4)
#define H(x, y, z) _mm256_ternarylogic_epi32(x, y, z, 0x96)
#define I(x, y, z) _mm256_ternarylogic_epi32(x, y, z, 0x39)
#define ROTL(x, s) _mm256_rol_epi32(x, s)
__attribute__((target("avx2,avx512f,avx512vl"))) static void x8_avx512(uint32_t *state, const uint8_t *const *in, size_t blocks) { BODY }

int md5x8_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

/*
 * md5x8(state: Uint32Array(32), p0, …, p7: Uint8Array, blocks[, avx2]): synchronous; throws on
 * bad arguments. `avx2` true: the AVX2 code even where AVX-512VL is there (tests run both).
 */
napi_value Md5X8(napi_env env, napi_callback_info info) {
  static md5_lanes_fn best;
  if (!best) {
    __builtin_cpu_init();
    best = __builtin_cpu_supports("avx512vl") ? x8_avx512 : x8_avx2;
  }
  return fsn_md5_lanes_call(env, info, 8, best, x8_avx2);
}
#endif
