// What one CPU thread pays for the rows of an expert's down projection when it reads only their first parts, as the MoE
// worker does for its share of a lone cold expert (ggml_moe_host_send_set_parts: the worker takes the first parts of the
// intermediate dim, so the first columns of each of down's rows). Synthetic Q4_K rows of Qwen3-30B-A3B's down
// (2048 rows of 768 columns, 3 blocks a row), 768 MiB of them so that they come from memory, read as the worker reads
// them: row after row, asking for the row 4 ahead, one vec_dot a row. Also the dot product alone, its rows in L1, and the
// same rows laid out in block planes (plane b holds block b of every row, contiguous; a layout the series does not have):
// the first parts of each row are then read as one stream a plane, one vec_dot a block.
//
//   B=~/.cache/experts-first/build/cpu
//   gcc -O2 scripts/bench-down-rows.c -I$B/src/ggml/include -L$B/build/bin -lggml-cpu -lggml-base -lggml
//       -Wl,-rpath,$B/build/bin -o /tmp/bench-down-rows && /tmp/bench-down-rows
#include "ggml.h"
#include "ggml-cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BLOCK = 256, N_COLS = 768, N_ROWS = 2048, N_READS = 64, N_ROUNDS = 2 };

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec*1e9 + t.tv_nsec;
}

int main(void) {
    ggml_cpu_init();
    const struct ggml_type_traits_cpu * q4_k = ggml_get_type_traits_cpu(GGML_TYPE_Q4_K);
    const struct ggml_type_traits_cpu * q8_k = ggml_get_type_traits_cpu(GGML_TYPE_Q8_K);
    const size_t row_size    = ggml_row_size(GGML_TYPE_Q4_K, N_COLS);
    const size_t block_size  = ggml_row_size(GGML_TYPE_Q4_K, BLOCK);
    const size_t expert_size = row_size*N_ROWS;
    const int    n_experts   = (int) ((768ull << 20)/expert_size);

    float * f = malloc(sizeof(float)*N_COLS*N_ROWS);
    char  * w = malloc(expert_size*n_experts);
    char  * wp = malloc(expert_size*n_experts); // the same experts in block planes
    char  * y = malloc(ggml_row_size(GGML_TYPE_Q8_K, N_COLS));
    for (int i = 0; i < N_COLS*N_ROWS; ++i) {
        f[i] = (float) rand()/RAND_MAX - 0.5f;
    }
    for (int e = 0; e < n_experts; ++e) {
        ggml_quantize_chunk(GGML_TYPE_Q4_K, f, w + e*expert_size, 0, N_ROWS, N_COLS, NULL);
    }
    for (int e = 0; e < n_experts; ++e) {
        for (int r = 0; r < N_ROWS; ++r) {
            for (int b = 0; b < N_COLS/BLOCK; ++b) {
                memcpy(wp + e*expert_size + ((size_t) b*N_ROWS + r)*block_size, w + e*expert_size + r*row_size + b*block_size, block_size);
            }
        }
    }
    q8_k->from_float(f, y, N_COLS);
    const size_t y_block_size = ggml_row_size(GGML_TYPE_Q8_K, BLOCK);

    printf("| blocks of 3 read | a row from memory, ns | an expert's down, us | a row in L1, ns | an expert's down in block planes, us |\n"
           "|---|---|---|---|---|\n");
    float sum = 0.0f;
    for (int round = 0; round < N_ROUNDS; ++round) {
        for (int nb = 1; nb <= 3; ++nb) {
            const int n = nb*BLOCK;
            float s;
            const double t0 = now_ns();
            for (int k = 0; k < N_READS; ++k) {
                const char * expert = w + (size_t) ((k*37) % n_experts)*expert_size; // not the one before: from memory
                for (int r = 0; r < N_ROWS; ++r) {
                    if (r + 4 < N_ROWS) {
                        for (size_t i = 0; i < nb*block_size; i += 64) {
                            __builtin_prefetch(expert + (r + 4)*row_size + i, 0, 2);
                        }
                    }
                    q4_k->vec_dot(n, &s, 0, expert + r*row_size, 0, y, 0, 1);
                    sum += s;
                }
            }
            const double t1 = now_ns();
            for (int k = 0; k < N_READS; ++k) {
                for (int r = 0; r < 64; ++r) { // 64 rows of at most 27 KiB: in L1 after the first pass
                    q4_k->vec_dot(n, &s, 0, w + r*row_size, 0, y, 0, 1);
                    sum += s;
                }
            }
            const double t2 = now_ns();
            for (int k = 0; k < N_READS; ++k) {
                const char * expert = wp + (size_t) ((k*37) % n_experts)*expert_size;
                for (int r = 0; r < N_ROWS; ++r) {
                    float row_sum = 0.0f;
                    for (int b = 0; b < nb; ++b) {
                        const char * plane = expert + (size_t) b*N_ROWS*block_size;
                        if (r + 4 < N_ROWS) {
                            for (size_t i = 0; i < block_size; i += 64) {
                                __builtin_prefetch(plane + (r + 4)*block_size + i, 0, 2);
                            }
                        }
                        q4_k->vec_dot(BLOCK, &s, 0, plane + r*block_size, 0, y + b*y_block_size, 0, 1);
                        row_sum += s;
                    }
                    sum += row_sum;
                }
            }
            const double t3 = now_ns();
            printf("| %d | %.1f | %.1f | %.1f | %.1f |\n", nb, (t1 - t0)/N_READS/N_ROWS, (t1 - t0)/N_READS/1e3, (t2 - t1)/N_READS/64,
                (t3 - t2)/N_READS/1e3);
        }
    }
    fprintf(stderr, "(sum %g)\n", sum);
    return 0;
}
