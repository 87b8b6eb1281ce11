// All arithmetic of the voxel-overlap count, shared by the CPU path (voxel_cpu.cpp) and the
// CUDA kernels (voxel_cuda.cu). Under nvcc every function is __host__ __device__; under a
// plain C++ compiler it is an ordinary inline function, so g++ never sees CUDA.
//
// Lattice: voxel i along an axis has its centre at (i + 0.5) * voxel, so the grid is fixed in
// the world and a count does not depend on where a body sits relative to some box corner.
// A voxel counts when its centre is inside both bodies, as decided by the exact tests below
// (capsule_contains, column_hit, triangle_near). Bounding boxes only cull, widened by
// kCullSlack voxels so that rounding never drops a centre the exact test would accept; the
// closed-form capsule traces along rows skip the exact test only where their error cannot
// change its answer (settled_without_test). The numpy oracle in benchmarks/voxel_reference.py
// evaluates the exact tests' formulas in the same order, which is why the counts agree
// exactly rather than approximately.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DHVAE_HD __host__ __device__ inline
#else
#define DHVAE_HD inline
#endif

namespace dhvae {

constexpr int kMaxCapsules = 32;
constexpr double kHuge = 1e300;
constexpr double kCullSlack = 1e-6;  // in voxels

// nvcc fuses a*b+c into one FMA (a different rounding) unless the product is __dmul_rn;
// routing every product of an exact test through mul() keeps GPU, CPU and numpy bit-identical.
DHVAE_HD double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}

DHVAE_HD double dmin(double a, double b) { return a < b ? a : b; }
DHVAE_HD double dmax(double a, double b) { return a > b ? a : b; }
DHVAE_HD int32_t imin(int32_t a, int32_t b) { return a < b ? a : b; }
DHVAE_HD int32_t imax(int32_t a, int32_t b) { return a > b ? a : b; }
DHVAE_HD double min3(double a, double b, double c) { return dmin(a, dmin(b, c)); }
DHVAE_HD double max3(double a, double b, double c) { return dmax(a, dmax(b, c)); }

// ---------------------------------------------------------------- lattice

DHVAE_HD double voxel_center(int32_t index, double voxel) {
    return mul(static_cast<double>(index) + 0.5, voxel);
}

// The division only guesses; the loops settle the answer with the same centre formula the
// exact tests use. Callers keep |x| / voxel far below 2^31 (checked in Python).
DHVAE_HD int32_t first_center_at_or_above(double x, double voxel) {
    int32_t i = static_cast<int32_t>(ceil(x / voxel - 0.5));
    while (voxel_center(i - 1, voxel) >= x) --i;
    while (voxel_center(i, voxel) < x) ++i;
    return i;
}

DHVAE_HD int32_t last_center_at_or_below(double x, double voxel) {
    int32_t i = static_cast<int32_t>(floor(x / voxel - 0.5));
    while (voxel_center(i + 1, voxel) <= x) ++i;
    while (voxel_center(i, voxel) > x) --i;
    return i;
}

DHVAE_HD int32_t last_center_below(double x, double voxel) {
    int32_t i = static_cast<int32_t>(ceil(x / voxel - 0.5)) - 1;
    while (voxel_center(i + 1, voxel) < x) ++i;
    while (voxel_center(i, voxel) >= x) --i;
    return i;
}

struct Box {
    double lo[3];
    double hi[3];
};

DHVAE_HD Box empty_box() {
    Box box;
    for (int k = 0; k < 3; ++k) {
        box.lo[k] = kHuge;
        box.hi[k] = -kHuge;
    }
    return box;
}

DHVAE_HD void box_include(Box& box, const double* point, double grow) {
    for (int k = 0; k < 3; ++k) {
        box.lo[k] = dmin(box.lo[k], point[k] - grow);
        box.hi[k] = dmax(box.hi[k], point[k] + grow);
    }
}

// Inclusive voxel index ranges per axis; empty when lo > hi on some axis.
struct Region {
    int32_t lo[3];
    int32_t hi[3];
};

DHVAE_HD bool region_empty(const Region& r) {
    return r.lo[0] > r.hi[0] || r.lo[1] > r.hi[1] || r.lo[2] > r.hi[2];
}

