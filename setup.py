"""dhvae-sdk: text to two-person motion (DHVAE).

The voxel-overlap extension always builds its CPU path; its CUDA path is compiled with nvcc
whenever nvcc is found (static cudart, so the module still imports on a machine without a
GPU). Set DHVAE_NO_CUDA=1 to skip nvcc.
"""
import os
import shutil
import subprocess

import pybind11
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda")
NVCC = os.path.join(CUDA_HOME, "bin", "nvcc")
if not os.path.exists(NVCC):
    NVCC = shutil.which("nvcc") or ""
    if NVCC:
        CUDA_HOME = os.path.dirname(os.path.dirname(os.path.realpath(NVCC)))
WITH_CUDA = bool(NVCC) and os.environ.get("DHVAE_NO_CUDA") != "1"
# SASS for A100 (80), H100 (90); PTX 90 so newer GPUs JIT-compile it.
CUDA_ARCH = [
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_90,code=compute_90",
]


class BuildExtWithNvcc(build_ext):
    """Compiles .cu sources with nvcc and links them with the host objects."""

    def build_extension(self, ext):
        cuda_sources = [s for s in ext.sources if s.endswith(".cu")]
        ext.sources = [s for s in ext.sources if not s.endswith(".cu")]
        os.makedirs(self.build_temp, exist_ok=True)
        for source in cuda_sources:
            obj = os.path.join(self.build_temp, os.path.basename(source) + ".o")
            subprocess.check_call([
                NVCC, "-c", source, "-o", obj, "-O3", "-std=c++17", "-Xcompiler", "-fPIC",
                *CUDA_ARCH, *[f"-I{d}" for d in ext.include_dirs],
            ])
            ext.extra_objects.append(obj)
        super().build_extension(ext)


def voxel_extension():
    sources = ["csrc/bindings.cpp", "csrc/voxel_cpu.cpp"]
    include_dirs = [pybind11.get_include(), "csrc"]
    kwargs = dict(libraries=["pthread"], define_macros=[])
    if WITH_CUDA:
        sources.append("csrc/voxel_cuda.cu")
        include_dirs.append(os.path.join(CUDA_HOME, "include"))
        kwargs["library_dirs"] = [os.path.join(CUDA_HOME, "lib64")]
        kwargs["libraries"] = ["cudart_static", "rt", "pthread", "dl"]
        kwargs["define_macros"] = [("DHVAE_WITH_CUDA", "1")]
    return Extension(
        "dhvae_sdk.physics._voxel", sources, include_dirs=include_dirs,
        depends=["csrc/voxel_core.h", "csrc/voxel_api.h"],  # header edits must rebuild the module
        # -ffp-contract=off: no FMA contraction, so counts match the numpy oracle bit for bit.
        extra_compile_args=["-O3", "-std=c++17", "-ffp-contract=off"], language="c++", **kwargs,
    )


setup(
    name="dhvae-sdk",
    version="0.2.0",
    description="Text to two-person 3D motion with a disentangled hierarchical VAE and latent diffusion",
    python_requires=">=3.10",
    packages=find_packages(include=["dhvae_sdk", "dhvae_sdk.*", "training", "training.*", "export", "benchmarks"]),
    package_data={"dhvae_sdk": ["motion/stats/*.npy", "assets/*", "assets/*/*"], "benchmarks": ["assets/*"]},
    ext_modules=[voxel_extension()],
    cmdclass={"build_ext": BuildExtWithNvcc},
    install_requires=[
        # torch, torchvision and open_clip must import together; these two are the pair
        # that works on CPU-only machines (see README).
        "torch==2.14.1",
        "torchvision==0.29.1",
        "numpy>=1.26",
        "open_clip_torch>=3.0",
        "safetensors>=0.4",
        "onnx>=1.17",
        "onnxscript>=0.5",
        "tqdm",
        "tensorboard",
        "imageio>=2.30",
        "imageio-ffmpeg",
        "matplotlib",
        "smplx>=0.1.28",
        "scipy",
    ],
    extras_require={
        # Exactly one ONNX Runtime build per environment: both write the same package dir.
        "cpu": ["onnxruntime>=1.20"],
        "gpu": ["onnxruntime-gpu[cuda,cudnn]>=1.20"],
        "trt": ["tensorrt-cu13"],
        "fp16": ["onnxconverter-common"],
        # pytest 9.2 derives a test's node id anew on each read, so pytest-xdist (3.8) can no longer
        # tag it with its group: --dist loadgroup then scatters a group's tests over the workers
        # and each one rebuilds the group's module fixtures (a fresh install's suite: 6:10 with pytest
        # 9.2.0, 4:05 with 9.1.1).
        # tests/test_suite_setup.py fails if the groups stop reaching the workers.
        "dev": ["pytest>=8,<9.2", "pytest-timeout", "pytest-xdist>=3.5"],
    },
    entry_points={"console_scripts": ["dhvae=dhvae_sdk.cli:main"]},
)
