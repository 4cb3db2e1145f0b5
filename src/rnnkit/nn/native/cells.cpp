// Fused gate arithmetic of one time step, forward and backward, for the Elman RNN, LSTM and GRU.
//
// The same equations as rnnkit/nn/cells.py (read that file first), each step in one pass over
// memory instead of one pass per elementwise operation. Rows of a step are split across OpenMP
// threads; the inner loop over hidden units is written for the compiler to vectorise (expf and
// tanhf come from glibc's vector math library under -ffast-math).
//
// Every tensor is a contiguous (n, width) block: the time loop only passes row prefixes of
// contiguous buffers. Shapes in comments use H for the hidden size.

#include <torch/extension.h>
#include <ATen/OpMathType.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <atomic>
#ifdef __AVX512BF16__
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdlib>
#include <cstring>
#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define RNNKIT_HAS_DLFCN 1
#endif
#include <string>
#include <type_traits>

namespace {

// A step's gate arithmetic is split over the threads from this many elements on. Small steps gain
// too: the recurrent GEMM before them ran on every thread, and each thread finds its share of the
// GEMM's output in its own cache (T=1000, B=16, H=128: 24 -> 18.5 us per LSTM step on 2 cores).
constexpr int64_t PARALLEL_MIN_ELEMENTS = 1024;

// The arguments are clamped where the results no longer change: under -ffast-math the vector
// exp and tanh of a large argument overflow to inf (and inf / inf gives NaN), which torch's own
// cells never do. sigmoid: exp(80) and exp(700) are finite in float and double, and
// sigmoid(-80) < 2e-35; tanh(20) rounds to 1 in both types, so clamping there changes nothing.
template <typename T> inline T clamp_abs(T x, T limit) { return x < -limit ? -limit : (x > limit ? limit : x); }
template <typename T> inline T sigmoid(T x) {
    constexpr T limit = sizeof(T) == sizeof(float) ? T(80) : T(700);
    return T(1) / (T(1) + std::exp(-clamp_abs(x, limit)));
}
template <typename T> inline T tanh_(T x) { return std::tanh(clamp_abs(x, T(20))); }

// Calls f(std::true_type{}) or f(std::false_type{}) as flag is set or not: a kernel's template
// argument chosen at run time, outside its loops.
template <typename F>
inline void with_flag(bool flag, const F& f) {
    if (flag) f(std::true_type{}); else f(std::false_type{});
}

// Whether the environment variable `name` is set to 0: the switch that turns an optimisation off.
bool switched_off(const char* name) {
    const char* setting = std::getenv(name);
    return setting != nullptr && std::string(setting) == "0";
}

void check(const torch::Tensor& t, const char* name) {
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
}

// --- LSTM ----------------------------------------------------------------------------------------

// Each kernel works on raw rows: the time loop below calls it with pointers into its buffers, and
// a thin tensor wrapper serves the Python loop of rnnkit/nn/scan.py. A second addend (A2, GB, DO)
// may be null; the loop passes the recurrent product or the output gradient there instead of
// summing it into a buffer first. So may the input bias BX of the forward kernels: the loop adds it
// here rather than copying it into every row of the input projection before its GEMM. Whether an
// operand is there is a template argument of each *_impl, not a test inside the loop: a branch in
// the loop stops GCC from vectorising it (12x slower measured).

// a = A (+ A2) (+ BX) (n, 4H) [i f g o] pre-activations, BX a (4H) bias; c_prev (n, H)
// -> act (n, 5H) [i f g o tanh(c)], h, c (n, H)
template <typename T, bool Add, bool Bias>
void lstm_forward_impl(const T* A, const T* A2, const T* BX, const T* CP, T* ACT, T* HO, T* CO, int64_t n,
                       int64_t H) {
    #pragma omp parallel for if (n * H > PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; ++r) {
        const T* ar = A + r * 4 * H;
        const T* br = Add ? A2 + r * 4 * H : nullptr;
        T* act_r = ACT + r * 5 * H;
        #pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
            T ai = ar[j], af = ar[H + j], ag = ar[2 * H + j], ao = ar[3 * H + j];
            if (Add) { ai += br[j]; af += br[H + j]; ag += br[2 * H + j]; ao += br[3 * H + j]; }
            if (Bias) { ai += BX[j]; af += BX[H + j]; ag += BX[2 * H + j]; ao += BX[3 * H + j]; }
            T i = sigmoid(ai), f = sigmoid(af), g = tanh_(ag), o = sigmoid(ao);
            T cn = f * CP[r * H + j] + i * g;
            T tc = tanh_(cn);
            act_r[j] = i; act_r[H + j] = f; act_r[2 * H + j] = g; act_r[3 * H + j] = o; act_r[4 * H + j] = tc;
            CO[r * H + j] = cn;
            HO[r * H + j] = o * tc;
        }
    }
}

template <typename T>
void lstm_forward_rows(const T* A, const T* A2, const T* BX, const T* CP, T* ACT, T* HO, T* CO, int64_t n,
                       int64_t H) {
    with_flag(A2 != nullptr, [&](auto add) { with_flag(BX != nullptr, [&](auto bias) {
        lstm_forward_impl<T, decltype(add)::value, decltype(bias)::value>(A, A2, BX, CP, ACT, HO, CO, n, H);
    }); });
}

void lstm_forward(torch::Tensor a, torch::Tensor c_prev, torch::Tensor act, torch::Tensor h, torch::Tensor c) {
    check(a, "a"); check(c_prev, "c_prev"); check(act, "act"); check(h, "h"); check(c, "c");
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lstm_forward", [&] {
        lstm_forward_rows<scalar_t>(a.data_ptr<scalar_t>(), nullptr, nullptr, c_prev.data_ptr<scalar_t>(),
                                    act.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(),
                                    c_prev.size(0), c_prev.size(1));
    });
}

// dh = DH (+ DO), dc (n, H): gradients of h_t and c_t; act (n, 5H); c_prev (n, H)
// -> d_a (n, 4H) gradients of the pre-activations, dc_prev (n, H) (may alias dc)
template <typename T, bool Add>
void lstm_backward_impl(const T* DH, const T* DO, const T* DC, const T* ACT, const T* CP, T* DA, T* DCP,
                        int64_t n, int64_t H) {
    #pragma omp parallel for if (n * H > PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; ++r) {
        const T* act_r = ACT + r * 5 * H;
        const T* do_r = Add ? DO + r * H : nullptr;
        T* da_r = DA + r * 4 * H;
        #pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
            const int64_t k = r * H + j;
            T i = act_r[j], f = act_r[H + j], g = act_r[2 * H + j], o = act_r[3 * H + j];
            T tc = act_r[4 * H + j];
            T d_h = Add ? DH[k] + do_r[j] : DH[k];
            T dct = DC[k] + d_h * o * (T(1) - tc * tc);
            da_r[j] = dct * g * i * (T(1) - i);
            da_r[H + j] = dct * CP[k] * f * (T(1) - f);
            da_r[2 * H + j] = dct * i * (T(1) - g * g);
            da_r[3 * H + j] = d_h * tc * o * (T(1) - o);
            DCP[k] = dct * f;
        }
    }
}

template <typename T>
void lstm_backward_rows(const T* DH, const T* DO, const T* DC, const T* ACT, const T* CP, T* DA, T* DCP,
                        int64_t n, int64_t H) {
    with_flag(DO != nullptr, [&](auto add) {
        lstm_backward_impl<T, decltype(add)::value>(DH, DO, DC, ACT, CP, DA, DCP, n, H);
    });
}