// Voxels whose centres lie in the intersection of the two bodies' (dilated) boxes: the only
// voxels either path ever visits.
DHVAE_HD Region shared_region(const Box& a, const Box& b, double voxel) {
    Region r;
    for (int k = 0; k < 3; ++k) {
        const double lo = dmax(a.lo[k], b.lo[k]);
        const double hi = dmin(a.hi[k], b.hi[k]);
        if (lo > hi) {
            r.lo[k] = 1;
            r.hi[k] = 0;
            continue;
        }
        r.lo[k] = first_center_at_or_above(lo, voxel);
        r.hi[k] = last_center_at_or_below(hi, voxel);
    }
    return r;
}

DHVAE_HD int64_t region_extent(const Region& r, int axis) {
    return static_cast<int64_t>(r.hi[axis]) - r.lo[axis] + 1;
}

DHVAE_HD int64_t region_volume(const Region& r) {
    if (region_empty(r)) return 0;
    return region_extent(r, 0) * region_extent(r, 1) * region_extent(r, 2);
}

DHVAE_HD int64_t region_index(const Region& r, const int32_t* ijk) {
    return (ijk[0] - r.lo[0]) +
           region_extent(r, 0) * ((ijk[1] - r.lo[1]) + region_extent(r, 1) * (ijk[2] - r.lo[2]));
}

// ---------------------------------------------------------------- capsules

// Is p within sqrt(radius2) of the segment a + t d, t in [0, 1]? The exact test.
DHVAE_HD bool segment_within(const double* a, const double* d, double length2, double px,
                             double py, double pz, double radius2) {
    const double wx = px - a[0], wy = py - a[1], wz = pz - a[2];
    double t = 0.0;
    if (length2 > 0.0) {
        t = (mul(wx, d[0]) + mul(wy, d[1]) + mul(wz, d[2])) / length2;
        t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
    }
    const double ex = wx - mul(t, d[0]), ey = wy - mul(t, d[1]), ez = wz - mul(t, d[2]);
    return mul(ex, ex) + mul(ey, ey) + mul(ez, ez) <= radius2;
}

DHVAE_HD double squared_length(const double* d) {
    return mul(d[0], d[0]) + mul(d[1], d[1]) + mul(d[2], d[2]);
}

struct Capsule {
    double a[3], b[3], d[3];
    double length2;
    double radius;   // after dilation
    double radius2;
};

// segment: 6 doubles (start xyz, end xyz). Dilation grows the radius by whole voxels.
DHVAE_HD Capsule make_capsule(const double* segment, double radius, double voxel, int32_t dilation) {
    Capsule c;
    for (int k = 0; k < 3; ++k) {
        c.a[k] = segment[k];
        c.b[k] = segment[3 + k];
        c.d[k] = c.b[k] - c.a[k];
    }
    c.length2 = squared_length(c.d);
    c.radius = radius + mul(static_cast<double>(dilation), voxel);
    c.radius2 = mul(c.radius, c.radius);
    return c;
}

DHVAE_HD bool capsule_contains(const Capsule& c, double px, double py, double pz) {
    return segment_within(c.a, c.d, c.length2, px, py, pz, c.radius2);
}

DHVAE_HD void capsule_box_include(Box& box, const Capsule& c, double voxel) {
    const double grow = c.radius + kCullSlack * voxel;
    box_include(box, c.a, grow);
    box_include(box, c.b, grow);
}

// Rows run along `along`; a row is named by its voxel indices on the other two axes u, v.
// The longest axis of the region is chosen so the fewest rows cover it.
struct RowAxes {
    int along, u, v;
};

DHVAE_HD RowAxes row_axes_for(const Region& r) {
    int along = 0;
    for (int k = 1; k < 3; ++k)
        if (region_extent(r, k) > region_extent(r, along)) along = k;
    return RowAxes{along, (along + 1) % 3, (along + 2) % 3};
}

// A capsule readied for rows along axes.along: the rows its box reaches and the per-capsule
// constants of its span, so that a row costs one division instead of eight. The span is only
// an estimate (the exact test settles its ends), so reciprocals are fine here.
struct RowSetup {
    int32_t u0, u1, v0, v1;
    double inv_length2;  // 0 for a ball
    double quad_a;       // squared sine of the angle between bone and row
    double inv_quad_a;   // 0 when the bone is parallel to the row
    double inv_dx;       // 0 when the bone is perpendicular to the row
};

