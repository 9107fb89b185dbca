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
#define VEC __m256i
#define NLANES 8
#define ADD _mm256_add_epi32
#define SET1 _mm256_set1_epi32
#define LOADV(p) _mm256_loadu_si256(p)
#define STOREV(p, v) _mm256_storeu_si256(p, v)
/* Lanes 0-3 in the low halves, 4-7 in the high. */
#define LOAD_BLOCKS(m, p)                                                                           \
  for (int q = 0; q < 4; q++) {                                                                     \
    __m128i lo[4], hi[4];                                                                           \
    TRANSPOSE4(lo, p, q)                                                                            \
    TRANSPOSE4(hi, p + 4, q)                                                                        \
    for (int i = 0; i < 4; i++) m[4 * q + i] = _mm256_inserti128_si256(_mm256_castsi128_si256(lo[i]), hi[i], 1); \
  }
#include "md5-lanes.h"

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
  return fsn_md5_lanes_call(env, info, 8, x8_avx512, x8_avx2);
}
#endif
