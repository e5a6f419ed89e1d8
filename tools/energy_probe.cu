// tools/energy_probe.cu: energy per byte of each way our kernels move data, on the GPU it runs on,
// read from the driver's energy counter (NVML nvmlDeviceGetTotalEnergyConsumption, mJ).
//
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a tools/energy_probe.cu -o energy_probe -ldl
//   ./energy_probe [seconds per row, default 1.0]
//
// Why: the kernels run at the power cap, where time follows energy (perf log s7-s9), and the
// estimates of what a moved byte costs have misled two designs (s12, s13).  Each row runs one
// persistent kernel (one 256-thread block per SM, ~200 KB of shared memory so that no second block
// fits) back to back for the given time; rows: watts, GB/s, J per GB, and J per GB above the power
// of the same blocks sleeping (the "sleep" row), which is what the bytes themselves cost.
//   tma      cp.async.bulk global -> shared, 16 KB per copy, 8 copies in flight per block (the
//            weights' and grad-weight's path); from a 4 GB buffer (DRAM) or a 16 MB one (L2)
//   ldg      16-byte __ldg loads into registers (the halo loaders' path), same two buffers
//   lds/sts  16-byte shared-memory loads / stores from registers
//   store    cp.async.bulk shared -> global, 16 KB per copy (the forward's epilogue path), to a 4 GB
//            buffer (DRAM) or a 16 MB one (L2)
// Data: "rand" random bits, "tf32" the same with the low 13 bits cleared, "zero" zeros.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

constexpr int THREADS = 256;
constexpr int CHUNK = 16384;          // bytes per bulk copy
constexpr int STAGES = 8;
constexpr int SMEM_BYTES = STAGES * CHUNK + 64 * 1024 + 64;   // 192 KB + barriers: one block per SM
constexpr int LDS_VECS = STAGES * CHUNK / 16;                 // uint4 slots in the 128 KB ring

__device__ __forceinline__ unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

__global__ void fill_kernel(uint32_t* buf, size_t n, int mode) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2654435761u ^ (uint32_t)(i >> 32) * 40503u;
        x ^= x >> 15; x *= 2246822519u; x ^= x >> 13; x *= 3266489917u; x ^= x >> 16;
        buf[i] = mode == 0 ? x : mode == 1 ? (x & ~0x1FFFu) : 0u;
    }
}

// Fills this block's shared ring with random bits (mode 0), TF32 values (1) or zeros (2).
__device__ void fill_smem(uint4* ring, int mode) {
    for (int i = threadIdx.x; i < LDS_VECS; i += blockDim.x) {
        uint32_t x = (uint32_t)(i * 747796405u + blockIdx.x * 2891336453u);
        uint4 v = make_uint4(x * 2654435761u, x * 40503u + 7u, x * 2246822519u + 3u, x ^ 0x9E3779B9u);
        if (mode == 1) { v.x &= ~0x1FFFu; v.y &= ~0x1FFFu; v.z &= ~0x1FFFu; v.w &= ~0x1FFFu; }
        if (mode == 2) v = make_uint4(0, 0, 0, 0);
        ring[i] = v;
    }
    __syncthreads();
}

__global__ void __launch_bounds__(THREADS, 1) tma_kernel(const char* src, size_t window, long long iters) {
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned long long* bars = reinterpret_cast<unsigned long long*>(smem + STAGES * CHUNK + 64 * 1024);
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(smem_addr(&bars[s])));
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        const size_t chunk_mask = window / CHUNK - 1;   // windows are powers of 2
        for (long long i = 0; i < iters; ++i) {
            const int s = (int)(i % STAGES);
            const unsigned bar = smem_addr(&bars[s]);
            if (i >= STAGES) {
                const unsigned parity = (unsigned)(((i - STAGES) / STAGES) & 1);
                asm volatile("{\n.reg .pred p;\nW1: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra W1;\n}"
                             :: "r"(bar), "r"(parity) : "memory");
            }
            const size_t c = ((size_t)blockIdx.x + (size_t)i * gridDim.x) & chunk_mask;
            asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(CHUNK) : "memory");
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                         :: "r"(smem_addr(smem + s * CHUNK)), "l"(src + c * CHUNK), "r"(CHUNK), "r"(bar) : "memory");
        }
        for (long long i = iters > STAGES ? iters - STAGES : 0; i < iters; ++i) {
            const unsigned bar = smem_addr(&bars[i % STAGES]);
            const unsigned parity = (unsigned)((i / STAGES) & 1);
            asm volatile("{\n.reg .pred p;\nW2: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra W2;\n}"
                         :: "r"(bar), "r"(parity) : "memory");
        }
    }
    __syncthreads();
}

