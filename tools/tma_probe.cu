// tools/tma_probe.cu: the smallest tensor-map (TMA) copies, to tell whether cp.async.bulk.tensor works
// on a machine.  One variant per process, since an illegal instruction ends the CUDA context:
//
//   nvcc -std=c++17 -gencode=arch=compute_90a,code=sm_90a tools/tma_probe.cu -o tma_probe -lcuda -ldl
//   ./tma_probe V ROWS DTYPE SRC [x]
//     V     A: store a 16 x 64 fp32 box, the map a __grid_constant__ kernel parameter
//           G: the same, the map in global memory;  L: load a box (mbarrier completion)
//     ROWS  rows of 1022 floats per plane (510: #55's output planes), 64 planes
//     DTYPE the CUtensorMapDataType (2 UINT32, 7 FLOAT32);  SRC d: dlsym, r: cudaGetDriverEntryPoint,
//           l: linked cuTensorMapEncodeTiled;  x: print the encoded map's 16 words
//     (environment L2P=1: L2 promotion 128 B instead of none; C0=N: the load's innermost start, default 5)
//
// On our H200 machines (driver 580.159.04, CUDA 13.0) these variants end in "an illegal instruction
// was encountered" at the UTMASTG / UTMALDG instruction: not because tensor maps fail there (perf-log
// w12 concluded that, wrongly), but because their boxes start at an innermost element that is not
// 16-byte aligned (1086 and 5 floats).  Found on 2026-11-21 (perf-log b3): the same load with the
// innermost start at 0, 4 or 8 floats copies correctly, at 1, 2 or 5 it fails.  The model's TMA
// copies (conv_wgrad_wgmma_kernel) start every box 16-byte aligned.
#include <cuda.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
using EncFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                           const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                           CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
__device__ __forceinline__ void store(const CUtensorMap* map, float* buf, int c0, int c1) {
    unsigned src = (unsigned)__cvta_generic_to_shared(buf);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];"
                 :: "l"(reinterpret_cast<uint64_t>(map)), "r"(src), "r"(c0), "r"(c1) : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}
__global__ void kA(const __grid_constant__ CUtensorMap m, int c0, int c1) {
    __shared__ __align__(1024) float buf[16 * 64];
    for (int i = threadIdx.x; i < 16 * 64; i += blockDim.x) buf[i] = 1000.f * (i / 64) + (i % 64);
    __syncthreads();
    if (threadIdx.x == 0) store(&m, buf, c0, c1);
}
__global__ void kG(const CUtensorMap* m, int c0, int c1) {
    __shared__ __align__(1024) float buf[16 * 64];
    for (int i = threadIdx.x; i < 16 * 64; i += blockDim.x) buf[i] = 1000.f * (i / 64) + (i % 64);
    __syncthreads();
    if (threadIdx.x == 0) store(m, buf, c0, c1);
}
__global__ void kL(const __grid_constant__ CUtensorMap m, int c0, int c1, float* out) {
    __shared__ __align__(1024) float buf[16 * 64];
    __shared__ __align__(8) unsigned long long bar;
    unsigned b = (unsigned)__cvta_generic_to_shared(&bar), dst = (unsigned)__cvta_generic_to_shared(buf);
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(b));
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(b), "r"(4096));
        asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];"
                     :: "r"(dst), "l"(reinterpret_cast<uint64_t>(&m)), "r"(b), "r"(c0), "r"(c1) : "memory");
        asm volatile("{\n.reg .pred p;\nW: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], 0;\n@!p bra W;\n}" :: "r"(b) : "memory");
        out[0] = buf[0]; out[1] = buf[65];
    }
}
int main(int argc, char** argv) {
    const char v = argc > 1 ? argv[1][0] : 'A';
    const uint64_t rows = argc > 2 ? atoll(argv[2]) : 510, cols = 1022;
    const int dt = argc > 3 ? atoi(argv[3]) : (int)CU_TENSOR_MAP_DATA_TYPE_UINT32;
    const char src = argc > 4 ? argv[4][0] : 'd';
    cudaFree(0);
    EncFn enc = nullptr;
    if (src == 'd') enc = (EncFn)dlsym(dlopen("libcuda.so.1", RTLD_NOW), "cuTensorMapEncodeTiled");
    if (src == 'r') { cudaDriverEntryPointQueryResult q; cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", (void**)&enc, cudaEnableDefault, &q); }
    if (src == 'l') enc = &cuTensorMapEncodeTiled;
    Dl_info info; dladdr((void*)enc, &info); printf("enc from %s\n", info.dli_fname);
    const uint64_t plane = rows * cols, planes = 64;
    float* y; cudaMalloc(&y, plane * planes * 4);
    cudaMemset(y, 0, plane * planes * 4);
    alignas(64) CUtensorMap m;
    cuuint64_t dims[2] = {plane, planes}, strides[1] = {plane * 4};
    cuuint32_t box[2] = {64, 16}, es[2] = {1, 1};
    const int rank = 2;
    const CUtensorMapL2promotion l2 = getenv("L2P") ? CU_TENSOR_MAP_L2_PROMOTION_L2_128B : CU_TENSOR_MAP_L2_PROMOTION_NONE;
    CUresult r = enc(&m, (CUtensorMapDataType)dt, rank, y, dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                     CU_TENSOR_MAP_SWIZZLE_NONE, l2, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    printf("[%c rows=%llu dtype=%d src=%c] encode %d: ", v, (unsigned long long)rows, dt, src, (int)r);
    if (argc > 5) { for (int i = 0; i < 16; ++i) printf("%016llx ", (unsigned long long)m.opaque[i]); printf("\n"); }
    float h[2] = {-1, -1};
    if (v == 'L') {
        float* out; cudaMalloc(&out, 8);
        cudaMemset(y, 0x3f, plane * planes * 4);
        const int c0 = getenv("C0") ? atoi(getenv("C0")) : 5;   // C0=4: an aligned start, which copies
        kL<<<1, 128>>>(m, c0, 3, out);
        cudaError_t e = cudaDeviceSynchronize();
        cudaMemcpy(h, out, 8, cudaMemcpyDeviceToHost);
        printf("%s, load values %g %g\n", cudaGetErrorString(e), h[0], h[1]);
        return 0;
    }
    if (v == 'G') {
        CUtensorMap* dm; cudaMalloc(&dm, sizeof(CUtensorMap));
        cudaMemcpy(dm, &m, sizeof(m), cudaMemcpyHostToDevice);
        kG<<<1, 128>>>(dm, 1022 + 64, 16);
    } else {
        kA<<<1, 128>>>(m, 1022 + 64, 16);
    }
    cudaError_t e = cudaDeviceSynchronize();
    cudaMemcpy(h, y + 17 * plane + 1022 + 64 + 5, 8, cudaMemcpyDeviceToHost);
    printf("%s, values %g %g (want 1005 1006)\n", cudaGetErrorString(e), h[0], h[1]);
    return 0;
}
