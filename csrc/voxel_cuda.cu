// CUDA path: one block row per frame (blockIdx.y), threads striding over that frame's rows
// (capsules) or triangles / columns / voxels (meshes). All arithmetic is voxel_core.h's.
// cudart is linked statically, so the module imports on machines without a GPU; every entry
// point then returns the runtime's error message instead of crashing.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "voxel_api.h"

namespace dhvae {
namespace {

constexpr int kThreads = 128;                    // >= 2 * kMaxCapsules: one thread per capsule at setup
constexpr int64_t kMaxFramesPerLaunch = 65535;   // gridDim.y limit
constexpr int64_t kMaxGridWords = int64_t(1) << 28;       // 1 GiB of mesh voxel words per launch
constexpr int64_t kMaxVertexBytes = int64_t(1) << 29;     // 512 MiB of vertices per launch

#define DHVAE_CUDA_TRY(call)                                              \
    do {                                                                  \
        const cudaError_t status_ = (call);                               \
        if (status_ != cudaSuccess) return cudaGetErrorString(status_);   \
    } while (0)

template <class T>
struct DeviceArray {
    T* data = nullptr;
    DeviceArray() = default;
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    ~DeviceArray() {
        if (data != nullptr) cudaFree(data);
    }
    cudaError_t allocate(size_t count) {
        return cudaMalloc(reinterpret_cast<void**>(&data), std::max<size_t>(count, 1) * sizeof(T));
    }
    cudaError_t upload(const T* host, size_t count) {
        cudaError_t status = allocate(count);
        if (status != cudaSuccess || count == 0) return status;
        return cudaMemcpy(data, host, count * sizeof(T), cudaMemcpyHostToDevice);
    }
};

__device__ void add_block_total(unsigned long long* block_total, unsigned long long value,
                                unsigned long long* frame_count) {
    atomicAdd(block_total, value);
    __syncthreads();
    if (threadIdx.x == 0 && *block_total != 0ull) atomicAdd(frame_count, *block_total);
}

__global__ void capsule_kernel(const double* segments_a, const double* radii_a, int count_a,
                               const double* segments_b, const double* radii_b, int count_b, double voxel,
                               int32_t dilation, unsigned long long* counts) {
    __shared__ CapsuleFrame f;
    __shared__ unsigned long long block_total;
    const int64_t frame = blockIdx.y;
    const int t = threadIdx.x;
    if (t == 0) {
        block_total = 0ull;
        f.count[0] = count_a;
        f.count[1] = count_b;
    }
    if (t < count_a) {
        f.capsules[0][t] = make_capsule(segments_a + (frame * count_a + t) * 6, radii_a[t], voxel, dilation);
    } else if (t < count_a + count_b) {
        const int c = t - count_a;
        f.capsules[1][c] = make_capsule(segments_b + (frame * count_b + c) * 6, radii_b[c], voxel, dilation);
    }
    __syncthreads();
    if (t == 0) frame_region(f, voxel);
    __syncthreads();
    if (t < count_a) {
        f.setups[0][t] = capsule_row_setup(f.capsules[0][t], f.axes, voxel);
    } else if (t < count_a + count_b) {
        f.setups[1][t - count_a] = capsule_row_setup(f.capsules[1][t - count_a], f.axes, voxel);
    }
    __syncthreads();
    unsigned long long total = 0ull;
    const int64_t rows = frame_row_count(f);
    for (int64_t row = int64_t(blockIdx.x) * blockDim.x + t; row < rows; row += int64_t(gridDim.x) * blockDim.x)
        total += static_cast<unsigned long long>(frame_row_overlap(f, row, voxel));
    add_block_total(&block_total, total, counts + frame);
}

struct DeviceMesh {
    const double* vertices;  // this launch's frames
    const int32_t* faces;
    int64_t vertex_count;
    int64_t face_count;
};

__device__ const double* frame_triangle(const DeviceMesh& mesh, int64_t frame, int64_t t, const double** q,
                                        const double** r) {
    const double* vertices = mesh.vertices + frame * mesh.vertex_count * 3;
    const int32_t* face = mesh.faces + 3 * t;
    *q = vertices + 3 * face[1];
    *r = vertices + 3 * face[2];
    return vertices + 3 * face[0];
}

__global__ void mesh_raster_kernel(DeviceMesh a, DeviceMesh b, const Region* regions, const int64_t* offsets,
                                   double voxel, uint32_t* grid) {
    const int64_t frame = blockIdx.y;
    const Region region = regions[frame];
    if (region_empty(region)) return;
    uint32_t* words = grid + offsets[frame];
    auto toggle = [words](int64_t index, uint32_t bit) { atomicXor(words + index, bit); };
    const int64_t total = a.face_count + b.face_count;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int body = i < a.face_count ? 0 : 1;
        const double *q, *r;
        const double* p = frame_triangle(body == 0 ? a : b, frame, body == 0 ? i : i - a.face_count, &q, &r);
        for (int axis = 0; axis < 3; ++axis) rasterize_parity(p, q, r, region, axis, voxel, parity_bit(body, axis), toggle);
    }
}

// After the scans; once for body 0, then for body 1 (see stamp_near).
__global__ void mesh_near_kernel(DeviceMesh mesh, int body, const Region* regions, const int64_t* offsets,
                                 double voxel, int32_t dilation, uint32_t* grid) {
    const int64_t frame = blockIdx.y;
    const Region region = regions[frame];
    if (region_empty(region)) return;
    uint32_t* words = grid + offsets[frame];
    auto set = [words](int64_t index, uint32_t bit) { atomicOr(words + index, bit); };
    const double reach = mul(static_cast<double>(dilation), voxel);
    for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < mesh.face_count;
         t += int64_t(gridDim.x) * blockDim.x) {
        const double *q, *r;
        const double* p = frame_triangle(mesh, frame, t, &q, &r);
        stamp_near(p, q, r, region, voxel, reach, body, words, set);
    }
}

