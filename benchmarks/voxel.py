"""Voxel-overlap speed: the CPU extension against the brute-force numpy reference.

Scenario: two capsule bodies (the default radius table) at 2 cm voxels in a hug
(benchmarks/voxel_reference.hug_joints: B faces A 0.30 m in front of it, arms reaching around
the other, joint angles jittered per frame). Printed:

- frames/s of ``overlap_counts`` on the CPU path (all cores, and one thread) and of the numpy
  reference (dense lattice over the union of both bodies' boxes, every capsule tested at every
  voxel), and their ratio;
- the work per frame: voxels in the intersection of the two boxes (the only voxels the
  extension visits), rows through it, and span tests (row x capsule pairs surviving the
  per-capsule row culling);
- the cost floor: voxels visited x primitive tests / measured core rate, where the core rate
  is the exact capsule test timed in C++ (``_voxel.capsule_test_rate``). "dense" charges every
  capsule of both bodies at every visited voxel, "culled" only the capsules whose box holds
  the voxel. The extension does not test voxels one by one: per row it solves each capsule's
  span in closed form and runs the exact test only where a voxel centre lies within 1 % of a
  voxel of a span end. Its work grows with the rows (4x per halving of the voxel), the floor
  with the voxels (8x), so it beats the culled floor more the finer the voxel (--voxel 0.01);
- two triangle meshes of SMPL-X size (icospheres of 20480 faces, 0.25 m radius) overlapping.

CUDA on an H100, on paper. One thread computes one row: for each capsule of both bodies whose
box reaches the row it solves the trace on the capsule's cylinder (~60 FP64 instructions,
counting a division or square root as ~12 since sm_90 builds them from FP64 FMAs), an end
sphere about half the time (~25 each), the conversion to voxel indices (~15) and, rarely, an
exact end test: ~90 FP64 instructions per span test, plus ~50 integer instructions (row
culling, sorting and merging the spans) that the INT32 lanes issue alongside. H100 SXM issues
132 SMs x 64 FP64 lanes x 1.98 GHz = 16.7e12 FP64 instructions/s. ptxas reports 96 registers
and 544 bytes of stack (the span lists) for the kernel, so 5 blocks of 128 threads fit per SM
(31 % occupancy); with divergence between rows of unequal span counts we assume 30 % of peak:
kernel frames/s = 0.3 x 16.7e12 / (90 x span tests per frame). That is far beyond what the
host can feed: the input is 1.7 kB per frame (PCIe at ~25 GB/s: ~15 M frames/s), and the numpy
preparation of the capsule end points, measured below, is the end-to-end bound.

Usage: python -m benchmarks.voxel [--frames 256] [--reference-frames 3] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial

import numpy as np

from benchmarks.voxel_reference import capsule_overlap_reference, hug_joints, icosphere
from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.physics import _voxel
from dhvae_sdk.physics.bodies import CapsuleBody, MeshBody
from dhvae_sdk.physics.overlap import overlap_counts

H100_FP64_INSTRUCTIONS_PER_S = 132 * 64 * 1.98e9
H100_EFFICIENCY = 0.3
FP64_INSTRUCTIONS_PER_SPAN_TEST = 90


def best_seconds(run, repeats: int) -> float:
    """Shortest of several runs: the machine is shared, and the minimum is the least disturbed."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def first_and_last_centres(lo: np.ndarray, hi: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    return np.ceil(lo / voxel - 0.5), np.floor(hi / voxel - 0.5)


def work_per_frame(segments_a, segments_b, radii, voxel: float) -> dict[str, float]:
    """Mean per-frame voxels visited, rows, span tests and box-culled voxel tests."""
    totals = {"region_voxels": 0.0, "rows": 0.0, "span_tests": 0.0, "culled_voxel_tests": 0.0}
    frames = len(segments_a)
    for seg_a, seg_b in zip(segments_a, segments_b):
        capsule_lo = [seg.min(axis=1) - radii[:, None] for seg in (seg_a, seg_b)]
        capsule_hi = [seg.max(axis=1) + radii[:, None] for seg in (seg_a, seg_b)]
        lo = np.maximum(capsule_lo[0].min(0), capsule_lo[1].min(0))
        hi = np.minimum(capsule_hi[0].max(0), capsule_hi[1].max(0))
        first, last = first_and_last_centres(lo, hi, voxel)
        extent = np.maximum(last - first + 1, 0)
        if extent.min() == 0:
            continue
        along = int(np.argmax(extent))
        across = [k for k in range(3) if k != along]
        totals["region_voxels"] += extent.prod()
        totals["rows"] += extent[across].prod()
        for body in range(2):
            c_first, c_last = first_and_last_centres(capsule_lo[body], capsule_hi[body], voxel)
            inside = np.clip(np.minimum(c_last, last) - np.maximum(c_first, first) + 1, 0, None)
            totals["span_tests"] += inside[:, across].prod(axis=1).sum()
            totals["culled_voxel_tests"] += inside.prod(axis=1).sum()
    return {key: value / frames for key, value in totals.items()}


