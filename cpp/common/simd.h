// The one SIMD header: fixed-width vector types, their load/store and lane helpers, and the
// function multiversioning macro. Kernels write element-wise code on these types once; the
// compiler picks the instructions.
//
// - GCC and clang: the types are vector extensions, lowered to the widest registers of each
//   target (SSE2 by default on x86-64, AVX2 inside a TREELENS_CLONES function, NEON on arm64).
// - Elsewhere (MSVC), or with TREELENS_SCALAR_SIMD defined: a portable scalar fallback, plain
//   arrays with the same element-wise operators, computing every lane with the same IEEE
//   operation in the same order, so results are identical and only the speed differs.
//
// Both provide: + - * (also with a scalar on either side), unary -, & | ^ ~ >> on integer
// lanes, comparisons giving a mask (all-ones or zero integer lanes of the same width), lane
// indexing, brace initialisation, and the helpers below (Splat, Load, Store, BitCast,
// Convert, Select, Join). Kernels use nothing else, so every compiler builds them.
#pragma once

#include <bitset>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(_MSC_VER) && !defined(__clang__)
#define TREELENS_INLINE __forceinline
#else
#define TREELENS_INLINE __attribute__((always_inline)) inline
#endif

#if !defined(TREELENS_SCALAR_SIMD) && (defined(__GNUC__) || defined(__clang__))
#define TREELENS_VECTOR_EXTENSIONS 1
#else
#define TREELENS_VECTOR_EXTENSIONS 0
#endif

// Function multiversioning: TREELENS_CLONES before a kernel's definition compiles it for AVX2
// and for the baseline, and the loader picks one through an ifunc at load time. ifunc exists
// only with glibc on x86-64 ELF (not musl, macOS or Windows); elsewhere the macro is empty
// and the kernel is built once for the baseline. GCC only: clang checks the vector ABI of each
// call inside a clone before inlining, and rejects the 32-byte vectors the inline helpers
// return to the baseline clone.
#if TREELENS_VECTOR_EXTENSIONS && defined(__GNUC__) && !defined(__clang__) && \
    defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define TREELENS_HAS_CLONES 1
#endif
#endif
#ifdef TREELENS_HAS_CLONES
#define TREELENS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TREELENS_HAS_CLONES 0
#define TREELENS_CLONES
#endif

// Join of two vectors: one shuffle where the compiler has it (clang, GCC 12+).
#if TREELENS_VECTOR_EXTENSIONS && defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define TREELENS_HAS_SHUFFLE 1
#endif
#endif

// Vectors pass by value between inlined helpers of one translation unit only, never across an
// ABI boundary, so the note that 32-byte vector arguments change the ABI does not apply.
#if TREELENS_VECTOR_EXTENSIONS && defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif TREELENS_VECTOR_EXTENSIONS && defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace treelens {
namespace simd {

// The integer lane type of a mask for lanes of type T (same width, signed).
template <typename T>
using MaskLane = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;

#if TREELENS_VECTOR_EXTENSIONS

template <typename T, int N>
struct VecOf {
  static constexpr int kAlign = N * sizeof(T) < 16 ? static_cast<int>(N * sizeof(T)) : 16;
  typedef T type __attribute__((vector_size(N * sizeof(T)), aligned(kAlign)));
};

// N lanes of T. At most 16-byte alignment is claimed: buffers from the default allocator have it,
// and all loads and stores of unaligned memory go through Load / Store.
template <typename T, int N>
using Vec = typename VecOf<T, N>::type;

#else

template <typename T, int N>
struct Vec {
  T lane[N];
  TREELENS_INLINE T& operator[](int i) { return lane[i]; }
  TREELENS_INLINE const T& operator[](int i) const { return lane[i]; }
};

template <typename T>
struct IsVec : std::false_type {};
template <typename T, int N>
struct IsVec<Vec<T, N>> : std::true_type {};
template <typename S>
using IfScalar = std::enable_if_t<std::is_arithmetic<S>::value, int>;

#define TREELENS_SIMD_BINARY(op)                                                         \
  template <typename T, int N>                                                           \
  TREELENS_INLINE Vec<T, N> operator op(const Vec<T, N>& a, const Vec<T, N>& b) {        \
    Vec<T, N> r;                                                                         \
    for (int i = 0; i < N; ++i) r[i] = static_cast<T>(a[i] op b[i]);                    \
    return r;                                                                            \
  }                                                                                      \
  template <typename T, int N, typename S, IfScalar<S> = 0>                              \
  TREELENS_INLINE Vec<T, N> operator op(const Vec<T, N>& a, S s) {                       \
    Vec<T, N> r;                                                                         \
    for (int i = 0; i < N; ++i) r[i] = static_cast<T>(a[i] op static_cast<T>(s));       \
    return r;                                                                            \
  }                                                                                      \
  template <typename T, int N, typename S, IfScalar<S> = 0>                              \
  TREELENS_INLINE Vec<T, N> operator op(S s, const Vec<T, N>& b) {                       \
    Vec<T, N> r;                                                                         \
    for (int i = 0; i < N; ++i) r[i] = static_cast<T>(static_cast<T>(s) op b[i]);       \
    return r;                                                                            \
  }                                                                                      \
  template <typename T, int N, typename B>                                               \
  TREELENS_INLINE Vec<T, N>& operator op##=(Vec<T, N>& a, const B& b) {                  \
    return a = a op b;                                                                   \
  }

