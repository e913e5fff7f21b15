// The residual layers of one generation step, compiled: `ResidualLayer.step` (models/wavenet.py)
// for every layer of the model and the skip sum, in one call with no per-op dispatch.
//
// Layout as in models/incremental.py: a block of n frames for batch B is an (n*B, C) row-major
// matrix, row = frame*B + batch. Weights are `StepWeights` (gate-folded pre-activation weights,
// (in, out) matrices). Each thread owns a contiguous range of rows for the whole step; one
// barrier per layer, because a layer's x[f - d] may come from rows another thread wrote.
//
// Built and loaded by models/fused_step.py (plain C ABI, ctypes; no torch headers, so the
// build takes seconds). Compiled with -O3 and the host's vector units; no fast-math, so the
// only differences from the PyTorch path are summation order, FMA contraction and the
// polynomial exp below (relative error < 2e-7).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

typedef float vf __attribute__((vector_size(64)));
typedef float vfu __attribute__((vector_size(64), aligned(4)));
typedef int32_t vi __attribute__((vector_size(64)));
constexpr int V = 16;   // floats per vector
constexpr int NR = 6;   // rows per register tile, at most (6 x 4 accumulators + 4 + 1 of 32 registers)
constexpr int NV = 4;   // vectors per register tile (64 columns)

inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }
inline vf splat(float a) { return vf{} + a; }

// exp(x) for x in [-87, 87]: x = k ln2 + r, |r| <= ln2/2, degree-6 polynomial, times 2^k.
inline vf vexp(vf x) {
    x = x < splat(-87.0f) ? splat(-87.0f) : x;
    x = x > splat(87.0f) ? splat(87.0f) : x;
    const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to the nearest integer
    vf k = (x * splat(1.44269504088896341f) + magic) - magic;
    vf r = x - k * splat(0.693359375f) - k * splat(-2.12194440e-4f);
    vf p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * r * r + r + splat(1.0f);
    vi e = (__builtin_convertvector(k, vi) + 127) << 23;
    vf scale;
    std::memcpy(&scale, &e, sizeof(scale));
    return p * scale;
}

inline float sigmoid1(float x) { return 1.0f / (1.0f + std::exp(-x)); }

struct Seg {  // A (rows, K) with row stride lda, times B (K, N) row-major
    const float* a;
    int64_t lda;
    const float* b;
    int k;
};

// out[r, j0:j1] = init_rows[r] (if any) + bias (if any) + sum over segs of A[r] @ B, for r < R;
// B has n_cols columns.
template <int R>
void tile(int j0, int j1, int n_cols, const Seg* segs, int nseg, const float* init_rows, int64_t ldi,
          const float* bias, float* out, int64_t ldo) {
    int j = j0;
    for (; j + NV * V <= j1; j += NV * V) {
        vf acc[R][NV];
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < NV; ++v) {
                vf a = bias ? load(bias + j + v * V) : vf{};
                if (init_rows) a += load(init_rows + r * ldi + j + v * V);
                acc[r][v] = a;
            }
        for (int s = 0; s < nseg; ++s) {
            const Seg& g = segs[s];
            for (int k = 0; k < g.k; ++k) {
                vf b[NV];
                for (int v = 0; v < NV; ++v) b[v] = load(g.b + (int64_t)k * n_cols + j + v * V);
                for (int r = 0; r < R; ++r) {
                    vf a = splat(g.a[r * g.lda + k]);
                    for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
                }
            }
        }
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < NV; ++v) store(out + r * ldo + j + v * V, acc[r][v]);
    }
    for (; j + V <= j1; j += V) {
        vf acc[R];
        for (int r = 0; r < R; ++r) {
            vf a = bias ? load(bias + j) : vf{};
            if (init_rows) a += load(init_rows + r * ldi + j);
            acc[r] = a;
        }
        for (int s = 0; s < nseg; ++s) {
            const Seg& g = segs[s];
            for (int k = 0; k < g.k; ++k) {
                vf b = load(g.b + (int64_t)k * n_cols + j);
                for (int r = 0; r < R; ++r) acc[r] += splat(g.a[r * g.lda + k]) * b;
            }
        }
        for (int r = 0; r < R; ++r) store(out + r * ldo + j, acc[r]);
    }
    for (; j < j1; ++j)
        for (int r = 0; r < R; ++r) {
            float a = (bias ? bias[j] : 0.0f) + (init_rows ? init_rows[r * ldi + j] : 0.0f);
            for (int s = 0; s < nseg; ++s) {
                const Seg& g = segs[s];
                for (int k = 0; k < g.k; ++k) a += g.a[r * g.lda + k] * g.b[(int64_t)k * n_cols + j];
            }
            out[r * ldo + j] = a;
        }
}

