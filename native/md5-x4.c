/*
 * md5x4: four MD5s at once in the four 32-bit lanes of an SSE register, each advancing over the
 * same number of 64-byte blocks read from its own buffer. The block function of RFC 1321 §3.4,
 * unrolled; with AVX-512VL (chosen at run time) each round function is one vpternlogd and each
 * rotation one vprold. md5-lanes.ts schedules the lanes, pads and keeps the lengths.
 *
 * On the bench box, 4 × 8 MiB: this code alone about 1,900 MiB/s in all with SSE2 and 2,200 with
 * AVX-512VL; through md5-lanes.ts (bench/md5-lanes.ts) 1,760 and 1,770, against 1,540 for
 * md5-wasm.ts's x4, which also copies the bytes into its memory first.
 * x86-64 only; elsewhere the addon does not export it and md5-lanes.ts keeps the WebAssembly.
 */
#include "fs-native.h"
#if defined(__x86_64__)
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define VEC __m128i
#define NLANES 4
#define ADD _mm_add_epi32
#define SET1 _mm_set1_epi32
#define LOADV(p) _mm_loadu_si128(p)
#define STOREV(p, v) _mm_storeu_si128(p, v)
#define LOAD_BLOCKS(m, p) \
  for (int q = 0; q < 4; q++) TRANSPOSE4(m + 4 * q, p, q)
#include "md5-lanes.h"

#define F(x, y, z) _mm_xor_si128(z, _mm_and_si128(x, _mm_xor_si128(y, z)))
#define G(x, y, z) _mm_xor_si128(y, _mm_and_si128(z, _mm_xor_si128(x, y)))
#define H(x, y, z) _mm_xor_si128(_mm_xor_si128(x, y), z)
#define I(x, y, z) _mm_xor_si128(y, _mm_or_si128(x, _mm_xor_si128(z, _mm_set1_epi32(-1))))
#define ROTL(x, s) _mm_or_si128(_mm_slli_epi32(x, s), _mm_srli_epi32(x, 32 - (s)))
static void x4_sse2(uint32_t *state, const uint8_t *const *in, size_t blocks) { BODY }
#undef F
#undef G
#undef H
#undef I
#undef ROTL

#define F(x, y, z) _mm_ternarylogic_epi32(x, y, z, 0xca)
#define G(x, y, z) _mm_ternarylogic_epi32(x, y, z, 0xe4)
#define H(x, y, z) _mm_ternarylogic_epi32(x, y, z, 0x96)
#define I(x, y, z) _mm_ternarylogic_epi32(x, y, z, 0x39)
#define ROTL(x, s) _mm_rol_epi32(x, s)
__attribute__((target("avx512f,avx512vl"))) static void x4_avx512(uint32_t *state, const uint8_t *const *in, size_t blocks) { BODY }

/* The bytes of typed array `v` (8- or 32-bit elements), and how many; 0 if it is not one. */
static int typed_bytes(napi_env env, napi_value v, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  size_t count, offset;
  napi_value ab;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset) != napi_ok) return 0;
  size_t width = type == napi_uint32_array || type == napi_int32_array || type == napi_float32_array ? 4 : type == napi_uint8_array || type == napi_int8_array || type == napi_uint8_clamped_array ? 1 : 0;
  if (!width) return 0;
  *data = p;
  *length = count * width;
  return 1;
}

napi_value fsn_md5_lanes_call(napi_env env, napi_callback_info info, int lanes, md5_lanes_fn avx512, md5_lanes_fn plain) {
  size_t argc = 11;
  napi_value argv[11];
  double blocks_d;
  bool use_plain = false;
  char message[80];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < (size_t)lanes + 2 || napi_get_value_double(env, argv[lanes + 1], &blocks_d) != napi_ok ||
      (argc > (size_t)lanes + 2 && napi_get_value_bool(env, argv[lanes + 2], &use_plain) != napi_ok) ||
      !(blocks_d >= 0 && blocks_d <= 9007199254740991.0) || blocks_d != (double)(size_t)blocks_d) {
    snprintf(message, sizeof message, "md5x%d(state, p0, ..., p%d, blocks)", lanes, lanes - 1);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  size_t blocks = (size_t)blocks_d, length;
  uint8_t *state, *in[8];
  if (!typed_bytes(env, argv[0], &state, &length) || length != 16 * (size_t)lanes) {
    snprintf(message, sizeof message, "md5x%d: the state is %d words", lanes, 4 * lanes);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  for (int l = 0; l < lanes; l++) {
    if (!typed_bytes(env, argv[1 + l], &in[l], &length) || length / 64 < blocks) {
      snprintf(message, sizeof message, "md5x%d: a lane holds fewer bytes than the blocks asked", lanes);
      napi_throw_range_error(env, NULL, message);
      return NULL;
    }
  }
  uint32_t words[32];
  memcpy(words, state, 16 * (size_t)lanes);
  __builtin_cpu_init(); /* once; later calls return at once */
  (use_plain || !__builtin_cpu_supports("avx512vl") ? plain : avx512)(words, (const uint8_t *const *)in, blocks);
  memcpy(state, words, 16 * (size_t)lanes);
  return NULL;
}

/*
 * md5x4(state: Uint32Array(16), p0, p1, p2, p3: Uint8Array, blocks[, sse2]): synchronous; throws
 * on bad arguments. `sse2` true: the SSE2 code even where AVX-512VL is there (tests run both).
 */
napi_value Md5X4(napi_env env, napi_callback_info info) {
  return fsn_md5_lanes_call(env, info, 4, x4_avx512, x4_sse2);
}
#endif