def capsule_benchmark(frames: int, reference_frames: int, voxel: float, threads: int) -> dict:
    joints_a, joints_b = hug_joints(frames, seed=0)
    body_a, body_b = CapsuleBody(joints_a), CapsuleBody(joints_b)
    counts = overlap_counts(body_a, body_b, voxel, device="cpu", threads=threads)
    cpu = best_seconds(lambda: overlap_counts(body_a, body_b, voxel, device="cpu", threads=threads), 5)
    cpu_one = best_seconds(lambda: overlap_counts(body_a, body_b, voxel, device="cpu", threads=1), 3)
    prepare = best_seconds(lambda: (body_a.segments(), body_b.segments()), 5)

    segments_a, segments_b = body_a.segments()[0], body_b.segments()[0]
    start = time.perf_counter()
    reference = capsule_overlap_reference(segments_a[:reference_frames], body_a.radii, segments_b[:reference_frames],
                                          body_b.radii, voxel, 0)
    reference_seconds = time.perf_counter() - start
    if not np.array_equal(reference, counts[0, :reference_frames]):
        raise SystemExit(f"extension and reference disagree: {counts[0, :reference_frames]} vs {reference}")

    work = work_per_frame(segments_a, segments_b, body_a.radii, voxel)
    rate = max(_voxel.capsule_test_rate(40_000_000) for _ in range(5))
    capsules = 2 * len(body_a.radii)
    result = {
        "voxel": voxel,
        "frames": frames,
        "threads": threads,
        "mean_overlap_voxels": float(counts.mean()),
        "frames_per_s_cpu": frames / cpu,
        "frames_per_s_cpu_1thread": frames / cpu_one,
        "frames_per_s_numpy_reference": reference_frames / reference_seconds,
        "speedup_vs_numpy_reference": (frames / cpu) / (reference_frames / reference_seconds),
        "frames_per_s_host_segment_preparation": frames / prepare,
        **{f"{key}_per_frame": value for key, value in work.items()},
        "capsule_tests_per_s_per_core": rate,
        "floor_ms_per_frame_dense": 1e3 * work["region_voxels"] * capsules / rate,
        "floor_ms_per_frame_culled": 1e3 * work["culled_voxel_tests"] / rate,
        "measured_ms_per_frame_per_core": 1e3 * cpu_one / frames,
    }
    kernel = H100_EFFICIENCY * H100_FP64_INSTRUCTIONS_PER_S / (FP64_INSTRUCTIONS_PER_SPAN_TEST * work["span_tests"])
    result["h100_kernel_frames_per_s_estimate"] = kernel
    result["h100_end_to_end_frames_per_s_estimate"] = min(kernel, result["frames_per_s_host_segment_preparation"])
    return result


def mesh_benchmark(frames: int, voxel: float, threads: int) -> dict:
    vertices, faces = icosphere(5, 0.25)
    rng = np.random.default_rng(0)
    mesh_a = MeshBody((vertices + rng.uniform(-0.02, 0.02, size=(frames, 1, 3)))[None], faces)
    mesh_b = MeshBody((vertices + rng.uniform(-0.02, 0.02, size=(frames, 1, 3)) + [0.3, 0.0, 0.0])[None], faces)
    result = {"mesh_faces": len(faces)}
    for dilation in (0, 1):
        count = partial(overlap_counts, mesh_a, mesh_b, voxel, dilation, device="cpu", threads=threads)
        seconds = best_seconds(count, 2)
        result[f"mesh_frames_per_s_cpu_dilation{dilation}"] = frames / seconds
    return result


def print_table(r: dict) -> None:
    rows = [
        ("scenario", f"2 capsule bodies hugging, {r['voxel'] * 100:.0f} cm voxels, {r['frames']} frames, "
                     f"mean overlap {r['mean_overlap_voxels']:.0f} voxels"),
        (f"CPU extension ({r['threads']} threads)", f"{r['frames_per_s_cpu']:10.0f} frames/s"),
        ("CPU extension (1 thread)", f"{r['frames_per_s_cpu_1thread']:10.0f} frames/s"),
        ("numpy brute-force reference", f"{r['frames_per_s_numpy_reference']:10.2f} frames/s"),
        ("speed-up over the reference", f"{r['speedup_vs_numpy_reference']:10.0f} x"),
        ("host: numpy capsule end points", f"{r['frames_per_s_host_segment_preparation']:10.0f} frames/s"),
        ("voxels visited per frame", f"{r['region_voxels_per_frame']:10.0f}"),
        ("rows per frame", f"{r['rows_per_frame']:10.0f}"),
        ("span tests per frame", f"{r['span_tests_per_frame']:10.0f}"),
        ("box-culled voxel tests per frame", f"{r['culled_voxel_tests_per_frame']:10.0f}"),
        ("exact capsule tests per s, 1 core", f"{r['capsule_tests_per_s_per_core'] / 1e6:10.1f} M"),
        ("floor, dense (voxels x 36 tests)", f"{r['floor_ms_per_frame_dense']:10.3f} ms/frame/core"),
        ("floor, box-culled voxel tests", f"{r['floor_ms_per_frame_culled']:10.3f} ms/frame/core"),
        ("measured, 1 thread", f"{r['measured_ms_per_frame_per_core']:10.3f} ms/frame/core"),
        ("H100 CUDA kernel (on paper)", f"{r['h100_kernel_frames_per_s_estimate']:10.0f} frames/s"),
        ("H100 end to end (host-bound)", f"{r['h100_end_to_end_frames_per_s_estimate']:10.0f} frames/s"),
    ] + [
        (f"meshes ({r['mesh_faces']} faces each), dilation {d}",
         f"{r[f'mesh_frames_per_s_cpu_dilation{d}']:10.1f} frames/s")
        for d in (0, 1)
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--reference-frames", type=int, default=3)
    parser.add_argument("--mesh-frames", type=int, default=16)
    parser.add_argument("--voxel", type=float, default=0.02)
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    threads = len(os.sched_getaffinity(0))
    result = capsule_benchmark(args.frames, args.reference_frames, args.voxel, threads)
    result.update(mesh_benchmark(args.mesh_frames, args.voxel, threads))
    print_table(result)
    if args.json:
        with atomic_output(args.json) as path:
            path.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