void lstm_backward(torch::Tensor dh, torch::Tensor dc, torch::Tensor act, torch::Tensor c_prev,
                   torch::Tensor d_a, torch::Tensor dc_prev) {
    check(dh, "dh"); check(dc, "dc"); check(act, "act"); check(c_prev, "c_prev"); check(d_a, "d_a");
    check(dc_prev, "dc_prev");
    AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "lstm_backward", [&] {
        lstm_backward_rows<scalar_t>(dh.data_ptr<scalar_t>(), nullptr, dc.data_ptr<scalar_t>(),
                                     act.data_ptr<scalar_t>(), c_prev.data_ptr<scalar_t>(),
                                     d_a.data_ptr<scalar_t>(), dc_prev.data_ptr<scalar_t>(), dh.size(0), dh.size(1));
    });
}

// --- GRU -----------------------------------------------------------------------------------------

// gx, gh (n, 3H) [r z n], gh without b_hh when GB (3H) is given, gx without b_ih when BX (3H) is;
// h_prev (n, H) -> act (n, 4H) [r z n gh_n] (gh_n with its bias), h (n, H)
template <typename T, bool Add, bool Bias>
void gru_forward_impl(const T* GX, const T* GH, const T* GB, const T* BX, const T* HP, T* ACT, T* HO, int64_t n,
                      int64_t H) {
    #pragma omp parallel for if (n * H > PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; ++r) {
        const T* x_r = GX + r * 3 * H;
        const T* h_r = GH + r * 3 * H;
        T* act_r = ACT + r * 4 * H;
        #pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
            T hr = h_r[j], hz = h_r[H + j], ghn = h_r[2 * H + j];
            T xr = x_r[j], xz = x_r[H + j], xn = x_r[2 * H + j];
            if (Add) { hr += GB[j]; hz += GB[H + j]; ghn += GB[2 * H + j]; }
            if (Bias) { xr += BX[j]; xz += BX[H + j]; xn += BX[2 * H + j]; }
            T rg = sigmoid(xr + hr);
            T z = sigmoid(xz + hz);
            T nn = tanh_(xn + rg * ghn);
            act_r[j] = rg; act_r[H + j] = z; act_r[2 * H + j] = nn; act_r[3 * H + j] = ghn;
            HO[r * H + j] = nn + z * (HP[r * H + j] - nn);
        }
    }
}

template <typename T>
void gru_forward_rows(const T* GX, const T* GH, const T* GB, const T* BX, const T* HP, T* ACT, T* HO, int64_t n,
                      int64_t H) {
    with_flag(GB != nullptr, [&](auto add) { with_flag(BX != nullptr, [&](auto bias) {
        gru_forward_impl<T, decltype(add)::value, decltype(bias)::value>(GX, GH, GB, BX, HP, ACT, HO, n, H);
    }); });
}

void gru_forward(torch::Tensor gx, torch::Tensor gh, torch::Tensor h_prev, torch::Tensor act, torch::Tensor h) {
    check(gx, "gx"); check(gh, "gh"); check(h_prev, "h_prev"); check(act, "act"); check(h, "h");
    AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "gru_forward", [&] {
        gru_forward_rows<scalar_t>(gx.data_ptr<scalar_t>(), gh.data_ptr<scalar_t>(), nullptr, nullptr,
                                   h_prev.data_ptr<scalar_t>(), act.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                   h_prev.size(0), h_prev.size(1));
    });
}

// dh = DH (+ DO) (n, H); act (n, 4H); h_prev (n, H) -> d_gx, d_gh (n, 3H), dh_direct (n, H) = dh * z
// (dh_direct may alias DH: each element is read before it is written)
template <typename T, bool Add>
void gru_backward_impl(const T* DH, const T* DO, const T* ACT, const T* HP, T* DX, T* DG, T* DD, int64_t n, int64_t H) {
    #pragma omp parallel for if (n * H > PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; ++r) {
        const T* act_r = ACT + r * 4 * H;
        const T* do_r = Add ? DO + r * H : nullptr;
        T* dx_r = DX + r * 3 * H;
        T* dg_r = DG + r * 3 * H;
        #pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
            const int64_t k = r * H + j;
            T rg = act_r[j], z = act_r[H + j], nn = act_r[2 * H + j], ghn = act_r[3 * H + j];
            T d_h = Add ? DH[k] + do_r[j] : DH[k];
            T dn = d_h * (T(1) - z) * (T(1) - nn * nn);
            T dz = d_h * (HP[k] - nn) * z * (T(1) - z);
            T dr = dn * ghn * rg * (T(1) - rg);
            dx_r[j] = dr; dx_r[H + j] = dz; dx_r[2 * H + j] = dn;
            dg_r[j] = dr; dg_r[H + j] = dz; dg_r[2 * H + j] = dn * rg;
            DD[k] = d_h * z;
        }
    }
}

template <typename T>
void gru_backward_rows(const T* DH, const T* DO, const T* ACT, const T* HP, T* DX, T* DG, T* DD, int64_t n, int64_t H) {
    with_flag(DO != nullptr, [&](auto add) { gru_backward_impl<T, decltype(add)::value>(DH, DO, ACT, HP, DX, DG, DD, n, H); });
}

void gru_backward(torch::Tensor dh, torch::Tensor act, torch::Tensor h_prev, torch::Tensor d_gx,
                  torch::Tensor d_gh, torch::Tensor dh_direct) {
    check(dh, "dh"); check(act, "act"); check(h_prev, "h_prev"); check(d_gx, "d_gx"); check(d_gh, "d_gh");
    check(dh_direct, "dh_direct");
    AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "gru_backward", [&] {
        gru_backward_rows<scalar_t>(dh.data_ptr<scalar_t>(), nullptr, act.data_ptr<scalar_t>(),
                                    h_prev.data_ptr<scalar_t>(), d_gx.data_ptr<scalar_t>(), d_gh.data_ptr<scalar_t>(),
                                    dh_direct.data_ptr<scalar_t>(), dh.size(0), dh.size(1));
    });
}

// --- Elman RNN -----------------------------------------------------------------------------------

// a = A (+ A2) (+ BX) (n, H), BX an (H) bias -> act (n, H) = f(a) (unless ACT is null), h (n, H) = f(a)
template <typename T, bool Relu, bool Add, bool Save, bool Bias>
void rnn_forward_impl(const T* A, const T* A2, const T* BX, T* ACT, T* HO, int64_t n, int64_t H) {
    #pragma omp parallel for if (n * H > PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; ++r) {
        const T* a = A + r * H;
        const T* b = Add ? A2 + r * H : nullptr;
        T* act = Save ? ACT + r * H : nullptr;
        T* h = HO + r * H;
        #pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
            T x = Add ? a[j] + b[j] : a[j];
            if (Bias) x += BX[j];
            T v = Relu ? (x > T(0) ? x : T(0)) : tanh_(x);
            if (Save) act[j] = v;
            h[j] = v;
        }
    }
}

template <typename T, bool Relu>
void rnn_forward_rows(const T* A, const T* A2, const T* BX, T* ACT, T* HO, int64_t n, int64_t H) {
    with_flag(A2 != nullptr, [&](auto add) { with_flag(ACT != nullptr, [&](auto save) {
        with_flag(BX != nullptr, [&](auto bias) {
            rnn_forward_impl<T, Relu, decltype(add)::value, decltype(save)::value, decltype(bias)::value>(
                A, A2, BX, ACT, HO, n, H);
        });
    }); });
}

void rnn_forward(torch::Tensor a, torch::Tensor act, torch::Tensor h, bool relu) {
    check(a, "a"); check(act, "act"); check(h, "h");
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "rnn_forward", [&] {
        auto kernel = relu ? rnn_forward_rows<scalar_t, true> : rnn_forward_rows<scalar_t, false>;
        kernel(a.data_ptr<scalar_t>(), nullptr, nullptr, act.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(), a.size(0),
               a.size(1));
    });
}