DHVAE_HD RowSetup capsule_row_setup(const Capsule& c, RowAxes axes, double voxel) {
    const double grow = c.radius + kCullSlack * voxel;
    RowSetup setup;
    setup.u0 = first_center_at_or_above(dmin(c.a[axes.u], c.b[axes.u]) - grow, voxel);
    setup.u1 = last_center_at_or_below(dmax(c.a[axes.u], c.b[axes.u]) + grow, voxel);
    setup.v0 = first_center_at_or_above(dmin(c.a[axes.v], c.b[axes.v]) - grow, voxel);
    setup.v1 = last_center_at_or_below(dmax(c.a[axes.v], c.b[axes.v]) + grow, voxel);
    const double dx = c.d[axes.along], dy = c.d[axes.u], dz = c.d[axes.v];
    setup.inv_length2 = c.length2 > 0.0 ? 1.0 / c.length2 : 0.0;
    setup.quad_a = (dy * dy + dz * dz) * setup.inv_length2;
    setup.inv_quad_a = setup.quad_a > 0.0 ? 1.0 / setup.quad_a : 0.0;
    setup.inv_dx = dx != 0.0 ? 1.0 / dx : 0.0;
    return setup;
}

// Where a row meets a capsule, estimated in closed form: the row coordinates lo..hi and at
// each end the slope |d(dist^2 - r^2)/ds| of the piece that ends there (0 when the end is a
// clipping artefact or the row grazes the capsule: an end whose position is ill-conditioned).
struct RowTrace {
    double lo, hi;
    double slope_lo, slope_hi;
};

DHVAE_HD void trace_include(RowTrace& t, double lo, double slope_lo, double hi, double slope_hi) {
    if (lo < t.lo || (lo == t.lo && slope_lo < t.slope_lo)) {
        t.lo = lo;
        t.slope_lo = slope_lo;
    }
    if (hi > t.hi || (hi == t.hi && slope_hi < t.slope_hi)) {
        t.hi = hi;
        t.slope_hi = slope_hi;
    }
}

DHVAE_HD void trace_sphere(RowTrace& t, const double* centre, RowAxes axes, double pu, double pv, double radius2,
                           double near_miss) {
    const double du = pu - centre[axes.u], dv = pv - centre[axes.v];
    const double h = radius2 - du * du - dv * dv;
    if (h >= -near_miss) {
        const double half = h > 0.0 ? sqrt(h) : 0.0;
        trace_include(t, centre[axes.along] - half, 2.0 * half, centre[axes.along] + half, 2.0 * half);
    }
}