__global__ void mesh_scan_kernel(const Region* regions, const int64_t* offsets, uint32_t* grid) {
    const int64_t frame = blockIdx.y;
    const Region region = regions[frame];
    if (region_empty(region)) return;
    uint32_t* words = grid + offsets[frame];
    auto toggle = [words](int64_t index, uint32_t bit) { atomicXor(words + index, bit); };
    const int64_t c0 = parity_column_count(region, 0), c1 = parity_column_count(region, 1);
    const int64_t per_body = c0 + c1 + parity_column_count(region, 2);
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < 2 * per_body;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int body = static_cast<int>(i / per_body);
        const int64_t j = i % per_body;
        const int axis = j < c0 ? 0 : (j < c0 + c1 ? 1 : 2);
        const int64_t column = axis == 0 ? j : (axis == 1 ? j - c0 : j - c0 - c1);
        parity_scan_column(words, region, axis, column, parity_bit(body, axis), toggle);
    }
}

__global__ void mesh_count_kernel(const Region* regions, const int64_t* offsets, const uint32_t* grid,
                                  unsigned long long* counts) {
    __shared__ unsigned long long block_total;
    const int64_t frame = blockIdx.y;
    if (threadIdx.x == 0) block_total = 0ull;
    __syncthreads();
    const int64_t volume = region_volume(regions[frame]);
    const uint32_t* words = grid + offsets[frame];
    unsigned long long total = 0ull;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < volume; i += int64_t(gridDim.x) * blockDim.x)
        total += mesh_occupied(words[i], 0) && mesh_occupied(words[i], 1);
    add_block_total(&block_total, total, counts + frame);
}

unsigned int blocks_for(int64_t work) {
    return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(1, (work + kThreads - 1) / kThreads), 1024));
}

