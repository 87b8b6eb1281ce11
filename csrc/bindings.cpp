// pybind11 module dhvae_sdk.physics._voxel. dhvae_sdk/physics/overlap.py validates user input
// and chooses the device; the checks here only keep a direct caller from reading out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "voxel_api.h"

namespace py = pybind11;

namespace {

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Ints = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

void require(bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
}

void require_shape(const py::array& array, const std::vector<py::ssize_t>& trailing, const char* name) {
    const py::ssize_t expected = static_cast<py::ssize_t>(trailing.size()) + 1;
    bool ok = array.ndim() == expected;
    for (size_t i = 0; ok && i < trailing.size(); ++i) ok = trailing[i] < 0 || array.shape(i + 1) == trailing[i];
    require(ok, std::string(name) + " has the wrong shape");
}

void check_common(double voxel, int dilation, const std::string& device) {
    require(voxel > 0.0, "voxel must be positive");
    require(dilation >= 0, "dilation must be >= 0");
    require(device == "cpu" || device == "cuda", "device must be 'cpu' or 'cuda', got '" + device + "'");
}

// CUDA entry points exist only when nvcc built voxel_cuda.cu.
void require_cuda_built() {
#ifndef DHVAE_WITH_CUDA
    throw std::runtime_error(
        "this build of dhvae_sdk.physics._voxel has no CUDA path (nvcc was not found at build time or "
        "DHVAE_NO_CUDA=1 was set); use device='cpu' or rebuild with nvcc on PATH");
#endif
}

void raise_cuda_error(const std::string& error) {
    if (!error.empty()) throw std::runtime_error("CUDA voxel-overlap path failed: " + error);
}

dhvae::CapsuleInput capsule_input(const Doubles& segments, const Doubles& radii, const char* name) {
    require_shape(segments, {-1, 2, 3}, name);
    require(radii.ndim() == 1 && radii.shape(0) == segments.shape(1), std::string(name) + ": one radius per capsule");
    const int capsules = static_cast<int>(segments.shape(1));
    require(capsules >= 1 && capsules <= dhvae::kMaxCapsules,
            std::string(name) + ": between 1 and " + std::to_string(dhvae::kMaxCapsules) + " capsules");
    return dhvae::CapsuleInput{segments.data(), radii.data(), capsules};
}

dhvae::MeshInput mesh_input(const Doubles& vertices, const Ints& faces, const char* name) {
    require_shape(vertices, {-1, 3}, name);
    require_shape(faces, {3}, name);
    const int64_t vertex_count = vertices.shape(1);
    const int32_t* face_data = faces.data();
    for (py::ssize_t i = 0; i < faces.size(); ++i)
        require(face_data[i] >= 0 && face_data[i] < vertex_count, std::string(name) + ": face index out of range");
    return dhvae::MeshInput{vertices.data(), vertex_count, face_data, static_cast<int64_t>(faces.shape(0))};
}

py::array_t<int64_t> capsule_counts(const Doubles& segments_a, const Doubles& radii_a, const Doubles& segments_b,
                                    const Doubles& radii_b, double voxel, int dilation, const std::string& device,
                                    int threads) {
    check_common(voxel, dilation, device);
    const dhvae::CapsuleInput a = capsule_input(segments_a, radii_a, "body_a");
    const dhvae::CapsuleInput b = capsule_input(segments_b, radii_b, "body_b");
    require(segments_a.shape(0) == segments_b.shape(0), "body_a and body_b have different frame counts");
    const int64_t frames = segments_a.shape(0);
    py::array_t<int64_t> counts(frames);
    int64_t* out = counts.mutable_data();
    if (device == "cuda") {
        require_cuda_built();
#ifdef DHVAE_WITH_CUDA
        std::string error;
        {
            py::gil_scoped_release release;
            error = dhvae::capsule_counts_cuda(a, b, frames, voxel, dilation, out);
        }
        raise_cuda_error(error);
#endif
    } else {
        py::gil_scoped_release release;
        dhvae::capsule_counts_cpu(a, b, frames, voxel, dilation, threads, out);
    }
    return counts;
}

py::array_t<int64_t> mesh_counts(const Doubles& vertices_a, const Ints& faces_a, const Doubles& vertices_b,
                                 const Ints& faces_b, double voxel, int dilation, const std::string& device,
                                 int threads) {
    check_common(voxel, dilation, device);
    const dhvae::MeshInput a = mesh_input(vertices_a, faces_a, "body_a");
    const dhvae::MeshInput b = mesh_input(vertices_b, faces_b, "body_b");
    require(vertices_a.shape(0) == vertices_b.shape(0), "body_a and body_b have different frame counts");
    const int64_t frames = vertices_a.shape(0);
    py::array_t<int64_t> counts(frames);
    int64_t* out = counts.mutable_data();
    if (device == "cuda") require_cuda_built();
    std::string error;
    {
        py::gil_scoped_release release;
        const std::vector<dhvae::Region> regions = dhvae::mesh_regions(a, b, frames, voxel, dilation);
#ifdef DHVAE_WITH_CUDA
        if (device == "cuda") error = dhvae::mesh_counts_cuda(a, b, regions, voxel, dilation, out);
#endif
        if (device == "cpu") dhvae::mesh_counts_cpu(a, b, regions, voxel, dilation, threads, out);
    }
    raise_cuda_error(error);
    return counts;
}

py::dict cuda_status() {
    py::dict status;
#ifdef DHVAE_WITH_CUDA
    std::string error;
    const int devices = dhvae::cuda_device_count(&error);
    status["built"] = true;
    status["device_count"] = devices < 0 ? 0 : devices;
    status["error"] = error;
#else
    status["built"] = false;
    status["device_count"] = 0;
    status["error"] = std::string("not built: nvcc was not found at build time or DHVAE_NO_CUDA=1 was set");
#endif
    return status;
}

}  // namespace

PYBIND11_MODULE(_voxel, m) {
    m.doc() = "Voxel overlap of two bodies per frame (capsules or triangle meshes), CPU and CUDA.";
    m.def("capsule_counts", &capsule_counts, py::arg("segments_a"), py::arg("radii_a"), py::arg("segments_b"),
          py::arg("radii_b"), py::arg("voxel"), py::arg("dilation"), py::arg("device"), py::arg("threads") = 0,
          "Overlap counts [F] of capsule bodies: segments [F, C, 2, 3] float64, radii [C].");
    m.def("mesh_counts", &mesh_counts, py::arg("vertices_a"), py::arg("faces_a"), py::arg("vertices_b"),
          py::arg("faces_b"), py::arg("voxel"), py::arg("dilation"), py::arg("device"), py::arg("threads") = 0,
          "Overlap counts [F] of triangle meshes: vertices [F, V, 3] float64, faces [T, 3] int32.");
    m.def("cuda_status", &cuda_status, "{'built': bool, 'device_count': int, 'error': str}");
    m.def("capsule_test_rate", &dhvae::capsule_test_rate, py::arg("tests"),
          "Exact capsule tests per second on one core (for the benchmark's cost floor).");
}