// The row is the line with coordinates pu, pv on the other two axes. A capsule is convex, so
// its trace on a line is one interval: the hull of the traces of the cylinder between the end
// planes and of the two end spheres. Each sphere lies inside the infinite cylinder, so it is
// only looked at when the row's trace on the infinite cylinder crosses that sphere's end
// plane. A piece the row misses by less than `grow` (in distance) still enters, as a point of
// slope 0: rounding could put a centre there inside.
DHVAE_HD bool capsule_row_trace(const Capsule& c, const RowSetup& setup, RowAxes axes, double pu, double pv,
                                double grow, RowTrace* trace) {
    const double radius2 = c.radius * c.radius;
    const double near_miss = 2.0 * c.radius * grow + grow * grow;  // in squared distance
    RowTrace& t = *trace;
    t = RowTrace{kHuge, -kHuge, 0.0, 0.0};
    if (c.length2 == 0.0) {
        trace_sphere(t, c.a, axes, pu, pv, radius2, near_miss);
        return t.lo <= t.hi;
    }
    // s = coordinate - a[along]; the projection on the bone q(s) = s dx + k runs from 0 (end a)
    // to length2 (end b); the squared distance to the bone's line minus radius^2 is A s^2 + B s + C.
    const double dx = c.d[axes.along], dy = c.d[axes.u], dz = c.d[axes.v];
    const double wy = pu - c.a[axes.u], wz = pv - c.a[axes.v];
    const double k = wy * dy + wz * dz;
    const double qb = -2.0 * dx * k * setup.inv_length2;
    const double qc = wy * wy + wz * wz - k * k * setup.inv_length2 - radius2;
    double cyl_lo, cyl_hi, slope = 0.0;
    if (setup.quad_a > 0.0) {
        const double disc = qb * qb - 4.0 * setup.quad_a * qc;
        if (disc >= 0.0) {
            // Stable roots: no cancellation when the row is nearly parallel to the bone.
            slope = sqrt(disc);
            const double q = -0.5 * (qb + (qb >= 0.0 ? slope : -slope));
            const double r0 = q * setup.inv_quad_a;
            const double r1 = q != 0.0 ? qc / q : r0;
            cyl_lo = dmin(r0, r1);
            cyl_hi = dmax(r0, r1);
        } else if (disc >= -4.0 * setup.quad_a * near_miss) {
            cyl_lo = cyl_hi = -0.5 * qb * setup.inv_quad_a;
        } else {
            return false;
        }
    } else if (qc <= near_miss) {
        cyl_lo = -kHuge;  // bone parallel to the row, within reach: the end planes bound it
        cyl_hi = kHuge;
    } else {
        return false;
    }
    double slab_lo = -kHuge, slab_hi = kHuge;
    bool need_a = true, need_b = true;
    if (setup.inv_dx != 0.0) {
        const double s_a = -k * setup.inv_dx, s_b = (c.length2 - k) * setup.inv_dx;
        slab_lo = dmin(s_a, s_b);
        slab_hi = dmax(s_a, s_b);
        const double lo_plane = dx > 0.0 ? s_a : s_b, hi_plane = dx > 0.0 ? s_b : s_a;
        const bool past_lo = cyl_lo <= lo_plane + grow, past_hi = cyl_hi >= hi_plane - grow;
        need_a = dx > 0.0 ? past_lo : past_hi;
        need_b = dx > 0.0 ? past_hi : past_lo;
    } else if (k < 0.0 || k > c.length2) {
        slab_lo = kHuge;  // the row runs beyond one end plane: only that end's sphere
        slab_hi = -kHuge;
    }
    if (dmax(cyl_lo, slab_lo) <= dmin(cyl_hi, slab_hi)) {
        // An end cut by an end plane lies inside that end's sphere, never on the hull.
        trace_include(t, c.a[axes.along] + dmax(cyl_lo, slab_lo), cyl_lo >= slab_lo ? slope : 0.0,
                      c.a[axes.along] + dmin(cyl_hi, slab_hi), cyl_hi <= slab_hi ? slope : 0.0);
    }
    if (need_a) trace_sphere(t, c.a, axes, pu, pv, radius2, near_miss);
    if (need_b) trace_sphere(t, c.b, axes, pu, pv, radius2, near_miss);
    return t.lo <= t.hi;
}

// ---------------------------------------------------------------- counting along rows

struct Span {
    int32_t lo, hi;  // inclusive voxel indices along the row
};

// A trace end settles its voxel without the exact test only when it is well conditioned
// (slope >= kSureSlope * voxel) and no centre lies within kSureMargin voxels of it; then the
// estimate's error (rounding of ~1e-15 m^2 over that slope: < 1e-5 voxel for voxels of 1 mm
// or more) cannot put a centre on the wrong side. Otherwise the exact
// test decides, stepping out or in from the estimate; the capsule being convex, the first
// change of answer is the end.
constexpr double kSureSlope = 1e-4;
constexpr double kSureMargin = 0.01;

DHVAE_HD bool settled_without_test(double slope, double offset, double voxel) {
    return slope >= kSureSlope * voxel && offset > kSureMargin && offset < 1.0 - kSureMargin;
}

