#include "ggml.h"
#include "ggml-cpu.h"
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>
#include <random>
static constexpr size_t q4_k_size = 144;
static constexpr size_t q8_k_size = 292;

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
static void llama_moe_worker_dot_q4_k_avx512(int n, float * s, const void * vx, const void * vy) {
    const uint8_t * x = (const uint8_t *) vx;
    const uint8_t * y = (const uint8_t *) vy;
    const int nb = n/256;

    const __m512i m4 = _mm512_set1_epi8(0xF);
    // the 32-bit lanes of the scales of sub-blocks (2j, 2j + 2) and (2j + 1, 2j + 3) for the pair of 64-weight parts j = 0, 2
    const __m512i idx_lo[2] = { _mm512_set_epi32(2,2,2,2,2,2,2,2, 0,0,0,0,0,0,0,0), _mm512_set_epi32(6,6,6,6,6,6,6,6, 4,4,4,4,4,4,4,4) };
    const __m512i idx_hi[2] = { _mm512_set_epi32(3,3,3,3,3,3,3,3, 1,1,1,1,1,1,1,1), _mm512_set_epi32(7,7,7,7,7,7,7,7, 5,5,5,5,5,5,5,5) };

    __m256 acc   = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();

    for (int i = 0; i < nb; ++i) {
        const uint8_t * xb = x + i*q4_k_size;
        const uint8_t * yb = y + i*q8_k_size;
        float y_d;
        memcpy(&y_d, yb, sizeof(float));
        uint16_t x_d[2];
        memcpy(x_d, xb, sizeof(x_d));
        const float d    =  y_d*_cvtsh_ss(x_d[0]);
        const float dmin = -y_d*_cvtsh_ss(x_d[1]);

        // the 6-bit scales (bytes 0-7) and mins (bytes 8-15) of the 8 sub-blocks of 32 weights
        uint32_t utmp[4];
        memcpy(utmp, xb + 4, 12);
        utmp[3] = ((utmp[2] >> 4) & 0x0f0f0f0f) | (((utmp[1] >> 6) & 0x03030303) << 4);
        const uint32_t uaux = utmp[1] & 0x3f3f3f3f;
        utmp[1] = (utmp[2] & 0x0f0f0f0f) | (((utmp[0] >> 6) & 0x03030303) << 4);
        utmp[2] = uaux;
        utmp[0] &= 0x3f3f3f3f;
        const __m128i sm = _mm_loadu_si128((const __m128i *) utmp);

        // the mins: -dmin * sum over sub-blocks of min * (the sum of its 32 activations)
        const __m256i bsums = _mm256_loadu_si256((const __m256i *) (yb + 4 + 256));
        const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
        const __m128i mins  = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, pairs)), acc_m);

        const __m512i sc = _mm512_cvtepu8_epi32(sm); // lanes 0-7 the scales (8-15 the mins, not read)
        const uint8_t * q4 = xb + 16;
        const int8_t  * q8 = (const int8_t *) (yb + 4);
        __m512i sumi = _mm512_setzero_si512();
        for (int j = 0; j < 2; ++j) {
            // the 64-weight parts 2j and 2j + 1: low nibbles against activations 0-31 of each part, high ones against 32-63
            const __m512i bits = _mm512_loadu_si512((const void *) (q4 + 64*j));
            const __m512i lo   = _mm512_and_si512(bits, m4);
            const __m512i hi   = _mm512_and_si512(_mm512_srli_epi16(bits, 4), m4);
            const __m512i y_lo = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) (q8 + 128*j))),
                                     _mm256_loadu_si256((const __m256i *) (q8 + 128*j + 64)), 1);
            const __m512i y_hi = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) (q8 + 128*j + 32))),
                                     _mm256_loadu_si256((const __m256i *) (q8 + 128*j + 96)), 1);
            const __m512i p_lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, y_lo);
            const __m512i p_hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, y_hi);
            // |p| < 2^15, so the low 16 bits of a lane times the scale (the high 16 times 0) is p times the scale
            sumi = _mm512_dpwssd_epi32(sumi, p_lo, _mm512_permutexvar_epi32(idx_lo[j], sc));
            sumi = _mm512_dpwssd_epi32(sumi, p_hi, _mm512_permutexvar_epi32(idx_hi[j], sc));
        }
        const __m256i sumi8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi8), acc);
    }

    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));

    __m128 res = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    *s = _mm_cvtss_f32(res) + _mm_cvtss_f32(acc_m);
}

int main() {
    ggml_cpu_init();
    const int n = 2048, rows = 768*2;  // gate+up of one expert: 1.77 MB
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> w((size_t) n*rows), x(n);
    for (auto & v : w) v = u(rng);
    for (auto & v : x) v = u(rng);
    const auto * tq = ggml_get_type_traits_cpu(GGML_TYPE_Q4_K);
    const auto * t8 = ggml_get_type_traits_cpu(GGML_TYPE_Q8_K);
    std::vector<uint8_t> wq(ggml_row_size(GGML_TYPE_Q4_K, n)*rows), xq(ggml_row_size(GGML_TYPE_Q8_K, n));
    ggml_quantize_chunk(GGML_TYPE_Q4_K, w.data(), wq.data(), 0, rows, n, nullptr);
    t8->from_float(x.data(), xq.data(), n);
    const size_t rs = ggml_row_size(GGML_TYPE_Q4_K, n);
    for (int rows_used : {1, 16, rows}) {
        for (int k = 0; k < 2; ++k) {
            double best = 1e9; float chk = 0;
            for (int rep = 0; rep < 20; ++rep) {
                auto t0 = std::chrono::steady_clock::now();
                float acc = 0;
                for (int it = 0; it < (rows_used == rows ? 4 : 2000); ++it)
                for (int r = 0; r < rows_used; ++r) {
                    float s;
                    if (k == 0) tq->vec_dot(n, &s, 0, wq.data() + r*rs, 0, xq.data(), 0, 1);
                    else llama_moe_worker_dot_q4_k_avx512(n, &s, wq.data() + r*rs, xq.data());
                    acc += s;
                }
                double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                best = std::min(best, dt); chk = acc;
            }
            double bytes = (double) rs*rows_used*(rows_used == rows ? 4 : 2000);
            printf("%s rows=%d: %.1f GB/s (checksum %.6f)\n", k == 0 ? "ggml " : "vnni ", rows_used, bytes/best/1e9, chk);
        }
    }
}