TREELENS_SIMD_BINARY(+)
TREELENS_SIMD_BINARY(-)
TREELENS_SIMD_BINARY(*)
TREELENS_SIMD_BINARY(&)
TREELENS_SIMD_BINARY(|)
TREELENS_SIMD_BINARY(^)
TREELENS_SIMD_BINARY(>>)
TREELENS_SIMD_BINARY(<<)
#undef TREELENS_SIMD_BINARY

#define TREELENS_SIMD_COMPARE(op)                                                        \
  template <typename T, int N>                                                           \
  TREELENS_INLINE Vec<MaskLane<T>, N> operator op(const Vec<T, N>& a, const Vec<T, N>& b) { \
    Vec<MaskLane<T>, N> r;                                                               \
    for (int i = 0; i < N; ++i) r[i] = a[i] op b[i] ? -1 : 0;                           \
    return r;                                                                            \
  }                                                                                      \
  template <typename T, int N, typename S, IfScalar<S> = 0>                              \
  TREELENS_INLINE Vec<MaskLane<T>, N> operator op(const Vec<T, N>& a, S s) {             \
    Vec<MaskLane<T>, N> r;                                                               \
    for (int i = 0; i < N; ++i) r[i] = a[i] op static_cast<T>(s) ? -1 : 0;              \
    return r;                                                                            \
  }

TREELENS_SIMD_COMPARE(<)
TREELENS_SIMD_COMPARE(<=)
TREELENS_SIMD_COMPARE(>)
TREELENS_SIMD_COMPARE(>=)
TREELENS_SIMD_COMPARE(==)
TREELENS_SIMD_COMPARE(!=)
#undef TREELENS_SIMD_COMPARE

template <typename T, int N>
TREELENS_INLINE Vec<T, N> operator-(const Vec<T, N>& a) {
  Vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = -a[i];
  return r;
}

template <typename T, int N>
TREELENS_INLINE Vec<T, N> operator~(const Vec<T, N>& a) {
  Vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = static_cast<T>(~a[i]);
  return r;
}

#endif  // TREELENS_VECTOR_EXTENSIONS

// K vectors of type V used as one vector of K times the lanes: every operation applies to the
// parts in turn. Wider than the registers, the compilers' own vectors lower comparisons and
// selects lane by lane; this keeps each part in a register of the target.
template <typename V, int K>
struct Multi {
  V part[K];
  TREELENS_INLINE auto& operator[](int i) {
    return reinterpret_cast<std::remove_reference_t<decltype(part[0][0])>*>(part)[i];
  }
  TREELENS_INLINE const auto& operator[](int i) const {
    return reinterpret_cast<const std::remove_reference_t<decltype(part[0][0])>*>(part)[i];
  }
};

#define TREELENS_MULTI_BINARY(op)                                                        \
  template <typename V, int K>                                                           \
  TREELENS_INLINE auto operator op(const Multi<V, K>& a, const Multi<V, K>& b) {         \
    Multi<decltype(a.part[0] op b.part[0]), K> r;                                        \
    for (int k = 0; k < K; ++k) r.part[k] = a.part[k] op b.part[k];                      \
    return r;                                                                            \
  }                                                                                      \
  template <typename V, int K, typename S,                                               \
            std::enable_if_t<std::is_arithmetic<S>::value, int> = 0>                     \
  TREELENS_INLINE auto operator op(const Multi<V, K>& a, S s) {                          \
    Multi<decltype(a.part[0] op s), K> r;                                                \
    for (int k = 0; k < K; ++k) r.part[k] = a.part[k] op s;                              \
    return r;                                                                            \
  }                                                                                      \
  template <typename V, int K, typename S,                                               \
            std::enable_if_t<std::is_arithmetic<S>::value, int> = 0>                     \
  TREELENS_INLINE auto operator op(S s, const Multi<V, K>& b) {                          \
    Multi<decltype(s op b.part[0]), K> r;                                                \
    for (int k = 0; k < K; ++k) r.part[k] = s op b.part[k];                              \
    return r;                                                                            \
  }

TREELENS_MULTI_BINARY(+)
TREELENS_MULTI_BINARY(-)
TREELENS_MULTI_BINARY(*)
TREELENS_MULTI_BINARY(&)
TREELENS_MULTI_BINARY(|)
TREELENS_MULTI_BINARY(<)
TREELENS_MULTI_BINARY(==)
TREELENS_MULTI_BINARY(!=)
#undef TREELENS_MULTI_BINARY

template <typename V, int K, typename B>
TREELENS_INLINE Multi<V, K>& operator+=(Multi<V, K>& a, const B& b) {
  return a = a + b;
}
template <typename V, int K, typename B>
TREELENS_INLINE Multi<V, K>& operator|=(Multi<V, K>& a, const B& b) {
  return a = a | b;
}