// The voxels of one row inside a capsule body, as sorted disjoint spans; returns their number.
DHVAE_HD int body_row_spans(const Capsule* capsules, const RowSetup* setups, int count, RowAxes axes,
                            int32_t iu, int32_t iv, const Region& region, double voxel, Span* out) {
    const double pu = voxel_center(iu, voxel), pv = voxel_center(iv, voxel);
    double p[3];
    p[axes.u] = pu;
    p[axes.v] = pv;
    const int32_t row_lo = region.lo[axes.along], row_hi = region.hi[axes.along];
    const double inv_voxel = 1.0 / voxel;
    int n = 0;
    for (int c = 0; c < count; ++c) {
        const RowSetup& setup = setups[c];
        if (iu < setup.u0 || iu > setup.u1 || iv < setup.v0 || iv > setup.v1) continue;
        RowTrace trace;
        if (!capsule_row_trace(capsules[c], setup, axes, pu, pv, kCullSlack * voxel, &trace)) continue;
        const Capsule& capsule = capsules[c];
        auto inside = [&](int32_t i) {
            p[axes.along] = voxel_center(i, voxel);
            return capsule_contains(capsule, p[0], p[1], p[2]);
        };
        // Index coordinates of the ends (centre i sits at i + 0.5 voxels); an end that is not
        // settled is widened by a voxel and then found with the exact test.
        const double x_lo = trace.lo * inv_voxel - 0.5, x_hi = trace.hi * inv_voxel - 0.5;
        double first = ceil(x_lo), last = floor(x_hi);
        const bool sure_lo = settled_without_test(trace.slope_lo, first - x_lo, voxel);
        const bool sure_hi = settled_without_test(trace.slope_hi, x_hi - last, voxel);
        first = dmax(sure_lo ? first : first - 1.0, static_cast<double>(row_lo));
        last = dmin(sure_hi ? last : last + 1.0, static_cast<double>(row_hi));
        if (first > last) continue;
        Span span{static_cast<int32_t>(first), static_cast<int32_t>(last)};
        if (!sure_lo) {
            if (inside(span.lo)) {
                while (span.lo > row_lo && inside(span.lo - 1)) --span.lo;
            } else {
                ++span.lo;
                while (span.lo <= span.hi && !inside(span.lo)) ++span.lo;
            }
        }
        if (!sure_hi && span.lo <= span.hi) {
            if (inside(span.hi)) {
                while (span.hi < row_hi && inside(span.hi + 1)) ++span.hi;
            } else {
                --span.hi;
                while (span.hi >= span.lo && !inside(span.hi)) --span.hi;
            }
        }
        if (span.lo > span.hi) continue;
        int at = n++;
        for (; at > 0 && out[at - 1].lo > span.lo; --at) out[at] = out[at - 1];
        out[at] = span;
    }
    int merged = 0;
    for (int i = 0; i < n; ++i) {
        if (merged > 0 && out[i].lo <= out[merged - 1].hi + 1) {
            out[merged - 1].hi = imax(out[merged - 1].hi, out[i].hi);
        } else {
            out[merged++] = out[i];
        }
    }
    return merged;
}

DHVAE_HD int64_t spans_overlap(const Span* a, int na, const Span* b, int nb) {
    int64_t total = 0;
    int i = 0, j = 0;
    while (i < na && j < nb) {
        const int32_t lo = imax(a[i].lo, b[j].lo), hi = imin(a[i].hi, b[j].hi);
        if (lo <= hi) total += hi - lo + 1;
        if (a[i].hi < b[j].hi) ++i; else ++j;
    }
    return total;
}

// Everything one frame of two capsule bodies needs; built once per frame (per CUDA block).
struct CapsuleFrame {
    Capsule capsules[2][kMaxCapsules];
    RowSetup setups[2][kMaxCapsules];
    int count[2];
    Region region;
    RowAxes axes;
};

DHVAE_HD void frame_region(CapsuleFrame& f, double voxel) {
    Box boxes[2] = {empty_box(), empty_box()};
    for (int body = 0; body < 2; ++body)
        for (int c = 0; c < f.count[body]; ++c) capsule_box_include(boxes[body], f.capsules[body][c], voxel);
    f.region = shared_region(boxes[0], boxes[1], voxel);
    f.axes = row_axes_for(f.region);
}

DHVAE_HD int64_t frame_row_count(const CapsuleFrame& f) {
    if (region_empty(f.region)) return 0;
    return region_extent(f.region, f.axes.u) * region_extent(f.region, f.axes.v);
}

