// CPU path: frames are independent, so threads take frames; within a frame the work is the
// header's row counting (capsules) or ray-parity rasterization (meshes).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "voxel_api.h"

namespace dhvae {
namespace {

int resolve_threads(int threads, int64_t frames) {
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, frames)));
}

// work(frame, worker) for every frame; frames are handed out in small chunks from a shared
// counter so a few expensive frames do not leave a thread idle. A worker's exception stops
// the others and is rethrown here.
template <class Work>
void for_each_frame(int64_t frames, int threads, Work work) {
    constexpr int64_t kChunk = 4;
    std::atomic<int64_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_lock;
    auto run = [&](int worker) {
        try {
            for (int64_t start; (start = next.fetch_add(kChunk)) < frames;)
                for (int64_t f = start; f < std::min(frames, start + kChunk); ++f) work(f, worker);
        } catch (...) {
            std::lock_guard<std::mutex> lock(failure_lock);
            if (!failure) failure = std::current_exception();
            next = frames;
        }
    };
    std::vector<std::thread> pool;
    for (int worker = 1; worker < threads; ++worker) pool.emplace_back(run, worker);
    run(0);
    for (std::thread& thread : pool) thread.join();
    if (failure) std::rethrow_exception(failure);
}

void load_capsule_frame(CapsuleFrame& f, const CapsuleInput& a, const CapsuleInput& b, int64_t frame,
                        double voxel, int32_t dilation) {
    const CapsuleInput* bodies[2] = {&a, &b};
    for (int body = 0; body < 2; ++body) {
        const CapsuleInput& in = *bodies[body];
        f.count[body] = in.capsules;
        for (int c = 0; c < in.capsules; ++c)
            f.capsules[body][c] = make_capsule(in.segments + (frame * in.capsules + c) * 6, in.radii[c], voxel, dilation);
    }
    frame_region(f, voxel);
    for (int body = 0; body < 2; ++body)
        for (int c = 0; c < f.count[body]; ++c) f.setups[body][c] = capsule_row_setup(f.capsules[body][c], f.axes, voxel);
}

int64_t mesh_frame_count(const MeshInput& a, const MeshInput& b, int64_t frame, const Region& region, double voxel,
                         int32_t dilation, std::vector<uint32_t>& grid) {
    const int64_t volume = region_volume(region);
    if (volume == 0) return 0;
    grid.assign(static_cast<size_t>(volume), 0u);
    uint32_t* words = grid.data();
    auto toggle = [words](int64_t index, uint32_t bit) { words[index] ^= bit; };
    auto set = [words](int64_t index, uint32_t bit) { words[index] |= bit; };
    const MeshInput* bodies[2] = {&a, &b};
    for (int body = 0; body < 2; ++body) {
        const MeshInput& in = *bodies[body];
        const double* vertices = in.vertices + frame * in.vertex_count * 3;
        for (int64_t t = 0; t < in.face_count; ++t) {
            const int32_t* face = in.faces + 3 * t;
            for (int axis = 0; axis < 3; ++axis)
                rasterize_parity(vertices + 3 * face[0], vertices + 3 * face[1], vertices + 3 * face[2], region, axis,
                                 voxel, parity_bit(body, axis), toggle);
        }
        for (int axis = 0; axis < 3; ++axis) {
            const int64_t columns = parity_column_count(region, axis);
            for (int64_t column = 0; column < columns; ++column)
                parity_scan_column(words, region, axis, column, parity_bit(body, axis), toggle);
        }
    }
    const double reach = mul(static_cast<double>(dilation), voxel);
    for (int body = 0; body < 2 && dilation > 0; ++body) {
        const MeshInput& in = *bodies[body];
        const double* vertices = in.vertices + frame * in.vertex_count * 3;
        for (int64_t t = 0; t < in.face_count; ++t) {
            const int32_t* face = in.faces + 3 * t;
            stamp_near(vertices + 3 * face[0], vertices + 3 * face[1], vertices + 3 * face[2], region, voxel, reach,
                       body, words, set);
        }
    }
    int64_t count = 0;
    for (int64_t i = 0; i < volume; ++i) count += mesh_occupied(words[i], 0) && mesh_occupied(words[i], 1);
    return count;
}

}  // namespace