// Rows [r0, r1) of out = init + bias + sum of segs, in register tiles of NR rows. Column blocks
// are the outer loop, so a block of every B (K x 64 floats) stays in L1 across the row tiles.
void gemm_rows(int64_t r0, int64_t r1, int n_cols, Seg* segs, int nseg, const float* init_rows, int64_t ldi,
               const float* bias, float* out, int64_t ldo) {
    const float* a0[4];
    for (int s = 0; s < nseg; ++s) a0[s] = segs[s].a;
    const int last = n_cols - n_cols % (NV * V);  // the last block also takes the narrower columns
    for (int j0 = 0; j0 < n_cols; j0 += NV * V) {
        const int j1 = j0 >= last || j0 + NV * V >= n_cols ? n_cols : j0 + NV * V;
        for (int64_t r = r0; r < r1;) {
            // Tiles of at most NR rows, as even as the rows allow (25 rows: 5 tiles of 5).
            const int64_t m = r1 - r, tiles = (m + NR - 1) / NR, h = (m + tiles - 1) / tiles;
            for (int s = 0; s < nseg; ++s) segs[s].a = a0[s] + r * segs[s].lda;
            const float* ir = init_rows ? init_rows + r * ldi : nullptr;
            float* o = out + r * ldo;
            switch (h) {
                case 6: tile<6>(j0, j1, n_cols, segs, nseg, ir, ldi, bias, o, ldo); break;
                case 5: tile<5>(j0, j1, n_cols, segs, nseg, ir, ldi, bias, o, ldo); break;
                case 4: tile<4>(j0, j1, n_cols, segs, nseg, ir, ldi, bias, o, ldo); break;
                case 3: tile<3>(j0, j1, n_cols, segs, nseg, ir, ldi, bias, o, ldo); break;
                case 2: tile<2>(j0, j1, n_cols, segs, nseg, ir, ldi, bias, o, ldo); break;
                default: tile<1>(j0, j1, n_cols, segs, nseg, ir, ldi, bias, o, ldo);
            }
            r += h;
        }
        if (j1 == n_cols) break;
    }
    for (int s = 0; s < nseg; ++s) segs[s].a = a0[s];
}

// z[:G] = tanh(f)·σ(g) = 2σ(f')σ(g) - σ(g) from folded pre-activations [f' = 2f | g] (Gate.step_activate).
void gate(const float* pre, int g, float* z) {
    int j = 0;
    for (; j + V <= g; j += V) {
        vf sf = splat(1.0f) / (splat(1.0f) + vexp(-load(pre + j)));
        vf sg = splat(1.0f) / (splat(1.0f) + vexp(-load(pre + g + j)));
        store(z + j, splat(2.0f) * sf * sg - sg);
    }
    for (; j < g; ++j) {
        float sf = sigmoid1(pre[j]), sg = sigmoid1(pre[g + j]);
        z[j] = 2.0f * sf * sg - sg;
    }
}

struct Layer {
    int dilation;
    const float *prev, *cur, *cond, *bias, *res_w, *res_b;  // res_* null for the last layer
    std::vector<float> hist;  // (dilation + blocks*n frames, B, R), zeros before the first block
    int64_t blocks, next;
};

// The model's head after the skip sum (`Wavenet.head_step_weights`, HEAD_KIND in fused_step.py):
// ReLU, 1x1 (skip scale folded in), ReLU, 1x1, ReLU, then per EDA signal an attention score
// per frame (1x1 + a bias per position in the step), softmax over the step's n frames, the
// pooled vector and its projection to P head parameters.
struct Head {
    int d = 0, p = 0, outs = 0;
    const float *w1 = nullptr, *b1 = nullptr, *w2 = nullptr, *b2 = nullptr, *score_w = nullptr,
                *score_b = nullptr, *position = nullptr, *proj = nullptr, *proj_b = nullptr;
    std::vector<float> skips, h1, h2, scores;  // (rows, S), (rows, D) x2, (rows, C_out)
    std::vector<float> pooled;                  // (B, C_out, D)
};

struct Net {
    int num_layers, n, batch, r, g, s, c;
    int64_t rows;
    const float *x0, *h0, *skip_w, *skip_b;
    std::vector<Layer> layers;
    std::vector<float> z;    // (rows, L*G): every layer's gated activation side by side
    std::vector<float> pre;  // (rows, 2G) scratch
    std::vector<float> cond; // (rows, C) conditioning rows gathered from a table
    Head head;               // head.d == 0: no head, the step returns the skip sum
};