// Overlap of row number `row` (0 <= row < frame_row_count).
DHVAE_HD int64_t frame_row_overlap(const CapsuleFrame& f, int64_t row, double voxel) {
    const int32_t iu = f.region.lo[f.axes.u] + static_cast<int32_t>(row % region_extent(f.region, f.axes.u));
    const int32_t iv = f.region.lo[f.axes.v] + static_cast<int32_t>(row / region_extent(f.region, f.axes.u));
    Span spans_a[kMaxCapsules], spans_b[kMaxCapsules];
    const int na = body_row_spans(f.capsules[0], f.setups[0], f.count[0], f.axes, iu, iv, f.region, voxel, spans_a);
    if (na == 0) return 0;
    const int nb = body_row_spans(f.capsules[1], f.setups[1], f.count[1], f.axes, iu, iv, f.region, voxel, spans_b);
    return spans_overlap(spans_a, na, spans_b, nb);
}

// ---------------------------------------------------------------- triangle meshes
//
// Inside a mesh: cast a ray from the voxel centre towards +infinity along an axis and count the
// triangles it crosses; odd means inside. A ray through a hole of an open mesh (SMPL-X has
// some, e.g. around the eyes) miscounts, so the rays go along all three axes and the majority
// decides: a small hole spoils one ray of a voxel, rarely two.
//
// Rays through a shared edge or vertex must cross exactly one of the triangles there. Each
// edge function is evaluated from the lexicographically smaller endpoint, so the two triangles
// of an edge get exactly opposite values, and a zero value goes to one side by a fixed rule
// (the rasterizers' top-left rule).

DHVAE_HD double oriented_edge(const double* p, const double* q, int u, int v, double pu, double pv) {
    const bool forward = p[u] < q[u] || (p[u] == q[u] && p[v] < q[v]);
    const double* s = forward ? p : q;
    const double* t = forward ? q : p;
    const double e = mul(t[u] - s[u], pv - s[v]) - mul(t[v] - s[v], pu - s[u]);
    return forward ? e : -e;
}

// Owner of points exactly on edge p->q of a triangle whose edges are taken counter-clockwise
// (orientation +1) or clockwise (-1) in the (u, v) plane.
DHVAE_HD bool edge_owned(const double* p, const double* q, int u, int v, double orientation) {
    const double du = orientation > 0 ? q[u] - p[u] : p[u] - q[u];
    const double dv = orientation > 0 ? q[v] - p[v] : p[v] - q[v];
    return dv < 0.0 || (dv == 0.0 && du > 0.0);
}

DHVAE_HD bool inside_edge(double e, const double* p, const double* q, int u, int v, double orientation) {
    return e > 0.0 || (e == 0.0 && edge_owned(p, q, u, v, orientation));
}

// Does the line through (pu, pv) along `axis` cross triangle abc? If so, *hit is the crossing
// coordinate along the axis.
DHVAE_HD bool column_hit(const double* a, const double* b, const double* c, int axis, double pu,
                         double pv, double* hit) {
    const int u = (axis + 1) % 3, v = (axis + 2) % 3;
    const double area = oriented_edge(a, b, u, v, c[u], c[v]);
    if (area == 0.0) return false;  // edge-on: its neighbours carry the crossing
    const double o = area > 0.0 ? 1.0 : -1.0;
    const double ea = o * oriented_edge(b, c, u, v, pu, pv);
    const double eb = o * oriented_edge(c, a, u, v, pu, pv);
    const double ec = o * oriented_edge(a, b, u, v, pu, pv);
    if (!inside_edge(ea, b, c, u, v, o) || !inside_edge(eb, c, a, u, v, o) || !inside_edge(ec, a, b, u, v, o))
        return false;
    const double weight = ea + eb + ec;
    if (weight <= 0.0) return false;
    *hit = (mul(ea, a[axis]) + mul(eb, b[axis]) + mul(ec, c[axis])) / weight;
    return true;
}

DHVAE_HD void cross(const double* x, const double* y, double* out) {
    out[0] = mul(x[1], y[2]) - mul(x[2], y[1]);
    out[1] = mul(x[2], y[0]) - mul(x[0], y[2]);
    out[2] = mul(x[0], y[1]) - mul(x[1], y[0]);
}