// dh = DH (+ DO) (n, H), act (n, H) -> d_a (n, H)
template <typename T, bool Relu, bool Add>
void rnn_backward_impl(const T* DH, const T* DO, const T* ACT, T* DA, int64_t n, int64_t H) {
    #pragma omp parallel for if (n * H > PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; ++r) {
        const T* dh = DH + r * H;
        const T* dout = Add ? DO + r * H : nullptr;
        const T* act = ACT + r * H;
        T* da = DA + r * H;
        #pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
            T g = Add ? dh[j] + dout[j] : dh[j];
            T v = act[j];
            da[j] = Relu ? (v > T(0) ? g : T(0)) : g * (T(1) - v * v);
        }
    }
}

template <typename T, bool Relu>
void rnn_backward_rows(const T* DH, const T* DO, const T* ACT, T* DA, int64_t n, int64_t H) {
    with_flag(DO != nullptr, [&](auto add) { rnn_backward_impl<T, Relu, decltype(add)::value>(DH, DO, ACT, DA, n, H); });
}

void rnn_backward(torch::Tensor dh, torch::Tensor act, torch::Tensor d_a, bool relu) {
    check(dh, "dh"); check(act, "act"); check(d_a, "d_a");
    AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "rnn_backward", [&] {
        auto kernel = relu ? rnn_backward_rows<scalar_t, true> : rnn_backward_rows<scalar_t, false>;
        kernel(dh.data_ptr<scalar_t>(), nullptr, act.data_ptr<scalar_t>(), d_a.data_ptr<scalar_t>(),
               dh.size(0), dh.size(1));
    });
}

// --- Small-batch linear map ---------------------------------------------------------------------

// The type sums and gate arithmetic run in: float for bfloat16 tensors, else the tensors' own.
template <typename T> using Acc = at::opmath_type<T>;

// out[i] = dot(w[i], v) for R rows of length K, each with its own accumulator (R <= 4): one
// accumulator alone would leave the loop waiting on the latency of its chained multiply-adds.
template <typename T, int R>
inline void dots(const T* const* w, const T* v, int64_t K, Acc<T>* out) {
    using A = Acc<T>;
    const T* w0 = w[0];
    const T* w1 = w[R > 1 ? 1 : 0];
    const T* w2 = w[R > 2 ? 2 : 0];
    const T* w3 = w[R > 3 ? 3 : 0];
    A s0 = A(0), s1 = A(0), s2 = A(0), s3 = A(0);
    #pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t k = 0; k < K; ++k) {
        const A vk = A(v[k]);
        s0 += A(w0[k]) * vk;
        if (R > 1) s1 += A(w1[k]) * vk;
        if (R > 2) s2 += A(w2[k]) * vk;
        if (R > 3) s3 += A(w3[k]) * vk;
    }
    out[0] = s0;
    if (R > 1) out[1] = s1;
    if (R > 2) out[2] = s2;
    if (R > 3) out[3] = s3;
}

#ifdef __AVX512BF16__
// bfloat16 rows with AVX512-BF16: each VDPBF16PS multiplies 32 pairs of bfloat16 and adds them into
// 16 float32 sums. The tail of K past a multiple of 32 is summed one element at a time.
template <int R>
inline void dots(const c10::BFloat16* const* w, const c10::BFloat16* v, int64_t K, float* out) {
    const c10::BFloat16* w0 = w[0];
    const c10::BFloat16* w1 = w[R > 1 ? 1 : 0];
    const c10::BFloat16* w2 = w[R > 2 ? 2 : 0];
    const c10::BFloat16* w3 = w[R > 3 ? 3 : 0];
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m512bh vk = (__m512bh)_mm512_loadu_si512(v + k);
        s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_loadu_si512(w0 + k), vk);
        if (R > 1) s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_loadu_si512(w1 + k), vk);
        if (R > 2) s2 = _mm512_dpbf16_ps(s2, (__m512bh)_mm512_loadu_si512(w2 + k), vk);
        if (R > 3) s3 = _mm512_dpbf16_ps(s3, (__m512bh)_mm512_loadu_si512(w3 + k), vk);
    }
    float sums[4] = {_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2),
                     _mm512_reduce_add_ps(s3)};
    for (; k < K; ++k) {
        const float vk = float(v[k]);
        sums[0] += float(w0[k]) * vk;
        if (R > 1) sums[1] += float(w1[k]) * vk;
        if (R > 2) sums[2] += float(w2[k]) * vk;
        if (R > 3) sums[3] += float(w3[k]) * vk;
    }
    for (int i = 0; i < R; ++i) out[i] = sums[i];
}

template <>
inline void dots<c10::BFloat16, 4>(const c10::BFloat16* const* w, const c10::BFloat16* v, int64_t K, float* out) {
    dots<4>(w, v, K, out);
}

template <>
inline void dots<c10::BFloat16, 1>(const c10::BFloat16* const* w, const c10::BFloat16* v, int64_t K, float* out) {
    dots<1>(w, v, K, out);
}
#endif

// out[u] = bias[u] + dot(W row (row0 + u), v) for u < units: consecutive rows of W (K wide), read
// four at a time so the weights stream from memory in order. bias may be null.
template <typename T>
inline void rows_dot(const T* W, const T* bias, int64_t row0, int64_t units, const T* v, int64_t K, Acc<T>* out) {
    int64_t u = 0;
    for (; u + 4 <= units; u += 4) {
        const T* w[4] = {W + (row0 + u) * K, W + (row0 + u + 1) * K, W + (row0 + u + 2) * K, W + (row0 + u + 3) * K};
        dots<T, 4>(w, v, K, out + u);
    }
    for (; u < units; ++u) {
        const T* w[1] = {W + (row0 + u) * K};
        dots<T, 1>(w, v, K, out + u);
    }
    if (bias)
        for (u = 0; u < units; ++u) out[u] += Acc<T>(bias[row0 + u]);
}

// out (n, N) = addend + x (n, K) @ w (N, K)^T, for a handful of rows n (streaming, batch 1). A
// matrix-vector product is bound by reading w; this splits w's rows over the threads so both cores
// stream it. addend is (n, N), (N,) or empty.
template <typename T>
void small_linear_kernel(const T* X, const T* W, const T* ADD, int64_t add_rows, T* OUT,
                         int64_t n, int64_t K, int64_t N) {
    constexpr int64_t CHUNK = 16;                            // rows of w per task
    const int64_t chunks = (N + CHUNK - 1) / CHUNK;
    #pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < chunks; ++q) {
        const int64_t j0 = q * CHUNK, rows = std::min(CHUNK, N - j0);
        for (int64_t r = 0; r < n; ++r) {
            T* out = OUT + r * N + j0;
            rows_dot<T>(W, nullptr, j0, rows, X + r * K, K, out);
            if (add_rows) {
                const T* add = ADD + (add_rows == 1 ? 0 : r * N) + j0;
                for (int64_t u = 0; u < rows; ++u) out[u] += add[u];
            }
        }
    }
}

void small_linear(torch::Tensor x, torch::Tensor w, torch::Tensor addend, torch::Tensor out) {
    check(x, "x"); check(w, "w"); check(out, "out");
    const int64_t n = x.size(0), K = x.size(1), N = w.size(0);
    TORCH_CHECK(w.size(1) == K && out.size(0) == n && out.size(1) == N, "small_linear: shapes do not match");
    int64_t add_rows = 0;
    if (addend.numel() > 0) {
        check(addend, "addend");
        add_rows = addend.dim() == 1 ? 1 : addend.size(0);
        TORCH_CHECK(addend.size(-1) == N && (add_rows == 1 || add_rows == n), "small_linear: addend shape");
    }
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "small_linear", [&] {
        small_linear_kernel<scalar_t>(x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                      add_rows ? addend.data_ptr<scalar_t>() : nullptr, add_rows,
                                      out.data_ptr<scalar_t>(), n, K, N);
    });
}

// --- Layer normalisation of the recurrent product, one step ----------------------------------------