inline void relu_rows(float* x, int64_t r0, int64_t r1, int64_t width) {
    for (int64_t i = r0 * width; i < r1 * width; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// Rows [r0, r1) of the head's per-frame part: skip sum -> post-net -> attention scores.
void head_frames(Net& net, int64_t r0, int64_t r1) {
    Head& h = net.head;
    const int S = net.s, D = h.d;
    relu_rows(h.skips.data(), r0, r1, S);
    Seg s1{h.skips.data(), S, h.w1, S};
    gemm_rows(r0, r1, D, &s1, 1, nullptr, 0, h.b1, h.h1.data(), D);
    relu_rows(h.h1.data(), r0, r1, D);
    Seg s2{h.h1.data(), D, h.w2, D};
    gemm_rows(r0, r1, D, &s2, 1, nullptr, 0, h.b2, h.h2.data(), D);
    relu_rows(h.h2.data(), r0, r1, D);
    Seg s3{h.h2.data(), D, h.score_w, D};
    gemm_rows(r0, r1, h.outs, &s3, 1, nullptr, 0, h.score_b, h.scores.data(), h.outs);
}

// Samples [b0, b1) of the head's per-step part: softmax over frames, pooling, projection.
// Writes params (B, C_out, P).
void head_steps(Net& net, int64_t b0, int64_t b1, float* params) {
    Head& h = net.head;
    const int n = net.n, B = net.batch, D = h.d, O = h.outs, P = h.p;
    for (int64_t b = b0; b < b1; ++b)
        for (int o = 0; o < O; ++o) {
            // The softmax over the step's frames in place in the scores: sample b's entries
            // are this thread's alone, and nothing reads them after this step.
            float* a = h.scores.data() + b * O + o;  // frame f at a[f * B * O]
            const int64_t stride = (int64_t)B * O;
            float top = -INFINITY;
            for (int f = 0; f < n; ++f) {
                a[f * stride] += h.position[o * n + f];
                top = a[f * stride] > top ? a[f * stride] : top;
            }
            float sum = 0.0f;
            for (int f = 0; f < n; ++f) sum += a[f * stride] = std::exp(a[f * stride] - top);
            float* pooled = h.pooled.data() + (b * O + o) * D;
            std::fill(pooled, pooled + D, 0.0f);
            for (int f = 0; f < n; ++f) {
                const float w = a[f * stride] / sum;
                const float* row = h.h2.data() + (f * B + b) * (int64_t)D;
                for (int k = 0; k < D; ++k) pooled[k] += w * row[k];
            }
        }
    for (int o = 0; o < O; ++o) {
        Seg sp{h.pooled.data() + (int64_t)o * D, (int64_t)O * D, h.proj + (int64_t)o * D * P, D};
        gemm_rows(b0, b1, P, &sp, 1, nullptr, 0, h.proj_b + (int64_t)o * P, params + (int64_t)o * P,
                  (int64_t)O * P);
    }
}

}  // namespace

extern "C" {

// Weights are borrowed: the caller keeps them alive and unchanged while the net lives.
void* fused_create(int num_layers, int n, int batch, int r, int g, int s, int c, const int* dilations,
                   const float** prev, const float** cur, const float** cond, const float** bias,
                   const float** res_w, const float** res_b, const float* skip_w, const float* skip_b,
                   const float* x0, const float* h0) {
    Net* net = new Net();
    net->num_layers = num_layers;
    net->n = n;
    net->batch = batch;
    net->r = r;
    net->g = g;
    net->s = s;
    net->c = c;
    net->rows = (int64_t)n * batch;
    net->x0 = x0;
    net->h0 = h0;
    net->skip_w = skip_w;
    net->skip_b = skip_b;
    net->layers.resize(num_layers);
    for (int i = 0; i < num_layers; ++i) {
        Layer& l = net->layers[i];
        l.dilation = dilations[i];
        l.prev = prev[i];
        l.cur = cur[i];
        l.cond = cond[i];
        l.bias = bias[i];
        l.res_w = res_w[i];
        l.res_b = res_b[i];
        int64_t d = l.dilation;
        l.blocks = (2 * d + n - 1) / n;
        if (l.blocks < 2) l.blocks = 2;  // >= 2*d frames of blocks: the compaction copy never overlaps
        l.hist.assign((d + l.blocks * n) * batch * r, 0.0f);
        l.next = 0;
    }
    net->z.assign(net->rows * num_layers * g, 0.0f);
    net->pre.assign(net->rows * 2 * g, 0.0f);
    net->cond.assign(net->rows * c, 0.0f);
    return net;
}

void fused_free(void* p) { delete static_cast<Net*>(p); }

// Attach the head: from then on fused_step writes head parameters (B, C_out, P) instead of the
// skip sum. Weights borrowed as in fused_create: w1 (S, D) with the skip scale folded in, b1 (D),
// w2 (D, D), b2 (D), score_w (D, C_out), score_b (C_out), position (C_out, n),
// proj (C_out, D, P), proj_b (C_out, P).
void fused_head(void* p, int d, int params, int outs, const float* w1, const float* b1, const float* w2,
                const float* b2, const float* score_w, const float* score_b, const float* position,
                const float* proj, const float* proj_b) {
    Net& net = *static_cast<Net*>(p);
    net.head = Head{d, params, outs, w1, b1, w2, b2, score_w, score_b, position, proj, proj_b};
    Head& h = net.head;
    h.skips.assign(net.rows * net.s, 0.0f);
    h.h1.assign(net.rows * d, 0.0f);
    h.h2.assign(net.rows * d, 0.0f);
    h.scores.assign(net.rows * outs, 0.0f);
    h.pooled.assign((int64_t)net.batch * outs * d, 0.0f);
}

// One step t: conditioning rows c (n*B, C) → skip sum (n*B, S), bias included, scale not; or,
// with a head attached, the head parameters (B, C_out, P). With c null, the rows come from
// table (levels, n, C) at each sample's level levels[b].
void fused_step(void* p, int64_t t, const float* c, const float* table, const int64_t* levels, float* out,
                int threads) {
    Net& net = *static_cast<Net*>(p);
    const int L = net.num_layers, R = net.r, G = net.g, S = net.s, C = net.c;
    const int64_t rows = net.rows, rowlen = (int64_t)net.batch * R, zl = (int64_t)L * G;
    if (!c) {
        for (int f = 0; f < net.n; ++f)
            for (int b = 0; b < net.batch; ++b)
                std::memcpy(net.cond.data() + ((int64_t)f * net.batch + b) * C,
                            table + (levels[b] * net.n + f) * C, C * sizeof(float));
        c = net.cond.data();
    }
    // Where each layer reads (cur = its input block, prev = `dilation` frames earlier) this step.
    std::vector<float*> cur(L + 1, nullptr), prv(L + 1, nullptr);
    for (int i = 1; i < L; ++i) {
        Layer& l = net.layers[i];
        int64_t d = l.dilation;
        if (l.next == l.blocks) {  // compact: the last d frames to the front
            std::memmove(l.hist.data(), l.hist.data() + l.blocks * net.n * rowlen, d * rowlen * sizeof(float));
            l.next = 0;
        }
        float* base = l.hist.data() + (d + l.next * net.n) * rowlen;
        cur[i] = base;
        prv[i] = base - d * rowlen;
        l.next += 1;
    }
    const float* x0 = net.x0 + t * rows * R;
    const float* h0 = net.h0 + t * rows * 2 * G;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int nt = 1, id = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        id = omp_get_thread_num();
#endif
        const int64_t r0 = rows * id / nt, r1 = rows * (id + 1) / nt;
        for (int i = 0; i < L; ++i) {
            const Layer& l = net.layers[i];
            const float* x = i == 0 ? x0 : cur[i];
            Seg segs[3];
            int nseg = 0;
            segs[nseg++] = Seg{c, C, l.cond, C};
            if (i > 0) {
                segs[nseg++] = Seg{prv[i], R, l.prev, R};
                segs[nseg++] = Seg{x, R, l.cur, R};
            }
            float* pre = net.pre.data();
            gemm_rows(r0, r1, 2 * G, segs, nseg, i == 0 ? h0 : nullptr, 2 * G, l.bias, pre, 2 * G);
            for (int64_t r = r0; r < r1; ++r) gate(pre + r * 2 * G, G, net.z.data() + r * zl + (int64_t)i * G);
            if (l.res_w && i + 1 < L) {
                Seg rs{net.z.data() + (int64_t)i * G, zl, l.res_w, G};
                gemm_rows(r0, r1, R, &rs, 1, x, R, l.res_b, cur[i + 1], R);
            }
#pragma omp barrier
        }
        Seg ss{net.z.data(), zl, net.skip_w, (int)zl};
        float* skips = net.head.d ? net.head.skips.data() : out;
        gemm_rows(r0, r1, S, &ss, 1, nullptr, 0, net.skip_b, skips, S);
        if (net.head.d) {
            head_frames(net, r0, r1);
#pragma omp barrier
            head_steps(net, (int64_t)net.batch * id / nt, (int64_t)net.batch * (id + 1) / nt, out);
        }
    }
}

}  // extern "C"