DHVAE_HD double dot(const double* x, const double* y) {
    return mul(x[0], y[0]) + mul(x[1], y[1]) + mul(x[2], y[2]);
}

DHVAE_HD void difference(const double* x, const double* y, double* out) {
    for (int k = 0; k < 3; ++k) out[k] = x[k] - y[k];
}

DHVAE_HD bool edge_near(const double* p, const double* q, const double* point, double radius2) {
    double d[3];
    difference(q, p, d);
    return segment_within(p, d, squared_length(d), point[0], point[1], point[2], radius2);
}

// Is `point` within sqrt(radius2) of triangle abc: over the face (the prism above and below
// it) or near one of its edges. This is how `dilation` grows a mesh: the dilated body is the
// mesh solid plus every point within dilation * voxel of its surface, the same Minkowski
// growth that adding dilation * voxel to a capsule radius gives.
DHVAE_HD bool triangle_near(const double* a, const double* b, const double* c, const double* point,
                            double radius2) {
    double ab[3], ac[3], normal[3];
    difference(b, a, ab);
    difference(c, a, ac);
    cross(ab, ac, normal);
    const double normal2 = dot(normal, normal);
    if (normal2 > 0.0) {
        double ap[3];
        difference(point, a, ap);
        const double height = dot(normal, ap);
        if (mul(height, height) <= mul(radius2, normal2)) {
            const double* corners[3] = {a, b, c};
            bool over_face = true;
            for (int k = 0; k < 3 && over_face; ++k) {
                const double* p = corners[k];
                const double* q = corners[(k + 1) % 3];
                double edge[3], to_point[3], side[3];
                difference(q, p, edge);
                difference(point, p, to_point);
                cross(edge, to_point, side);
                over_face = dot(normal, side) >= 0.0;
            }
            if (over_face) return true;
        }
    }
    return edge_near(a, b, point, radius2) || edge_near(b, c, point, radius2) || edge_near(c, a, point, radius2);
}

// Per-voxel word of the mesh path: for body 0 bits 0-2 hold the ray parities along x, y, z
// and bit 3 "near the surface"; body 1 uses bits 4-7.
DHVAE_HD uint32_t parity_bit(int body, int axis) { return 1u << (4 * body + axis); }
DHVAE_HD uint32_t near_bit(int body) { return 1u << (4 * body + 3); }

DHVAE_HD bool mesh_occupied(uint32_t word, int body) {
    const uint32_t bits = word >> (4 * body);
    const uint32_t parity = bits & 7u;
    const bool majority = parity == 3u || parity == 5u || parity == 6u || parity == 7u;
    return majority || (bits & 8u) != 0u;
}

DHVAE_HD Box vertex_box(const double* vertices, int64_t count, double grow) {
    Box box = empty_box();
    for (int64_t i = 0; i < count; ++i) box_include(box, vertices + 3 * i, grow);
    return box;
}

// Toggle marks for the parity along `axis`: the crossing at coordinate h flips every voxel of
// its column whose centre is below h. The mark sits on the highest such voxel (clamped to the
// region); parity_scan_column turns marks into parities by a running XOR from the top.
template <class Toggle>
DHVAE_HD void rasterize_parity(const double* a, const double* b, const double* c, const Region& region,
                               int axis, double voxel, uint32_t bit, Toggle toggle) {
    const int u = (axis + 1) % 3, v = (axis + 2) % 3;
    const double slack = kCullSlack * voxel;
    // Cheap rejections first: most triangles of a body miss the shared region's columns.
    if (max3(a[axis], b[axis], c[axis]) + slack < voxel_center(region.lo[axis], voxel)) return;
    if (max3(a[u], b[u], c[u]) + slack < voxel_center(region.lo[u], voxel) ||
        min3(a[u], b[u], c[u]) - slack > voxel_center(region.hi[u], voxel) ||
        max3(a[v], b[v], c[v]) + slack < voxel_center(region.lo[v], voxel) ||
        min3(a[v], b[v], c[v]) - slack > voxel_center(region.hi[v], voxel))
        return;
    const int32_t iu0 = imax(region.lo[u], first_center_at_or_above(min3(a[u], b[u], c[u]) - slack, voxel));
    const int32_t iu1 = imin(region.hi[u], last_center_at_or_below(max3(a[u], b[u], c[u]) + slack, voxel));
    const int32_t iv0 = imax(region.lo[v], first_center_at_or_above(min3(a[v], b[v], c[v]) - slack, voxel));
    const int32_t iv1 = imin(region.hi[v], last_center_at_or_below(max3(a[v], b[v], c[v]) + slack, voxel));
    int32_t ijk[3];
    for (int32_t iv = iv0; iv <= iv1; ++iv) {
        for (int32_t iu = iu0; iu <= iu1; ++iu) {
            double hit;
            if (!column_hit(a, b, c, axis, voxel_center(iu, voxel), voxel_center(iv, voxel), &hit)) continue;
            const int32_t top = last_center_below(hit, voxel);
            if (top < region.lo[axis]) continue;
            ijk[axis] = imin(top, region.hi[axis]);
            ijk[u] = iu;
            ijk[v] = iv;
            toggle(region_index(region, ijk), bit);
        }
    }
}