// raw (n, W) = h_{t-1} W_hh^T; gain (W); bias (W) or empty
// -> xhat (n, W) normalised rows, rstd (n, 1), gh (n, W) = xhat * gain [+ bias] [+ addend]
// addend (n, W) or empty: the LSTM and RNN add gx here, the GRU does not.
template <typename T>
void layer_norm_forward_kernel(const T* RAW, const T* GAIN, const T* BIAS, const T* ADD, T* XHAT, T* RSTD,
                               T* GH, int64_t n, int64_t W, T eps) {
    #pragma omp parallel for if (n * W > 4096)
    for (int64_t r = 0; r < n; ++r) {
        const T* raw = RAW + r * W;
        T sum = T(0), sq = T(0);
        #pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < W; ++j) sum += raw[j];
        const T mean = sum / T(W);
        #pragma omp simd reduction(+ : sq)
        for (int64_t j = 0; j < W; ++j) sq += (raw[j] - mean) * (raw[j] - mean);
        const T rstd = T(1) / std::sqrt(sq / T(W) + eps);
        RSTD[r] = rstd;
        T* xhat = XHAT + r * W;
        T* gh = GH + r * W;
        const T* add = ADD ? ADD + r * W : nullptr;
        #pragma omp simd
        for (int64_t j = 0; j < W; ++j) {
            T v = (raw[j] - mean) * rstd;
            xhat[j] = v;
            T g = v * GAIN[j];
            if (BIAS) g += BIAS[j];
            if (add) g += add[j];
            gh[j] = g;
        }
    }
}

void layer_norm_forward(torch::Tensor raw, torch::Tensor gain, torch::Tensor bias, torch::Tensor addend,
                        torch::Tensor xhat, torch::Tensor rstd, torch::Tensor gh, double eps) {
    check(raw, "raw"); check(gain, "gain"); check(xhat, "xhat"); check(rstd, "rstd"); check(gh, "gh");
    if (bias.numel()) check(bias, "bias");
    if (addend.numel()) check(addend, "addend");
    AT_DISPATCH_FLOATING_TYPES(raw.scalar_type(), "layer_norm_forward", [&] {
        layer_norm_forward_kernel<scalar_t>(
            raw.data_ptr<scalar_t>(), gain.data_ptr<scalar_t>(),
            bias.numel() ? bias.data_ptr<scalar_t>() : nullptr, addend.numel() ? addend.data_ptr<scalar_t>() : nullptr,
            xhat.data_ptr<scalar_t>(), rstd.data_ptr<scalar_t>(), gh.data_ptr<scalar_t>(),
            raw.size(0), raw.size(1), static_cast<scalar_t>(eps));
    });
}

// d_gh (n, W) gradient after the gain; xhat (n, W); rstd (n, 1); gain (W) -> d_raw (n, W)
template <typename T>
void layer_norm_backward_kernel(const T* DGH, const T* XHAT, const T* RSTD, const T* GAIN, T* DRAW,
                                int64_t n, int64_t W) {
    #pragma omp parallel for if (n * W > 4096)
    for (int64_t r = 0; r < n; ++r) {
        const T* dgh = DGH + r * W;
        const T* xhat = XHAT + r * W;
        T m1 = T(0), m2 = T(0);
        #pragma omp simd reduction(+ : m1, m2)
        for (int64_t j = 0; j < W; ++j) {
            T d = dgh[j] * GAIN[j];
            m1 += d;
            m2 += d * xhat[j];
        }
        m1 /= T(W);
        m2 /= T(W);
        const T rstd = RSTD[r];
        T* draw = DRAW + r * W;
        #pragma omp simd
        for (int64_t j = 0; j < W; ++j) draw[j] = rstd * (dgh[j] * GAIN[j] - m1 - xhat[j] * m2);
    }
}

void layer_norm_backward(torch::Tensor d_gh, torch::Tensor xhat, torch::Tensor rstd, torch::Tensor gain,
                         torch::Tensor d_raw) {
    check(d_gh, "d_gh"); check(xhat, "xhat"); check(rstd, "rstd"); check(gain, "gain"); check(d_raw, "d_raw");
    AT_DISPATCH_FLOATING_TYPES(d_gh.scalar_type(), "layer_norm_backward", [&] {
        layer_norm_backward_kernel<scalar_t>(d_gh.data_ptr<scalar_t>(), xhat.data_ptr<scalar_t>(),
                                             rstd.data_ptr<scalar_t>(), gain.data_ptr<scalar_t>(),
                                             d_raw.data_ptr<scalar_t>(), d_gh.size(0), d_gh.size(1));
    });
}

// --- The time loop itself, for layers without layer norm, projection or zoneout ---------------------

// Cell codes shared with rnnkit/nn/scan.py.
enum Cell : int64_t { RNN_TANH = 0, RNN_RELU = 1, LSTM = 2, GRU = 3 };

// Every step multiplies the state by the same weight. MKL, which PyTorch's x86 builds carry, can
// pack a matrix once into its internal blocked layout and reuse it for every product
// (cblas_sgemm_pack / cblas_sgemm_compute), the way oneDNN's fused LSTM does. The functions are
// looked up at run time: where they are missing (a PyTorch without MKL), or with
// RNNKIT_PACKED_GEMM=0, each step calls at::mm instead.
struct MklPackedGemm {
    size_t (*get_size)(int identifier, int m, int n, int k) = nullptr;
    void (*pack)(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src, int ld,
                 float* dest) = nullptr;
    void (*compute)(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda, const float* b,
                    int ldb, float beta, float* c, int ldc) = nullptr;
    enum : int { RowMajor = 101, NoTrans = 111, Trans = 112, Packed = 151, BMatrix = 162 };   // mkl_cblas.h

    static const MklPackedGemm& get() {
        static const MklPackedGemm api = [] {
            MklPackedGemm found;
            if (switched_off("RNNKIT_PACKED_GEMM")) return found;
#ifdef RNNKIT_HAS_DLFCN
            void* torch_cpu = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);
            if (torch_cpu == nullptr) return found;
            found.get_size = reinterpret_cast<decltype(found.get_size)>(dlsym(torch_cpu, "cblas_sgemm_pack_get_size"));
            found.pack = reinterpret_cast<decltype(found.pack)>(dlsym(torch_cpu, "cblas_sgemm_pack"));
            found.compute = reinterpret_cast<decltype(found.compute)>(dlsym(torch_cpu, "cblas_sgemm_compute"));
            if (found.get_size == nullptr || found.pack == nullptr || found.compute == nullptr) found = MklPackedGemm{};
#endif
            return found;
        }();
        return api;
    }
};

// Packing costs about one product's time, so it pays from a few steps on; fewer steps use at::mm.
constexpr int64_t PACK_MIN_STEPS = 8;

// out (n, N) = x (n, K) op(W) + beta * out, for the same W at every step; op(W) = W^T when
// `transposed` (W is (N, K), as a forward pass uses W_hh) or W (W is (K, N), as BPTT uses it).
// rows: the most rows a product will have (the batch), steps: how many products there will be.
template <typename T>
class StepProduct {
  public:
    StepProduct(const torch::Tensor& w, bool transposed, int64_t rows, int64_t steps)
        : w_(w.contiguous()), transposed_(transposed),
          K_(transposed ? w.size(1) : w.size(0)), N_(transposed ? w.size(0) : w.size(1)) {
        const MklPackedGemm& mkl = MklPackedGemm::get();
        if constexpr (std::is_same_v<T, float>) {
            if (mkl.compute != nullptr && steps >= PACK_MIN_STEPS) {
                const size_t bytes = mkl.get_size(MklPackedGemm::BMatrix, rows, N_, K_);
                packed_ = torch::empty({static_cast<int64_t>(bytes)}, w_.options().dtype(torch::kUInt8));
                mkl.pack(MklPackedGemm::RowMajor, MklPackedGemm::BMatrix,
                         transposed ? MklPackedGemm::Trans : MklPackedGemm::NoTrans, rows, N_, K_, 1.f,
                         w_.data_ptr<float>(), w_.size(1), static_cast<float*>(packed_.data_ptr()));
            }
        }
    }