template <typename V, int K>
TREELENS_INLINE Multi<V, K> operator~(const Multi<V, K>& a) {
  Multi<V, K> r;
  for (int k = 0; k < K; ++k) r.part[k] = ~a.part[k];
  return r;
}

// Lane type and lane count of a vector type.
template <typename V>
using LaneOf = std::remove_cv_t<std::remove_reference_t<decltype(std::declval<V&>()[0])>>;
template <typename V>
constexpr int kLanesOf = static_cast<int>(sizeof(V) / sizeof(LaneOf<V>));

// Every lane s. Computed as s - 0, which is s for every value (0 + s would turn -0 into +0),
// so the compiler emits a plain broadcast.
template <typename V>
TREELENS_INLINE V Splat(LaneOf<V> s) {
  return s - V{};
}

// Unaligned load and store.
template <typename V>
TREELENS_INLINE V Load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
TREELENS_INLINE void Store(void* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// The same bits as another vector type of the same size.
template <typename To, typename From>
TREELENS_INLINE To BitCast(From v) {
  static_assert(sizeof(To) == sizeof(From), "BitCast between vectors of one size");
#if TREELENS_VECTOR_EXTENSIONS
  return reinterpret_cast<To>(v);
#else
  To r;
  std::memcpy(&r, &v, sizeof(To));
  return r;
#endif
}

// Each lane converted to the lane type of To (same lane count), as static_cast does.
template <typename To, typename From>
TREELENS_INLINE To Convert(From v) {
  static_assert(kLanesOf<To> == kLanesOf<From>, "Convert keeps the lane count");
#if TREELENS_VECTOR_EXTENSIONS
  return __builtin_convertvector(v, To);
#else
  To r;
  for (int i = 0; i < kLanesOf<To>; ++i) r[i] = static_cast<LaneOf<To>>(v[i]);
  return r;
#endif
}

// a where the mask is set, b elsewhere (mask lanes as wide as the value lanes).
template <typename M, typename V>
TREELENS_INLINE V Select(M mask, V a, V b) {
  static_assert(sizeof(M) == sizeof(V), "Select takes a mask of the value's width");
#if TREELENS_VECTOR_EXTENSIONS
  return mask ? a : b;
#else
  V r;
  for (int i = 0; i < kLanesOf<V>; ++i) r[i] = mask[i] ? a[i] : b[i];
  return r;
#endif
}

template <typename M, typename V, int K>
TREELENS_INLINE Multi<V, K> Select(const Multi<M, K>& mask, const Multi<V, K>& a,
                                   const Multi<V, K>& b) {
  Multi<V, K> r;
  for (int k = 0; k < K; ++k) r.part[k] = Select(mask.part[k], a.part[k], b.part[k]);
  return r;
}

template <typename To, typename From, int K>
TREELENS_INLINE Multi<To, K> BitCastParts(const Multi<From, K>& v) {
  Multi<To, K> r;
  for (int k = 0; k < K; ++k) r.part[k] = BitCast<To>(v.part[k]);
  return r;
}

// The lanes of lo followed by the lanes of hi, as one vector of twice the lanes.
template <typename V>
TREELENS_INLINE Vec<LaneOf<V>, 2 * kLanesOf<V>> Join(V lo, V hi) {
#ifdef TREELENS_HAS_SHUFFLE
  static_assert(kLanesOf<V> == 4, "Join shuffles four-lane halves");
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7);
#else
  Vec<LaneOf<V>, 2 * kLanesOf<V>> r;
  std::memcpy(&r, &lo, sizeof(V));
  std::memcpy(reinterpret_cast<char*>(&r) + sizeof(V), &hi, sizeof(V));
  return r;
#endif
}

// The instruction set the baseline code is compiled for.
#if defined(__AVX512F__)
constexpr const char* kBaselineTarget = "avx512f";
#elif defined(__AVX2__)
constexpr const char* kBaselineTarget = "avx2";
#elif defined(__AVX__)
constexpr const char* kBaselineTarget = "avx";
#elif defined(__SSE2__) || defined(_M_X64)
constexpr const char* kBaselineTarget = "sse2";
#elif defined(__ARM_NEON) || defined(_M_ARM64)
constexpr const char* kBaselineTarget = "neon";
#else
constexpr const char* kBaselineTarget = "generic";
#endif

// The code path of the TREELENS_CLONES kernels that this CPU runs: the one the ifunc
// resolver picks ("avx2" where the CPU has it), else the baseline.
inline const char* SelectedTarget() {
#if TREELENS_HAS_CLONES
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
  return kBaselineTarget;
}

// Scalar bit helpers.
TREELENS_INLINE int PopCount(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(x);
#else
  return static_cast<int>(std::bitset<64>(x).count());
#endif
}

// Index of the lowest set bit of x != 0.
TREELENS_INLINE int CountTrailingZeros(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctzll(x);
#else
  return PopCount((x & (0 - x)) - 1);
#endif
}

}  // namespace simd
}  // namespace treelens
