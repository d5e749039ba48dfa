// How fast the GPU reads a few hundred KiB of mapped pinned host memory (what a split layer's mat-vecs read of a cold
// expert in place) when a kernel does nothing but read it, and whether a second read then comes from the GPU's L2:
// it decides whether staging, or touching, the GPU's part of the cold experts in one wide pass before the mat-vecs could
// beat their reading in place (traced on an H200: 36 and 17 us more than all on the GPU for about a third of an expert).
// Each size is a contiguous region, as one expert's rows of one matrix are; the L2 is flushed (a 256 MiB VRAM read)
// before each cold measurement. Prints one JSON object.
//   nvcc -O3 -arch=sm_90 -o /tmp/bus-read-probe scripts/bus-read-probe.cu && /tmp/bus-read-probe
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

constexpr int threads = 256;
constexpr int unroll  = 4; // 16-byte loads a thread keeps in flight

// reads n16 16-byte words, unroll of them in flight a thread, and with dst stores them there; without, their xor keeps the loads
__global__ void read_words(const int4 * src, int4 * dst, size_t n16, int * sink) {
    int acc = 0;
    for (size_t i = (size_t) blockIdx.x*threads*unroll + threadIdx.x; i < n16; i += (size_t) gridDim.x*threads*unroll) {
        int4 v[unroll];
#pragma unroll
        for (int u = 0; u < unroll; ++u) {
            const size_t j = i + (size_t) u*threads;
            v[u] = j < n16 ? src[j] : make_int4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < unroll; ++u) {
            const size_t j = i + (size_t) u*threads;
            if (dst != nullptr && j < n16) {
                dst[j] = v[u];
            }
            acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
        }
    }
    if (acc == 0x7fffffff) {
        *sink = acc;
    }
}

static int grid_for(size_t n16) {
    return (int) std::max<size_t>(1, (n16 + threads*unroll - 1) / (threads*unroll));
}

template <typename F>
static float median_us(int reps, cudaStream_t stream, const int4 * flush, size_t flush16, int * sink, F && run) {
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    std::vector<float> t;
    for (int r = 0; r < reps; ++r) {
        if (flush) {
            read_words<<<grid_for(flush16), threads, 0, stream>>>(flush, nullptr, flush16, sink);
        }
        CHECK(cudaEventRecord(a, stream));
        run();
        CHECK(cudaEventRecord(b, stream));
        CHECK(cudaEventSynchronize(b));
        float ms;
        CHECK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms * 1000.0f);
    }
    std::sort(t.begin(), t.end());
    CHECK(cudaEventDestroy(a));
    CHECK(cudaEventDestroy(b));
    return t[t.size() / 2];
}

int main() {
    const double mib = 1024.0 * 1024.0;
    // a third of one bench expert's down rows, of its gate and up rows, of all three; two thirds; the whole expert
    const double sizes_mib[] = { 0.28, 0.56, 0.84, 1.69, 2.53, 32.0 };
    const size_t max_bytes = (size_t) (32.0 * mib) + 4096;
    const size_t flush_bytes = (size_t) 256 << 20;
    const int reps = 50;

    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    void * host;
    CHECK(cudaHostAlloc(&host, max_bytes, cudaHostAllocMapped));
    memset(host, 1, max_bytes);
    void * host_dev;
    CHECK(cudaHostGetDevicePointer(&host_dev, host, 0));
    void * vram;
    void * flush;
    int * sink;
    CHECK(cudaMalloc(&vram, max_bytes));
    CHECK(cudaMalloc(&flush, flush_bytes));
    CHECK(cudaMemset(flush, 0, flush_bytes));
    CHECK(cudaMalloc(&sink, sizeof(int)));
    const int4 * flush16 = (const int4 *) flush;
    const size_t flush_n16 = flush_bytes / 16;

    printf("{\"device\": \"%s\", \"sm\": %d, \"reps\": %d, \"rows\": [", prop.name, prop.major*10 + prop.minor, reps);
    for (size_t k = 0; k < sizeof(sizes_mib)/sizeof(sizes_mib[0]); ++k) {
        const size_t bytes = ((size_t) (sizes_mib[k] * mib)) & ~(size_t) 15;
        const size_t n16 = bytes / 16;
        const int4 * src = (const int4 *) host_dev;
        const float read_cold = median_us(reps, stream, flush16, flush_n16, sink, [&] {
            read_words<<<grid_for(n16), threads, 0, stream>>>(src, nullptr, n16, sink);
        });
        // twice in a row: the second from the L2 where it keeps what was read of host memory
        const float read_twice = median_us(reps, stream, flush16, flush_n16, sink, [&] {
            read_words<<<grid_for(n16), threads, 0, stream>>>(src, nullptr, n16, sink);
            read_words<<<grid_for(n16), threads, 0, stream>>>(src, nullptr, n16, sink);
        });
        const float read_vram = median_us(reps, stream, flush16, flush_n16, sink, [&] {
            read_words<<<grid_for(n16), threads, 0, stream>>>((const int4 *) vram, nullptr, n16, sink);
        });
        const float copy_kernel = median_us(reps, stream, flush16, flush_n16, sink, [&] {
            read_words<<<grid_for(n16), threads, 0, stream>>>(src, (int4 *) vram, n16, sink);
        });
        const float copy_engine = median_us(reps, stream, flush16, flush_n16, sink, [&] {
            CHECK(cudaMemcpyAsync(vram, host, bytes, cudaMemcpyHostToDevice, stream));
        });
        printf("%s\n  {\"mib\": %.2f, \"read_host_us\": %.2f, \"read_host_gbps\": %.1f, \"read_host_twice_us\": %.2f, "
               "\"read_vram_us\": %.2f, \"copy_kernel_us\": %.2f, \"copy_engine_us\": %.2f}",
               k ? "," : "", bytes / mib, read_cold, bytes / (read_cold * 1e3), read_twice, read_vram, copy_kernel, copy_engine);
    }
    printf("\n]}\n");
    CHECK(cudaGetLastError());
    return 0;
}