    void operator()(const T* x, int64_t n, T beta, T* out) const {
        if constexpr (std::is_same_v<T, float>) {
            if (packed_.defined()) {
                MklPackedGemm::get().compute(MklPackedGemm::RowMajor, MklPackedGemm::NoTrans, MklPackedGemm::Packed,
                                            n, N_, K_, x, K_, static_cast<const float*>(packed_.data_ptr()), N_,
                                            beta, out, N_);
                return;
            }
        }
        torch::Tensor x_t = torch::from_blob(const_cast<T*>(x), {n, K_}, w_.options());
        torch::Tensor out_t = torch::from_blob(out, {n, N_}, w_.options());
        torch::Tensor w = transposed_ ? w_.t() : w_;
        if (beta == T(0)) at::mm_out(out_t, x_t, w);
        else out_t.addmm_(x_t, w);
    }

  private:
    torch::Tensor w_, packed_;
    bool transposed_;
    int64_t K_, N_;
};

// The forward loop of rnnkit/nn/scan.py (_Scan.forward) for the plain case: same buffers, same
// order, run without returning to Python between steps.
//   gx (T, B, G*H), the input projection, without its bias when b_x (G*H) is given (else b_x is
//   empty); w_hh (G*H, H); b_hh (G*H) or empty (GRU only); states_h (T+1, B, H);
//   states_c (T+1 or 2, B, H) or empty; act (T or 1, B, saved*H), or (T, B, 0) for the Elman RNN,
//   whose saved activation is h_t itself (read back from states_h); scratch (B, G*H).
void scan_forward(int64_t cell, torch::Tensor gx, torch::Tensor b_x, torch::Tensor w_hh, torch::Tensor b_hh,
                  torch::Tensor states_h, torch::Tensor states_c, torch::Tensor act, torch::Tensor scratch,
                  std::vector<int64_t> batch_sizes, bool reverse, bool save) {
    check(gx, "gx"); check(states_h, "states_h"); check(act, "act"); check(scratch, "scratch");
    const int64_t T = gx.size(0), B = gx.size(1), GH = gx.size(2), H = states_h.size(2), saved = act.size(2);
    const bool relu = cell == RNN_RELU;
    AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "scan_forward", [&] {
        const StepProduct<scalar_t> recurrent(w_hh, /*transposed=*/true, B, T);       // h W_hh^T
        const scalar_t* GX = gx.data_ptr<scalar_t>();
        const scalar_t* BX = b_x.numel() > 0 ? b_x.data_ptr<scalar_t>() : nullptr;
        const scalar_t* BHH = b_hh.numel() > 0 ? b_hh.data_ptr<scalar_t>() : nullptr;
        scalar_t* SH = states_h.data_ptr<scalar_t>();
        scalar_t* SC = states_c.numel() > 0 ? states_c.data_ptr<scalar_t>() : nullptr;
        scalar_t* ACT = act.data_ptr<scalar_t>();
        scalar_t* GHR = scratch.data_ptr<scalar_t>();                                  // (n, G*H)
        const size_t row = H * sizeof(scalar_t);
        for (int64_t k = 0; k < T; ++k) {
            const int64_t t = reverse ? T - 1 - k : k, n = batch_sizes[t], s = save ? t : 0;
            const scalar_t* gx_t = GX + t * B * GH;
            scalar_t* h_prev = SH + k * B * H;
            scalar_t* h_next = h_prev + B * H;
            scalar_t* act_s = ACT + s * B * saved;
            if (n < B) std::memcpy(h_next + n * H, h_prev + n * H, (B - n) * row);   // inactive rows carry h
            recurrent(h_prev, n, scalar_t(0), GHR);
            if (cell == LSTM) {
                const int64_t kc = save ? k : k % 2, next = save ? k + 1 : 1 - kc;
                scalar_t* c_prev = SC + kc * B * H;
                scalar_t* c_next = SC + next * B * H;
                if (n < B) std::memcpy(c_next + n * H, c_prev + n * H, (B - n) * row);
                lstm_forward_rows<scalar_t>(gx_t, GHR, BX, c_prev, act_s, h_next, c_next, n, H);
            } else if (cell == GRU) {
                gru_forward_rows<scalar_t>(gx_t, GHR, BHH, BX, h_prev, act_s, h_next, n, H);
            } else {
                (relu ? rnn_forward_rows<scalar_t, true> : rnn_forward_rows<scalar_t, false>)(
                    gx_t, GHR, BX, saved > 0 ? act_s : nullptr, h_next, n, H);
            }
        }
    });
}

// The backward loop of _Scan.backward for the plain case. dh (B, H) and dc (B, H) hold the
// gradients of the final state on entry and of the initial state on return. d_gx (T, B, G*H)
// receives the pre-activation gradients; d_gh_n (T, B, H) the GRU's gradients of gh_n, the n
// block of its recurrent ones (the r and z blocks equal d_gx's); empty for the other cells.
void scan_backward(int64_t cell, torch::Tensor w_hh, torch::Tensor states_h, torch::Tensor states_c,
                   torch::Tensor act, torch::Tensor d_output, torch::Tensor dh, torch::Tensor dc,
                   torch::Tensor d_gx, torch::Tensor d_gh_n, std::vector<int64_t> batch_sizes, bool reverse) {
    check(states_h, "states_h"); check(act, "act"); check(dh, "dh"); check(d_gx, "d_gx");
    d_output = d_output.contiguous();
    const int64_t T = act.size(0), B = act.size(1), saved = act.size(2), GH = d_gx.size(2), H = dh.size(1);
    const bool relu = cell == RNN_RELU;
    AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "scan_backward", [&] {
        const StepProduct<scalar_t> recurrent(w_hh, /*transposed=*/false, B, T);      // d_gates W_hh
        const scalar_t* SH = states_h.data_ptr<scalar_t>();
        const scalar_t* SC = states_c.numel() > 0 ? states_c.data_ptr<scalar_t>() : nullptr;
        const scalar_t* ACT = act.data_ptr<scalar_t>();
        const scalar_t* DO = d_output.data_ptr<scalar_t>();
        scalar_t* DH = dh.data_ptr<scalar_t>();
        scalar_t* DC = dc.numel() > 0 ? dc.data_ptr<scalar_t>() : nullptr;
        scalar_t* DGX = d_gx.data_ptr<scalar_t>();
        scalar_t* DGN = d_gh_n.numel() > 0 ? d_gh_n.data_ptr<scalar_t>() : nullptr;
        // the GRU's recurrent gradients [dr dz dn*r] of one step (n, 3H), for the product with W_hh
        torch::Tensor d_gh_step = cell == GRU ? torch::empty({B, GH}, d_gx.options()) : torch::Tensor();
        for (int64_t k = T - 1; k >= 0; --k) {
            const int64_t t = reverse ? T - 1 - k : k, n = batch_sizes[t];
            const scalar_t* act_t = saved > 0 ? ACT + t * B * saved : SH + (k + 1) * B * H;   // RNN: h_t
            const scalar_t* do_t = DO + t * B * H;                  // dL/dh_t = dh + d_output[t]
            scalar_t* d_raw = DGX + t * B * GH;
            if (cell == LSTM) {
                lstm_backward_rows<scalar_t>(DH, do_t, DC, act_t, SC + k * B * H, d_raw, DC, n, H);
                recurrent(d_raw, n, scalar_t(0), DH);
            } else if (cell == GRU) {
                d_raw = d_gh_step.data_ptr<scalar_t>();
                // dh <- dh * z (the direct path), then dh += d_gh W_hh
                gru_backward_rows<scalar_t>(DH, do_t, act_t, SH + k * B * H, DGX + t * B * GH, d_raw, DH, n, H);
                for (int64_t r = 0; r < n; ++r)
                    std::memcpy(DGN + (t * B + r) * H, d_raw + r * GH + 2 * H, H * sizeof(scalar_t));
                recurrent(d_raw, n, scalar_t(1), DH);
            } else {
                (relu ? rnn_backward_rows<scalar_t, true> : rnn_backward_rows<scalar_t, false>)(DH, do_t, act_t,
                                                                                              d_raw, n, H);
                recurrent(d_raw, n, scalar_t(0), DH);
            }
        }
    });
}

