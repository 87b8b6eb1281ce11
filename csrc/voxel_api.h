// Entry points of the voxel-overlap extension. Plain C++: bindings.cpp includes this and never
// a CUDA header; the *_cuda functions are defined in voxel_cuda.cu, compiled only when nvcc
// is found (DHVAE_WITH_CUDA).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "voxel_core.h"

namespace dhvae {

// Capsule bodies of all frames: segments [frames, capsules, 2, 3], radii [capsules].
struct CapsuleInput {
    const double* segments;
    const double* radii;
    int capsules;
};

// Mesh bodies of all frames: vertices [frames, vertex_count, 3], faces [face_count, 3].
struct MeshInput {
    const double* vertices;
    int64_t vertex_count;
    const int32_t* faces;
    int64_t face_count;
};

// The mesh path keeps one 32-bit word per voxel of a frame's shared region.
constexpr int64_t kMaxRegionVoxels = int64_t(1) << 27;

// threads <= 0 means one per hardware thread.
void capsule_counts_cpu(const CapsuleInput& a, const CapsuleInput& b, int64_t frames, double voxel,
                        int32_t dilation, int threads, int64_t* counts);

// Shared regions of every frame; throws std::invalid_argument when one exceeds kMaxRegionVoxels.
std::vector<Region> mesh_regions(const MeshInput& a, const MeshInput& b, int64_t frames, double voxel,
                                 int32_t dilation);

void mesh_counts_cpu(const MeshInput& a, const MeshInput& b, const std::vector<Region>& regions,
                     double voxel, int32_t dilation, int threads, int64_t* counts);

// Exact capsule tests per second on one core: the rate behind benchmarks/voxel.py's floor.
double capsule_test_rate(int64_t tests);

// Number of CUDA devices, or -1 with *error set when the runtime cannot be queried.
int cuda_device_count(std::string* error);

// Return "" on success, else the CUDA error message.
std::string capsule_counts_cuda(const CapsuleInput& a, const CapsuleInput& b, int64_t frames, double voxel,
                                int32_t dilation, int64_t* counts);
std::string mesh_counts_cuda(const MeshInput& a, const MeshInput& b, const std::vector<Region>& regions,
                             double voxel, int32_t dilation, int64_t* counts);

}  // namespace dhvae