__global__ void __launch_bounds__(THREADS, 1) ldg_kernel(const uint4* src, size_t window_vecs, long long iters,
                                                        uint32_t* sink) {
    const size_t threads = (size_t)gridDim.x * blockDim.x;
    const size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    uint32_t acc = 0;
    for (long long i = 0; i < iters; i += 4) {
        uint4 v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) v[u] = __ldg(src + ((t + (size_t)(i + u) * threads) & (window_vecs - 1)));
#pragma unroll
        for (int u = 0; u < 4; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (acc == 0x12345678u) sink[t] = acc;   // never taken; keeps the loads
}

__global__ void __launch_bounds__(THREADS, 1) lds_kernel(long long iters, int mode, uint32_t* sink) {
    extern __shared__ __align__(128) unsigned char smem[];
    uint4* ring = reinterpret_cast<uint4*>(smem);
    fill_smem(ring, mode);
    uint32_t acc = 0;
    const unsigned base = smem_addr(ring);
    for (long long i = 0; i < iters; ++i) {
        const unsigned a = base + (unsigned)(((threadIdx.x + i * THREADS) % LDS_VECS) * 16);
        uint32_t x, y, z, w;
        asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(x), "=r"(y), "=r"(z), "=r"(w) : "r"(a));
        acc ^= x ^ y ^ z ^ w;
    }
    if (acc == 0x12345678u) sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

__global__ void __launch_bounds__(THREADS, 1) sts_kernel(long long iters, int mode) {
    extern __shared__ __align__(128) unsigned char smem[];
    const unsigned base = smem_addr(smem);
    uint32_t x = 0x9E3779B9u * (threadIdx.x + 1) + blockIdx.x;
    const uint32_t mask = mode == 0 ? 0xFFFFFFFFu : mode == 1 ? ~0x1FFFu : 0u;
    for (long long i = 0; i < iters; ++i) {
        x = x * 1664525u + 1013904223u;   // a new random pattern per store
        const unsigned a = base + (unsigned)(((threadIdx.x + i * THREADS) % LDS_VECS) * 16);
        asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};"
                     :: "r"(a), "r"(x & mask), "r"((x ^ 0xA5A5A5A5u) & mask), "r"((x * 3u) & mask), "r"((x + 0x1234567u) & mask)
                     : "memory");
    }
}

__global__ void __launch_bounds__(THREADS, 1) store_kernel(char* dst, size_t window, long long iters, int mode) {
    extern __shared__ __align__(128) unsigned char smem[];
    fill_smem(reinterpret_cast<uint4*>(smem), mode);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    if (threadIdx.x == 0) {
        const size_t chunk_mask = window / CHUNK - 1;
        for (long long i = 0; i < iters; ++i) {
            const size_t c = ((size_t)blockIdx.x + (size_t)i * gridDim.x) & chunk_mask;
            asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;"
                         :: "l"(dst + c * CHUNK), "r"(smem_addr(smem + (i % STAGES) * CHUNK)), "r"(CHUNK) : "memory");
            asm volatile("cp.async.bulk.commit_group;" ::: "memory");
            asm volatile("cp.async.bulk.wait_group.read %0;" :: "n"(STAGES - 1) : "memory");
        }
        asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
    }
    __syncthreads();
}

__global__ void __launch_bounds__(THREADS, 1) sleep_kernel(long long iters) {
    for (long long i = 0; i < iters; ++i) __nanosleep(1000);
}

// NVML through dlopen (no link-time dependency).
struct Nvml {
    void* dev = nullptr;
    int (*energy)(void*, unsigned long long*) = nullptr;
    bool ok = false;
    Nvml() {
        void* h = dlopen("libnvidia-ml.so.1", RTLD_NOW);
        if (!h) return;
        auto init = (int (*)())dlsym(h, "nvmlInit_v2");
        auto get = (int (*)(unsigned, void**))dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
        energy = (int (*)(void*, unsigned long long*))dlsym(h, "nvmlDeviceGetTotalEnergyConsumption");
        int cuda_dev = 0;
        cudaGetDevice(&cuda_dev);
        ok = init && get && energy && init() == 0 && get((unsigned)cuda_dev, &dev) == 0;
    }
    unsigned long long mj() const { unsigned long long v = 0; if (ok) energy(dev, &v); return v; }
};

struct Row { double watts, gbps, jpgb; };