// --- One streaming step of a plain layer, at a batch of a few rows --------------------------------

// At batch 1 a step is bound by reading W_ih and W_hh. Each thread takes a share of the hidden
// units and, for each chunk of them, computes all of their gate rows from both matrices, then
// their gate arithmetic: the weights are read once, by both cores, in one parallel region with no
// buffers in between. The same equations as lstm_forward / gru_forward / rnn_forward above.

// Units go in chunks: the products of a chunk's units first (gate by gate), then its gate
// arithmetic as one vectorised loop (one unit at a time would call the scalar exp and tanh).
constexpr int64_t STEP_CHUNK = 16;

// Calls body(q) for every chunk q < chunks, in one parallel region where each thread owns the same
// contiguous range of chunks at every call, walked upwards when reverse is false and downwards when
// it is true. A streaming model alternates the direction from one step to the next: the weights a
// thread read last are then the first it reads again, while they are still in its core's L2. An
// LSTM with I = H = 512 has 8 MB of float32 weights, 4 MB per core against a 2 MB L2, and walking
// one way only every step evicts each line before it is read again. The direction changes no
// arithmetic: each unit's sums are the same, so results are identical either way.
template <typename Body>
inline void for_each_chunk(int64_t chunks, bool reverse, const Body& body) {
    #pragma omp parallel
    {
#ifdef _OPENMP
        const int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
#else
        const int64_t threads = 1, thread = 0;
#endif
        const int64_t lo = chunks * thread / threads, hi = chunks * (thread + 1) / threads;
        for (int64_t i = lo; i < hi; ++i) body(reverse ? lo + hi - 1 - i : i);
    }
}

// For batch row r and the units [j0, j0 + units): ax[g][u] = W_ih x_r + b_ih and ah[g][u] = W_hh h_r + b_hh
// at gate row g * H + j0 + u, for the G gates.
template <typename T, int G>
inline void chunk_gates(const T* WIH, const T* WHH, const T* BI, const T* BH, const T* x, const T* h, int64_t I,
                        int64_t H, int64_t j0, int64_t units, Acc<T> (*ax)[STEP_CHUNK], Acc<T> (*ah)[STEP_CHUNK]) {
    for (int g = 0; g < G; ++g) {
        rows_dot(WIH, BI, g * H + j0, units, x, I, ax[g]);
        rows_dot(WHH, BH, g * H + j0, units, h, H, ah[g]);
    }
}

template <typename T>
void lstm_step_kernel(const T* X, const T* HP, const T* CP, const T* WIH, const T* WHH, const T* BI,
                      const T* BH, T* HN, T* CN, int64_t n, int64_t I, int64_t H, bool reverse) {
    using A = Acc<T>;
    const int64_t chunks = (H + STEP_CHUNK - 1) / STEP_CHUNK;
    for_each_chunk(chunks, reverse, [&](int64_t q) {
        const int64_t j0 = q * STEP_CHUNK, units = std::min(STEP_CHUNK, H - j0);
        for (int64_t r = 0; r < n; ++r) {
            A ax[4][STEP_CHUNK], ah[4][STEP_CHUNK];               // [i f g o]
            chunk_gates<T, 4>(WIH, WHH, BI, BH, X + r * I, HP + r * H, I, H, j0, units, ax, ah);
            const T* cp = CP + r * H + j0;
            T* cn = CN + r * H + j0;
            T* hn = HN + r * H + j0;
            #pragma omp simd
            for (int64_t u = 0; u < units; ++u) {
                const A i = sigmoid(ax[0][u] + ah[0][u]), f = sigmoid(ax[1][u] + ah[1][u]);
                const A g = tanh_(ax[2][u] + ah[2][u]), o = sigmoid(ax[3][u] + ah[3][u]);
                const A c = f * A(cp[u]) + i * g;
                cn[u] = T(c);
                hn[u] = T(o * tanh_(c));
            }
        }
    });
}

template <typename T>
void gru_step_kernel(const T* X, const T* HP, const T* WIH, const T* WHH, const T* BI, const T* BH, T* HN,
                     int64_t n, int64_t I, int64_t H, bool reverse) {
    using A = Acc<T>;
    const int64_t chunks = (H + STEP_CHUNK - 1) / STEP_CHUNK;
    for_each_chunk(chunks, reverse, [&](int64_t q) {
        const int64_t j0 = q * STEP_CHUNK, units = std::min(STEP_CHUNK, H - j0);
        for (int64_t r = 0; r < n; ++r) {
            A ax[3][STEP_CHUNK], ah[3][STEP_CHUNK];               // [r z n]
            chunk_gates<T, 3>(WIH, WHH, BI, BH, X + r * I, HP + r * H, I, H, j0, units, ax, ah);
            const T* hp = HP + r * H + j0;
            T* hn = HN + r * H + j0;
            #pragma omp simd
            for (int64_t u = 0; u < units; ++u) {
                const A rg = sigmoid(ax[0][u] + ah[0][u]), z = sigmoid(ax[1][u] + ah[1][u]);
                const A nn = tanh_(ax[2][u] + rg * ah[2][u]);
                hn[u] = T(nn + z * (A(hp[u]) - nn));
            }
        }
    });
}

template <typename T, bool Relu>
void rnn_step_kernel(const T* X, const T* HP, const T* WIH, const T* WHH, const T* BI, const T* BH, T* HN,
                     int64_t n, int64_t I, int64_t H, bool reverse) {
    using A = Acc<T>;
    const int64_t chunks = (H + STEP_CHUNK - 1) / STEP_CHUNK;
    for_each_chunk(chunks, reverse, [&](int64_t q) {
        const int64_t j0 = q * STEP_CHUNK, units = std::min(STEP_CHUNK, H - j0);
        for (int64_t r = 0; r < n; ++r) {
            A ax[1][STEP_CHUNK], ah[1][STEP_CHUNK];
            chunk_gates<T, 1>(WIH, WHH, BI, BH, X + r * I, HP + r * H, I, H, j0, units, ax, ah);
            T* hn = HN + r * H + j0;
            #pragma omp simd
            for (int64_t u = 0; u < units; ++u) {
                const A a = ax[0][u] + ah[0][u];
                hn[u] = T(Relu ? (a > A(0) ? a : A(0)) : tanh_(a));
            }
        }
    });
}