std::string copy_counts(const DeviceArray<unsigned long long>& device, int64_t frames, int64_t* counts) {
    std::vector<unsigned long long> host(static_cast<size_t>(frames));
    DHVAE_CUDA_TRY(cudaGetLastError());
    DHVAE_CUDA_TRY(cudaMemcpy(host.data(), device.data, frames * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
    for (int64_t f = 0; f < frames; ++f) counts[f] = static_cast<int64_t>(host[f]);
    return "";
}

std::string capsule_chunk(const CapsuleInput& a, const CapsuleInput& b, int64_t first, int64_t frames, double voxel,
                          int32_t dilation, int64_t* counts) {
    DeviceArray<double> segments_a, segments_b, radii_a, radii_b;
    DeviceArray<unsigned long long> device_counts;
    DHVAE_CUDA_TRY(segments_a.upload(a.segments + first * a.capsules * 6, frames * a.capsules * 6));
    DHVAE_CUDA_TRY(segments_b.upload(b.segments + first * b.capsules * 6, frames * b.capsules * 6));
    DHVAE_CUDA_TRY(radii_a.upload(a.radii, a.capsules));
    DHVAE_CUDA_TRY(radii_b.upload(b.radii, b.capsules));
    DHVAE_CUDA_TRY(device_counts.allocate(frames));
    DHVAE_CUDA_TRY(cudaMemset(device_counts.data, 0, frames * sizeof(unsigned long long)));
    // A frame's rows are few hundred; several blocks per frame only pay off for small batches.
    const unsigned int blocks_per_frame = static_cast<unsigned int>(std::clamp<int64_t>(1024 / frames, 1, 32));
    capsule_kernel<<<dim3(blocks_per_frame, static_cast<unsigned int>(frames)), kThreads>>>(
        segments_a.data, radii_a.data, a.capsules, segments_b.data, radii_b.data, b.capsules, voxel, dilation,
        device_counts.data);
    return copy_counts(device_counts, frames, counts);
}

std::string mesh_chunk(const MeshInput& a, const MeshInput& b, const std::vector<Region>& regions, int64_t first,
                       int64_t frames, double voxel, int32_t dilation, int64_t* counts) {
    std::vector<int64_t> offsets(static_cast<size_t>(frames));
    int64_t words = 0, max_columns = 0, max_volume = 0;
    for (int64_t f = 0; f < frames; ++f) {
        const Region& region = regions[first + f];
        offsets[f] = words;
        const int64_t volume = region_volume(region);
        words += volume;
        max_volume = std::max(max_volume, volume);
        if (volume > 0) {
            const int64_t columns = parity_column_count(region, 0) + parity_column_count(region, 1) +
                                    parity_column_count(region, 2);
            max_columns = std::max(max_columns, 2 * columns);
        }
    }
    DeviceArray<double> vertices_a, vertices_b;
    DeviceArray<int32_t> faces_a, faces_b;
    DeviceArray<Region> device_regions;
    DeviceArray<int64_t> device_offsets;
    DeviceArray<uint32_t> grid;
    DeviceArray<unsigned long long> device_counts;
    DHVAE_CUDA_TRY(vertices_a.upload(a.vertices + first * a.vertex_count * 3, frames * a.vertex_count * 3));
    DHVAE_CUDA_TRY(vertices_b.upload(b.vertices + first * b.vertex_count * 3, frames * b.vertex_count * 3));
    DHVAE_CUDA_TRY(faces_a.upload(a.faces, a.face_count * 3));
    DHVAE_CUDA_TRY(faces_b.upload(b.faces, b.face_count * 3));
    DHVAE_CUDA_TRY(device_regions.upload(regions.data() + first, frames));
    DHVAE_CUDA_TRY(device_offsets.upload(offsets.data(), frames));
    DHVAE_CUDA_TRY(grid.allocate(words));
    DHVAE_CUDA_TRY(cudaMemset(grid.data, 0, std::max<int64_t>(words, 1) * sizeof(uint32_t)));
    DHVAE_CUDA_TRY(device_counts.allocate(frames));
    DHVAE_CUDA_TRY(cudaMemset(device_counts.data, 0, frames * sizeof(unsigned long long)));
    const DeviceMesh mesh_a{vertices_a.data, faces_a.data, a.vertex_count, a.face_count};
    const DeviceMesh mesh_b{vertices_b.data, faces_b.data, b.vertex_count, b.face_count};
    const unsigned int y = static_cast<unsigned int>(frames);
    mesh_raster_kernel<<<dim3(blocks_for(a.face_count + b.face_count), y), kThreads>>>(mesh_a, mesh_b, device_regions.data,
                                                                      device_offsets.data, voxel, grid.data);
    mesh_scan_kernel<<<dim3(blocks_for(max_columns), y), kThreads>>>(device_regions.data, device_offsets.data, grid.data);
    for (int body = 0; body < 2 && dilation > 0; ++body) {
        const DeviceMesh& mesh = body == 0 ? mesh_a : mesh_b;
        mesh_near_kernel<<<dim3(blocks_for(mesh.face_count), y), kThreads>>>(mesh, body, device_regions.data,
                                                                              device_offsets.data, voxel, dilation,
                                                                              grid.data);
    }
    mesh_count_kernel<<<dim3(blocks_for(max_volume), y), kThreads>>>(device_regions.data, device_offsets.data, grid.data,
                                                                      device_counts.data);
    return copy_counts(device_counts, frames, counts);
}

}  // namespace

int cuda_device_count(std::string* error) {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
        *error = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
        cudaGetLastError();
        return -1;
    }
    return count;
}

std::string capsule_counts_cuda(const CapsuleInput& a, const CapsuleInput& b, int64_t frames, double voxel,
                                int32_t dilation, int64_t* counts) {
    for (int64_t first = 0; first < frames; first += kMaxFramesPerLaunch) {
        const std::string error = capsule_chunk(a, b, first, std::min(kMaxFramesPerLaunch, frames - first), voxel,
                                                dilation, counts + first);
        if (!error.empty()) return error;
    }
    return "";
}

std::string mesh_counts_cuda(const MeshInput& a, const MeshInput& b, const std::vector<Region>& regions,
                             double voxel, int32_t dilation, int64_t* counts) {
    const int64_t frames = static_cast<int64_t>(regions.size());
    const int64_t vertex_bytes = (a.vertex_count + b.vertex_count) * 3 * int64_t(sizeof(double));
    for (int64_t first = 0; first < frames;) {
        // Grow the launch while it fits the grid-word, vertex-memory and gridDim.y limits.
        int64_t last = first, words = 0;
        while (last < frames && last - first < kMaxFramesPerLaunch &&
               (last == first || (words + region_volume(regions[last]) <= kMaxGridWords &&
                                  (last - first + 1) * vertex_bytes <= kMaxVertexBytes))) {
            words += region_volume(regions[last]);
            ++last;
        }
        const std::string error = mesh_chunk(a, b, regions, first, last - first, voxel, dilation, counts + first);
        if (!error.empty()) return error;
        first = last;
    }
    return "";
}

}  // namespace dhvae
