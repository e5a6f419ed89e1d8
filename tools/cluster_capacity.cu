// How many thread block clusters of each size (1-8 CTAs) run at once on this GPU, for a kernel of
// one CTA per SM (~200 KB of dynamic shared memory), through cudaOccupancyMaxActiveClusters: the
// capacity behind the cluster experiments in docs/perf-log.md (a cluster's CTAs share one GPC).
//     nvcc -arch=sm_90a -o /tmp/cluster_capacity tools/cluster_capacity.cu && /tmp/cluster_capacity
#include <cstdio>
#include <cuda_runtime.h>

__global__ void one_cta_per_sm(int* out) {
    extern __shared__ int smem[];
    smem[threadIdx.x] = threadIdx.x;
    __syncthreads();
    if (threadIdx.x == 0 && out) out[blockIdx.x] = smem[1];
}

int main() {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) { std::printf("no CUDA device\n"); return 1; }
    const int smem = 200 * 1024;
    if (cudaFuncSetAttribute(one_cta_per_sm, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess ||
        cudaFuncSetAttribute(one_cta_per_sm, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
        std::printf("cudaFuncSetAttribute failed\n");
        return 1;
    }
    std::printf("%s: %d SMs\n", prop.name, prop.multiProcessorCount);
    for (int size = 1; size <= 16; ++size) {
        cudaLaunchConfig_t cfg = {};
        cudaLaunchAttribute attr[1];
        cfg.gridDim = dim3(size, 1, 1);
        cfg.blockDim = dim3(384, 1, 1);
        cfg.dynamicSmemBytes = smem;
        attr[0].id = cudaLaunchAttributeClusterDimension;
        attr[0].val.clusterDim.x = size;
        attr[0].val.clusterDim.y = 1;
        attr[0].val.clusterDim.z = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        int clusters = 0;
        const cudaError_t e = cudaOccupancyMaxActiveClusters(&clusters, (void*)one_cta_per_sm, &cfg);
        if (e != cudaSuccess) { std::printf("cluster %2d: %s\n", size, cudaGetErrorString(e)); (void)cudaGetLastError(); continue; }
        std::printf("cluster %2d: %3d clusters, %3d CTAs (%d SMs idle)\n", size, clusters, clusters * size,
                    prop.multiProcessorCount - clusters * size);
    }
    return 0;
}