// x (n, I); h_prev (n, H); c_prev (n, H) or empty (LSTM only); w_ih (G*H, I); w_hh (G*H, H);
// b_ih, b_hh (G*H) or empty -> h_next (n, H); c_next (n, H) (LSTM only, else empty).
void step_plain(int64_t cell, torch::Tensor x, torch::Tensor h_prev, torch::Tensor c_prev, torch::Tensor w_ih,
                torch::Tensor w_hh, torch::Tensor b_ih, torch::Tensor b_hh, torch::Tensor h_next,
                torch::Tensor c_next, bool reverse) {
    check(x, "x"); check(h_prev, "h_prev"); check(w_ih, "w_ih"); check(w_hh, "w_hh"); check(h_next, "h_next");
    const int64_t n = x.size(0), I = x.size(1), H = h_prev.size(1);
    const int64_t G = cell == LSTM ? 4 : cell == GRU ? 3 : 1;
    TORCH_CHECK(w_ih.size(0) == G * H && w_ih.size(1) == I && w_hh.size(0) == G * H && w_hh.size(1) == H
                && h_prev.size(0) == n && h_next.size(0) == n && h_next.size(1) == H,
                "step_plain: shapes do not match");
    TORCH_CHECK(b_ih.numel() == 0 || b_ih.numel() == G * H, "step_plain: b_ih shape");
    TORCH_CHECK(b_hh.numel() == 0 || b_hh.numel() == G * H, "step_plain: b_hh shape");
    if (cell == LSTM) {
        check(c_prev, "c_prev"); check(c_next, "c_next");
        TORCH_CHECK(c_prev.sizes() == h_prev.sizes() && c_next.sizes() == h_prev.sizes(), "step_plain: c shape");
    }
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "step_plain", [&] {
        const scalar_t* X = x.data_ptr<scalar_t>();
        const scalar_t* HP = h_prev.data_ptr<scalar_t>();
        const scalar_t* WI = w_ih.data_ptr<scalar_t>();
        const scalar_t* WH = w_hh.data_ptr<scalar_t>();
        const scalar_t* BI = b_ih.numel() ? b_ih.data_ptr<scalar_t>() : nullptr;
        const scalar_t* BH = b_hh.numel() ? b_hh.data_ptr<scalar_t>() : nullptr;
        scalar_t* HN = h_next.data_ptr<scalar_t>();
        if (cell == LSTM) {
            lstm_step_kernel<scalar_t>(X, HP, c_prev.data_ptr<scalar_t>(), WI, WH, BI, BH, HN,
                                       c_next.data_ptr<scalar_t>(), n, I, H, reverse);
        } else if (cell == GRU) {
            gru_step_kernel<scalar_t>(X, HP, WI, WH, BI, BH, HN, n, I, H, reverse);
        } else if (cell == RNN_RELU) {
            rnn_step_kernel<scalar_t, true>(X, HP, WI, WH, BI, BH, HN, n, I, H, reverse);
        } else {
            rnn_step_kernel<scalar_t, false>(X, HP, WI, WH, BI, BH, HN, n, I, H, reverse);
        }
    });
}

// Whether the next streaming step walks the weights downwards: the answer alternates from one call
// to the next (see for_each_chunk). RNNKIT_STEP_ZIGZAG=0 walks them upwards at every step.
bool next_step_reversed() {
    static std::atomic<uint64_t> steps_taken{0};
    static const bool zigzag = !switched_off("RNNKIT_STEP_ZIGZAG");
    return zigzag && (steps_taken.fetch_add(1, std::memory_order_relaxed) & 1);
}

// The whole stack at one step: layer l reads layer l-1's new h. x (n, I); h0 (L, n, H); c0 (L, n, H)
// or empty (LSTM only); weights: per layer [w_ih, w_hh, b_ih, b_hh] (biases may be empty).
// Returns (y, h_n, c_n): a copy of the top layer's new h (n, H), the new states like h0 and c0.
std::vector<torch::Tensor> step_stack(int64_t cell, torch::Tensor x, torch::Tensor h0, torch::Tensor c0,
                                      std::vector<torch::Tensor> weights) {
    const int64_t L = h0.size(0);
    TORCH_CHECK(static_cast<int64_t>(weights.size()) == 4 * L, "step_stack: 4 weights per layer");
    const bool lstm = cell == LSTM;
    h0 = h0.contiguous();
    if (lstm) c0 = c0.contiguous();
    torch::Tensor h_n = torch::empty_like(h0), c_n = lstm ? torch::empty_like(c0) : c0;
    torch::Tensor input = x.contiguous();
    const bool reverse = next_step_reversed();       // every layer of this step walks the same way
    for (int64_t l = 0; l < L; ++l) {
        torch::Tensor h_next = h_n[l];
        step_plain(cell, input, h0[l], lstm ? c0[l] : c0, weights[4 * l].contiguous(),
                   weights[4 * l + 1].contiguous(), weights[4 * l + 2].contiguous(), weights[4 * l + 3].contiguous(),
                   h_next, lstm ? c_n[l] : c_n, reverse);
        input = h_next;
    }
    return {input.clone(), h_n, c_n};
}

// One step of LSTMCell / GRUCell with its gradients: scan_forward and scan_backward run
// for T = 1 around the input projection and the weight-gradient GEMMs, as one autograd node, so a
// model unrolled in Python (pytorch/examples' time_sequence_prediction) pays one call per cell
// per step and no Python in the backward pass, as with torch.nn's cells.
//   x (B, I), w_ih (G*H, I), w_hh (G*H, H), b_ih and b_hh (G*H) or both empty (no bias),
//   h (B, H), c (B, H) or empty (not an LSTM) -> h' (B, H), c' (B, H) or empty.
class CellStep : public torch::autograd::Function<CellStep> {
  public:
    static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, int64_t cell,
                                                  torch::Tensor x, torch::Tensor w_ih, torch::Tensor w_hh,
                                                  torch::Tensor b_ih, torch::Tensor b_hh, torch::Tensor h,
                                                  torch::Tensor c) {
        const bool lstm = cell == LSTM, gru = cell == GRU;
        const int64_t B = x.size(0), H = w_hh.size(1), GH = w_hh.size(0);
        const int64_t saved = lstm ? 5 : gru ? 4 : 0;   // the gate kernels' act widths / H; the RNN re-reads h'
        x = x.contiguous();
        torch::Tensor empty = x.new_empty({0});
        // the GRU adds b_hh inside r * (.), the others take both biases summed in the projection
        torch::Tensor bias = b_ih.numel() == 0 ? b_ih : gru ? b_ih : b_ih + b_hh;
        torch::Tensor gx = bias.numel() > 0 ? at::addmm(bias, x, w_ih.t()) : at::mm(x, w_ih.t());   // (B, G*H)
        torch::Tensor states_h = x.new_empty({2, B, H});
        states_h[0].copy_(h);
        torch::Tensor states_c = lstm ? x.new_empty({2, B, H}) : empty;
        if (lstm) states_c[0].copy_(c);
        torch::Tensor act = x.new_empty({1, B, saved * H});
        scan_forward(cell, gx.unsqueeze(0), empty, w_hh.contiguous(), gru && b_hh.numel() > 0 ? b_hh : empty,
                     states_h, states_c, act, x.new_empty({B, GH}), {B}, false, true);
        ctx->save_for_backward({x, w_ih, w_hh, states_h, states_c, act});
        ctx->saved_data["cell"] = cell;
        ctx->saved_data["bias"] = b_ih.numel() > 0;
        return {states_h[1].clone(), lstm ? states_c[1].clone() : x.new_empty({0})};   // not a saved tensor
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        // the kernels compute these gradients outside autograd: a graph of them would be wrong
        TORCH_CHECK(!at::GradMode::is_enabled(), "rnnkit cells: gradients of gradients (create_graph=True) are not "
                    "supported; use torch.nn's cells for higher-order gradients");
        const auto saved = ctx->get_saved_variables();
        const torch::Tensor &x = saved[0], &w_ih = saved[1], &w_hh = saved[2], &states_h = saved[3],
                            &states_c = saved[4], &act = saved[5];
        const int64_t cell = ctx->saved_data["cell"].toInt();
        const bool bias = ctx->saved_data["bias"].toBool(), lstm = cell == LSTM, gru = cell == GRU;
        const int64_t B = x.size(0), H = w_hh.size(1);
        torch::Tensor empty = x.new_empty({0});
        torch::Tensor dh = x.new_zeros({B, H});               // in: nothing after the step; out: dL/dh
        torch::Tensor d_output = grads[0].defined() ? grads[0].contiguous().unsqueeze(0) : x.new_zeros({1, B, H});
        torch::Tensor dc = !lstm ? empty : grads[1].defined() ? grads[1].clone(at::MemoryFormat::Contiguous)
                                                               : x.new_zeros({B, H});
        torch::Tensor d_gx = x.new_empty({1, B, w_hh.size(0)});
        torch::Tensor d_gh_n = gru ? x.new_empty({1, B, H}) : empty;        // the GRU's n block of d(gh)
        scan_backward(cell, w_hh.contiguous(), states_h, states_c, act, d_output, dh, dc, d_gx, d_gh_n, {B}, false);
        torch::Tensor g = d_gx[0];                                                          // (B, G*H)
        torch::Tensor d_gh = gru ? at::cat({g.slice(1, 0, 2 * H), d_gh_n[0]}, 1) : g;
        // needs_input_grad counts the tensor inputs only: x is 0, ..., c is 6 (the returned list
        // has one entry per argument, an undefined one for `cell`)
        torch::Tensor none;
        torch::Tensor d_b_ih = bias && ctx->needs_input_grad(3) ? g.sum(0) : none;
        torch::Tensor d_b_hh = bias && ctx->needs_input_grad(4) ? d_gh.sum(0) : none;
        return {none,
                ctx->needs_input_grad(0) ? at::mm(g, w_ih) : none,
                ctx->needs_input_grad(1) ? at::mm(g.t(), x) : none,
                ctx->needs_input_grad(2) ? at::mm(d_gh.t(), states_h[0]) : none,
                d_b_ih, d_b_hh,
                ctx->needs_input_grad(5) ? dh : none,
                lstm && ctx->needs_input_grad(6) ? dc : none};
    }
};