template <typename Launch>
Row measure(const Nvml& nvml, double seconds, double bytes_per_launch, Launch launch) {
    launch();
    cudaDeviceSynchronize();
    const auto t0 = std::chrono::steady_clock::now();
    const unsigned long long e0 = nvml.mj();
    long long launches = 0;
    double elapsed = 0;
    do {
        for (int k = 0; k < 4; ++k) launch();
        launches += 4;
        cudaDeviceSynchronize();
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (elapsed < seconds);
    const unsigned long long e1 = nvml.mj();
    const double joules = (e1 - e0) / 1000.0;
    const double bytes = bytes_per_launch * launches;
    return {joules / elapsed, bytes / elapsed / 1e9, bytes > 0 ? joules / (bytes / 1e9) : 0.0};
}

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    Nvml nvml;
    if (!nvml.ok) { std::printf("NVML energy counter not available\n"); return 2; }
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    for (auto k : {(const void*)tma_kernel, (const void*)ldg_kernel, (const void*)lds_kernel, (const void*)sts_kernel,
                   (const void*)store_kernel, (const void*)sleep_kernel})
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES);
    const size_t big = (size_t)4 << 30, small = (size_t)16 << 20;
    char *data[3], *out;
    for (int m = 0; m < 3; ++m) {
        if (cudaMalloc(&data[m], big) != cudaSuccess) { std::printf("cudaMalloc failed\n"); return 2; }
        fill_kernel<<<4 * sms, 256>>>((uint32_t*)data[m], big / 4, m);
    }
    cudaMalloc(&out, big);
    uint32_t* sink;
    cudaMalloc(&sink, (size_t)sms * THREADS * 4);
    cudaDeviceSynchronize();
    std::printf("%s, %d SMs; %.1f s per row; energy from NVML\n", prop.name, sms, seconds);
    std::printf("%-26s %8s %9s %9s %12s\n", "row", "W", "GB/s", "J/GB", "J/GB - sleep");
    const char* names[3] = {"rand", "tf32", "zero"};
    // ~2 ms launches
    const long long tma_iters = 2000, ldg_iters = 2000, lds_iters = 40000, sts_iters = 40000, store_iters = 600;
    const Row idle = measure(nvml, seconds, 0, [&] { sleep_kernel<<<sms, THREADS, SMEM_BYTES>>>(2000); });
    std::printf("%-26s %8.1f\n", "sleep (every SM)", idle.watts);
    auto print = [&](const char* what, const Row& r) {
        const double over = r.gbps > 0 ? (r.watts - idle.watts) / r.gbps : 0;
        std::printf("%-26s %8.1f %9.1f %9.4f %12.4f\n", what, r.watts, r.gbps, r.jpgb, over);
        std::fflush(stdout);
    };
    char label[64];
    // One row per data pattern and source (a 4 GB buffer: DRAM; 16 MB: L2); launch(m, window).
    auto each_source = [&](const char* path, double bytes, auto launch) {
        for (int m = 0; m < 3; ++m)
            for (int where = 0; where < 2; ++where) {
                const size_t window = where == 0 ? big : small;
                std::snprintf(label, sizeof label, "%s %s %s", path, where == 0 ? "DRAM" : "L2", names[m]);
                print(label, measure(nvml, seconds, bytes, [&] { launch(m, window); }));
            }
    };
    each_source("tma", (double)sms * tma_iters * CHUNK, [&](int m, size_t window) {
        tma_kernel<<<sms, THREADS, SMEM_BYTES>>>(data[m], window, tma_iters); });
    each_source("ldg", (double)sms * THREADS * ldg_iters * 16, [&](int m, size_t window) {
        ldg_kernel<<<sms, THREADS, SMEM_BYTES>>>((const uint4*)data[m], window / 16, ldg_iters, sink); });
    for (int m = 0; m < 3; ++m) {
        const double bytes = (double)sms * THREADS * lds_iters * 16;
        std::snprintf(label, sizeof label, "lds %s", names[m]);
        print(label, measure(nvml, seconds, bytes, [&] { lds_kernel<<<sms, THREADS, SMEM_BYTES>>>(lds_iters, m, sink); }));
    }
    for (int m = 0; m < 3; ++m) {
        const double bytes = (double)sms * THREADS * sts_iters * 16;
        std::snprintf(label, sizeof label, "sts %s", names[m]);
        print(label, measure(nvml, seconds, bytes, [&] { sts_kernel<<<sms, THREADS, SMEM_BYTES>>>(sts_iters, m); }));
    }
    each_source("store", (double)sms * store_iters * CHUNK, [&](int m, size_t window) {
        store_kernel<<<sms, THREADS, SMEM_BYTES>>>(out, window, store_iters, m); });
    const cudaError_t e = cudaDeviceSynchronize();
    std::printf("%s\n", cudaGetErrorString(e));
    return e == cudaSuccess ? 0 : 1;
}
