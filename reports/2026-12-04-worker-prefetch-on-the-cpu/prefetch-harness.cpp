#include "ggml.h"
#include "ggml-cpu.h"
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>
#include <cstdlib>
// streams the gate+up rows of random experts (2048 x 1536 Q4_K each) from a 640 MB buffer, with and without huge pages
int main(int argc, char ** argv) {
    ggml_cpu_init();
    const bool huge = argc > 1 && argv[1][0] == '1';
    const int ahead = argc > 2 ? atoi(argv[2]) : 0;
    const int n = 2048, rows = 1536, n_exp = 240;
    const size_t rs = ggml_row_size(GGML_TYPE_Q4_K, n), es = rs*rows, size = es*n_exp;
    uint8_t * buf = (uint8_t *) mmap(nullptr, size + (2 << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    buf = (uint8_t *) (((uintptr_t) buf + (2 << 20) - 1) & ~(uintptr_t) ((2 << 20) - 1));
    if (huge) madvise(buf, size, MADV_HUGEPAGE);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> w((size_t) n*rows), x(n);
    for (auto & v : w) v = u(rng);
    for (auto & v : x) v = u(rng);
    std::vector<uint8_t> one(es);
    ggml_quantize_chunk(GGML_TYPE_Q4_K, w.data(), one.data(), 0, rows, n, nullptr);
    for (int e = 0; e < n_exp; ++e) memcpy(buf + e*es, one.data(), es);
    std::vector<uint8_t> xq(ggml_row_size(GGML_TYPE_Q8_K, n));
    const auto * tq = ggml_get_type_traits_cpu(GGML_TYPE_Q4_K);
    ggml_get_type_traits_cpu(GGML_TYPE_Q8_K)->from_float(x.data(), xq.data(), n);
    std::uniform_int_distribution<int> pick(0, n_exp - 1);
    for (int rep = 0; rep < 3; ++rep) {
        const int n_read = 400;
        auto t0 = std::chrono::steady_clock::now();
        float acc = 0;
        for (int i = 0; i < n_read; ++i) {
            const uint8_t * ex = buf + pick(rng)*es;
            for (int r = 0; r < rows; ++r) { float s; if (ahead) { const uint8_t * p = ex + (size_t) (r + ahead)*rs; for (size_t o = 0; o < rs; o += 64) __builtin_prefetch(p + o); } tq->vec_dot(n, &s, 0, ex + r*rs, 0, xq.data(), 0, 1); acc += s; }
        }
        double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        printf("%s ahead %d: %.1f GB/s (%g)\n", huge ? "huge pages" : "4K pages  ", ahead, es*n_read/dt/1e9, acc);
    }
    FILE * f = fopen("/proc/self/smaps_rollup", "r"); char line[256];
    while (fgets(line, sizeof line, f)) if (strstr(line, "AnonHuge")) printf("%s", line);
}