// Column number `column` (0 <= column < extent(u) * extent(v)) of the parity along `axis`.
template <class Flip>
DHVAE_HD void parity_scan_column(const uint32_t* grid, const Region& region, int axis, int64_t column,
                                 uint32_t bit, Flip flip) {
    const int u = (axis + 1) % 3, v = (axis + 2) % 3;
    int32_t ijk[3];
    ijk[u] = region.lo[u] + static_cast<int32_t>(column % region_extent(region, u));
    ijk[v] = region.lo[v] + static_cast<int32_t>(column / region_extent(region, u));
    bool parity = false;
    for (int32_t k = region.hi[axis]; k >= region.lo[axis]; --k) {
        ijk[axis] = k;
        const int64_t index = region_index(region, ijk);
        const bool mark = (grid[index] & bit) != 0u;
        parity = parity != mark;
        if (mark != parity) flip(index, bit);
    }
}

DHVAE_HD int64_t parity_column_count(const Region& region, int axis) {
    return region_extent(region, (axis + 1) % 3) * region_extent(region, (axis + 2) % 3);
}

// Marks the voxels within `radius` of triangle abc as near the surface of `body`. Run after
// the parity scans, body 0 before body 1: voxels the body already covers skip the test (a
// voxel of the shell is near dozens of small triangles), and so do, for body 1, voxels body
// 0 does not cover, since only voxels inside both are counted.
template <class Mark>
DHVAE_HD void stamp_near(const double* a, const double* b, const double* c, const Region& region, double voxel,
                         double radius, int body, const uint32_t* words, Mark mark) {
    const double grow = radius + kCullSlack * voxel;
    const double radius2 = mul(radius, radius);
    for (int k = 0; k < 3; ++k)
        if (max3(a[k], b[k], c[k]) + grow < voxel_center(region.lo[k], voxel) ||
            min3(a[k], b[k], c[k]) - grow > voxel_center(region.hi[k], voxel))
            return;
    int32_t lo[3], hi[3];
    for (int k = 0; k < 3; ++k) {
        lo[k] = imax(region.lo[k], first_center_at_or_above(min3(a[k], b[k], c[k]) - grow, voxel));
        hi[k] = imin(region.hi[k], last_center_at_or_below(max3(a[k], b[k], c[k]) + grow, voxel));
    }
    int32_t ijk[3];
    double point[3];
    for (ijk[2] = lo[2]; ijk[2] <= hi[2]; ++ijk[2]) {
        point[2] = voxel_center(ijk[2], voxel);
        for (ijk[1] = lo[1]; ijk[1] <= hi[1]; ++ijk[1]) {
            point[1] = voxel_center(ijk[1], voxel);
            for (ijk[0] = lo[0]; ijk[0] <= hi[0]; ++ijk[0]) {
                const int64_t index = region_index(region, ijk);
                if (mesh_occupied(words[index], body) || (body == 1 && !mesh_occupied(words[index], 0))) continue;
                point[0] = voxel_center(ijk[0], voxel);
                if (triangle_near(a, b, c, point, radius2)) mark(index, near_bit(body));
            }
        }
    }
}

}  // namespace dhvae