void capsule_counts_cpu(const CapsuleInput& a, const CapsuleInput& b, int64_t frames, double voxel,
                        int32_t dilation, int threads, int64_t* counts) {
    for_each_frame(frames, resolve_threads(threads, frames), [&](int64_t frame, int) {
        CapsuleFrame f;
        load_capsule_frame(f, a, b, frame, voxel, dilation);
        int64_t total = 0;
        const int64_t rows = frame_row_count(f);
        for (int64_t row = 0; row < rows; ++row) total += frame_row_overlap(f, row, voxel);
        counts[frame] = total;
    });
}

std::vector<Region> mesh_regions(const MeshInput& a, const MeshInput& b, int64_t frames, double voxel,
                                 int32_t dilation) {
    const double grow = mul(static_cast<double>(dilation), voxel) + kCullSlack * voxel;
    std::vector<Region> regions(static_cast<size_t>(frames));
    for (int64_t f = 0; f < frames; ++f) {
        const Box box_a = vertex_box(a.vertices + f * a.vertex_count * 3, a.vertex_count, grow);
        const Box box_b = vertex_box(b.vertices + f * b.vertex_count * 3, b.vertex_count, grow);
        regions[f] = shared_region(box_a, box_b, voxel);
        const int64_t volume = region_volume(regions[f]);
        if (volume > kMaxRegionVoxels)
            throw std::invalid_argument(
                "frame " + std::to_string(f) + ": the two meshes share a box of " + std::to_string(volume) +
                " voxels, more than the " + std::to_string(kMaxRegionVoxels) +
                " the mesh path holds; use a larger voxel or check the vertex units (metres expected)");
    }
    return regions;
}

void mesh_counts_cpu(const MeshInput& a, const MeshInput& b, const std::vector<Region>& regions, double voxel,
                     int32_t dilation, int threads, int64_t* counts) {
    const int64_t frames = static_cast<int64_t>(regions.size());
    const int workers = resolve_threads(threads, frames);
    std::vector<std::vector<uint32_t>> grids(static_cast<size_t>(workers));
    for_each_frame(frames, workers, [&](int64_t frame, int worker) {
        counts[frame] = mesh_frame_count(a, b, frame, regions[frame], voxel, dilation, grids[worker]);
    });
}

double capsule_test_rate(int64_t tests) {
    constexpr int kCapsules = 16, kPoints = 1024;
    Capsule capsules[kCapsules];
    for (int c = 0; c < kCapsules; ++c) {
        const double segment[6] = {0.01 * c, 0.0, 0.02 * c, 0.1 + 0.01 * c, 0.4, 0.05};
        capsules[c] = make_capsule(segment, 0.05 + 0.002 * c, 0.02, 0);
    }
    double points[kPoints][3];
    for (int i = 0; i < kPoints; ++i)
        for (int k = 0; k < 3; ++k) points[i][k] = voxel_center((i * (7 + 5 * k)) % 41 - 10, 0.02);
    const int64_t rounds = std::max<int64_t>(1, tests / (kCapsules * kPoints));
    int64_t inside = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int64_t round = 0; round < rounds; ++round)
        for (int i = 0; i < kPoints; ++i)
            for (int c = 0; c < kCapsules; ++c)
                inside += capsule_contains(capsules[c], points[i][0], points[i][1] + 1e-9 * round, points[i][2]);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    volatile int64_t keep = inside;  // the loop must not be optimized away
    (void)keep;
    return static_cast<double>(rounds * kCapsules * kPoints) / seconds;
}

}  // namespace dhvae