// One step of RNNCell with its gradient, as one autograd node. The Elman step is too short for the
// loop's kernels to pay for their buffers, so it is written out: h' = f(x W_ih^T + b_ih + h W_hh^T
// + b_hh) in one buffer, f applied in place; backward: g = dh' f'(h'), then the four GEMMs.
//   x (B, I), w_ih (H, I), w_hh (H, H), b_ih and b_hh (H) or both empty, h (B, H) -> h' (B, H).
class RnnCellStep : public torch::autograd::Function<RnnCellStep> {
  public:
    static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, int64_t cell,
                                                  torch::Tensor x, torch::Tensor w_ih, torch::Tensor w_hh,
                                                  torch::Tensor b_ih, torch::Tensor b_hh, torch::Tensor h) {
        const bool bias = b_ih.numel() > 0;
        torch::Tensor a = bias ? at::addmm(b_ih, x, w_ih.t()) : at::mm(x, w_ih.t());      // (B, H)
        a.addmm_(h, w_hh.t());
        if (bias) a.add_(b_hh);
        if (cell == RNN_RELU) a.relu_(); else a.tanh_();
        ctx->save_for_backward({x, w_ih, w_hh, h, a});
        ctx->saved_data["cell"] = cell;
        ctx->saved_data["bias"] = bias;
        return {a};
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        TORCH_CHECK(!at::GradMode::is_enabled(), "rnnkit cells: gradients of gradients (create_graph=True) are not "
                    "supported; use torch.nn's cells for higher-order gradients");
        const auto saved = ctx->get_saved_variables();
        const torch::Tensor &x = saved[0], &w_ih = saved[1], &w_hh = saved[2], &h = saved[3], &out = saved[4];
        const bool bias = ctx->saved_data["bias"].toBool();
        torch::Tensor g = ctx->saved_data["cell"].toInt() == RNN_RELU ? grads[0] * (out > 0)
                                                                     : at::tanh_backward(grads[0], out);    // (B, H)
        torch::Tensor none;
        torch::Tensor d_b_ih = bias && ctx->needs_input_grad(3) ? g.sum(0) : none;
        torch::Tensor d_b_hh = bias && ctx->needs_input_grad(4) ? g.sum(0) : none;   // its own tensor: two .grads
        return {none,
                ctx->needs_input_grad(0) ? at::mm(g, w_ih) : none,
                ctx->needs_input_grad(1) ? at::mm(g.t(), x) : none,
                ctx->needs_input_grad(2) ? at::mm(g.t(), h) : none,
                d_b_ih, d_b_hh,
                ctx->needs_input_grad(5) ? at::mm(g, w_hh) : none};
    }
};

// Rows up to which a step without a graph runs the fused streaming step (as layers.FUSED_STEP_ROWS);
// past them BLAS's GEMMs are faster.
constexpr int64_t FUSED_STEP_ROWS = 8;

// A cell's step: checked (the Python module names what is wrong when this refuses), then up to
// FUSED_STEP_ROWS rows without a graph the layers' fused streaming step; otherwise the RnnCellStep
// or CellStep node (which records no graph when none is needed).
std::vector<torch::Tensor> cell_step(int64_t cell, torch::Tensor x, torch::Tensor w_ih, torch::Tensor w_hh,
                                     torch::Tensor b_ih, torch::Tensor b_hh, torch::Tensor h, torch::Tensor c) {
    const bool lstm = cell == LSTM;
    TORCH_CHECK(x.dim() == 2 && x.size(1) == w_ih.size(1) && x.scalar_type() == w_ih.scalar_type(),
                "cell_step: x must be (B, input_size) of the weights' dtype");
    TORCH_CHECK(h.dim() == 2 && h.size(0) == x.size(0) && h.size(1) == w_hh.size(1)
                && h.scalar_type() == x.scalar_type(), "cell_step: h must be (B, hidden_size) of x's dtype");
    TORCH_CHECK(!lstm || (c.sizes() == h.sizes() && c.scalar_type() == x.scalar_type()),
                "cell_step: c must be shaped as h");
    const bool graph = at::GradMode::is_enabled()
        && (x.requires_grad() || w_ih.requires_grad() || w_hh.requires_grad() || b_ih.requires_grad()
            || b_hh.requires_grad() || h.requires_grad() || (lstm && c.requires_grad()));
    if (!graph && x.size(0) <= FUSED_STEP_ROWS) {
        torch::Tensor empty = x.new_empty({0});
        torch::Tensor h_next = at::empty_like(h, at::MemoryFormat::Contiguous);
        torch::Tensor c_next = lstm ? at::empty_like(c, at::MemoryFormat::Contiguous) : empty;
        step_plain(cell, x.contiguous(), h.contiguous(), lstm ? c.contiguous() : empty, w_ih.contiguous(),
                   w_hh.contiguous(), b_ih, b_hh, h_next, c_next, next_step_reversed());
        return {h_next, c_next};
    }
    if (cell == RNN_TANH || cell == RNN_RELU) return {RnnCellStep::apply(cell, x, w_ih, w_hh, b_ih, b_hh, h)[0], c};
    auto out = CellStep::apply(cell, x, w_ih, w_hh, b_ih, b_hh, h, c);
    return {out[0], out[1]};
}

}  // namespace

// Denormals flushed to zero (on) or not, on the calling thread and on each intra-op (OpenMP)
// thread, MKL's among them: the flag lives in each thread's MXCSR, and torch.set_flush_denormal
// sets the caller's alone, leaving the workers' share of a GEMM on denormals several times slower.
// Returns whether this CPU can flush them.
bool set_flush_denormal(bool on) {
    const bool able = at::globalContext().setFlushDenormal(on);
#ifdef _OPENMP
    const int threads = at::get_num_threads();
#pragma omp parallel num_threads(threads)
    at::globalContext().setFlushDenormal(on);
#endif
    return able;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("lstm_forward", &lstm_forward);
    m.def("lstm_backward", &lstm_backward);
    m.def("gru_forward", &gru_forward);
    m.def("gru_backward", &gru_backward);
    m.def("rnn_forward", &rnn_forward);
    m.def("rnn_backward", &rnn_backward);
    m.def("small_linear", &small_linear);
    m.def("step_stack", &step_stack);
    m.def("scan_forward", &scan_forward);
    m.def("layer_norm_forward", &layer_norm_forward);
    m.def("layer_norm_backward", &layer_norm_backward);
    m.def("scan_backward", &scan_backward);
    m.def("cell_step", &cell_step);
    m.attr("FUSED_STEP_ROWS") = FUSED_STEP_ROWS;
    m.def("set_flush_denormal", &set_flush_denormal,
          "flush denormals to zero (or not) on this thread and on every intra-op thread");
    m.def("packed_gemm_available", [] { return MklPackedGemm::get().compute != nullptr; },
          "whether the time loop packs its recurrent weight for MKL (else it calls at::mm each step)");
}
