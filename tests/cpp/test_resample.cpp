// resample_trajectories on the CPU (and on CUDA where built and a GPU is present) against a float64
// plain-loop reference written independently of the library's search code.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "robocache/robocache.h"

#ifdef ROBOCACHE_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace rc = robocache;

namespace {

// Reference: a linear scan for the bracketing samples, all in float64.
double reference(const std::vector<double>& st, const std::vector<double>& sv, int64_t len, double t,
                 rc::InterpMethod m, rc::Boundary bd) {
  const double first = st[0], last = st[len - 1];
  if (t < first || t > last) {
    if (bd == rc::Boundary::Nan) return std::numeric_limits<double>::quiet_NaN();
    const bool below = t < first;
    if (bd == rc::Boundary::Extrapolate && m == rc::InterpMethod::Linear) {
      int64_t lo = -1, hi = -1;
      if (below) {
        for (int64_t i = 0; i < len; ++i) if (st[i] == first) lo = i;
        hi = lo + 1 < len ? lo + 1 : -1;
      } else {
        hi = len - 1;
        for (int64_t i = 0; i < len; ++i) if (st[i] < last) lo = i;
      }
      if (lo >= 0 && hi >= 0) return sv[lo] + (t - st[lo]) / (st[hi] - st[lo]) * (sv[hi] - sv[lo]);
    }
    return below ? sv[0] : sv[len - 1];
  }
  int64_t k = 0;  // last sample with time <= t
  for (int64_t i = 0; i < len; ++i) if (st[i] <= t) k = i;
  if (k == len - 1 || m == rc::InterpMethod::Hold) return sv[k];
  if (m == rc::InterpMethod::Nearest) return (st[k + 1] - t <= t - st[k]) ? sv[k + 1] : sv[k];
  return sv[k] + (t - st[k]) / (st[k + 1] - st[k]) * (sv[k + 1] - sv[k]);
}

struct Problem {
  int64_t B, S, T, D;
  std::vector<double> src_t, tgt_t, data;
  std::vector<int64_t> lengths;
};

Problem make_problem(int64_t B, int64_t S, int64_t T, int64_t D, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Problem p{B, S, T, D, {}, {}, {}, {}};
  for (int64_t b = 0; b < B; ++b) {
    double t = u(rng);
    for (int64_t s = 0; s < S; ++s) {
      p.src_t.push_back(t);
      const double r = u(rng);
      t += r < 0.1 ? 0.0 : (r < 0.2 ? 2.0 * u(rng) : 0.01 + 0.05 * u(rng));  // duplicates, gaps, jitter
    }
    const double span = p.src_t.back() - p.src_t[b * S];
    for (int64_t i = 0; i < T; ++i) p.tgt_t.push_back(p.src_t[b * S] - 0.2 * span + 1.4 * span * u(rng));
    p.lengths.push_back(1 + static_cast<int64_t>(u(rng) * S) % S);
  }
  for (int64_t i = 0; i < B * S * D; ++i) p.data.push_back(u(rng) * 20.0 - 10.0);
  return p;
}

void check_against_reference(const Problem& p, const std::vector<double>& out, const std::vector<bool>* used_len,
                             rc::InterpMethod m, rc::Boundary bd, double tol) {
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t len = used_len ? p.lengths[b] : p.S;
    std::vector<double> st(p.src_t.begin() + b * p.S, p.src_t.begin() + (b + 1) * p.S);
    for (int64_t d = 0; d < p.D; ++d) {
      std::vector<double> sv(p.S);
      for (int64_t s = 0; s < p.S; ++s) sv[s] = p.data[(b * p.S + s) * p.D + d];
      for (int64_t t = 0; t < p.T; ++t) {
        const double want = reference(st, sv, len, p.tgt_t[b * p.T + t], m, bd);
        const double got = out[(b * p.T + t) * p.D + d];
        if (std::isnan(want)) {
          ASSERT_TRUE(std::isnan(got)) << "b=" << b << " t=" << t << " d=" << d;
        } else {
          ASSERT_NEAR(got, want, tol * (1.0 + std::fabs(want))) << "b=" << b << " t=" << t << " d=" << d;
        }
      }
    }
  }
}

const rc::InterpMethod kMethods[] = {rc::InterpMethod::Linear, rc::InterpMethod::Nearest, rc::InterpMethod::Hold};
const rc::Boundary kBoundaries[] = {rc::Boundary::Clamp, rc::Boundary::Extrapolate, rc::Boundary::Nan};

}  // namespace

TEST(Resample, Float64AllMethodsAndBoundariesMatchReference) {
  for (auto [B, S, T, D] : {std::array<int64_t, 4>{1, 1, 19, 1}, {3, 19, 111, 7}, {5, 111, 19, 3}, {2, 989, 989, 2}}) {
    Problem p = make_problem(B, S, T, D, static_cast<uint32_t>(B * 1000 + S));
    std::vector<double> out(B * T * D, -1234.5);
    for (auto m : kMethods) {
      for (auto bd : kBoundaries) {
        rc::ResampleOptions opt;
        opt.method = m;
        opt.boundary = bd;
        auto data = rc::make_view(p.data.data(), rc::DType::Float64, {}, {B, S, D});
        auto st = rc::make_view(p.src_t.data(), rc::DType::Float64, {}, {B, S});
        auto tt = rc::make_view(p.tgt_t.data(), rc::DType::Float64, {}, {B, T});
        auto ov = rc::make_view(out.data(), rc::DType::Float64, {}, {B, T, D});
        ASSERT_TRUE(rc::resample_trajectories(data, st, tt, nullptr, ov, nullptr, opt).is_ok());
        check_against_reference(p, out, nullptr, m, bd, 1e-12);
        // Padded lengths: samples past each row's length are ignored.
        std::vector<bool> marker;
        auto lv = rc::make_view(p.lengths.data(), rc::DType::Int64, {}, {B});
        ASSERT_TRUE(rc::resample_trajectories(data, st, tt, &lv, ov, nullptr, opt).is_ok());
        check_against_reference(p, out, &marker, m, bd, 1e-12);
      }
    }
  }
}

TEST(Resample, Float32StridedDataMatchesReference) {
  const int64_t B = 4, S = 37, T = 23, D = 5;
  Problem p = make_problem(B, S, T, D, 7);
  // Store data as [B, D, S] float32 and view it transposed to [B, S, D].
  std::vector<float> store(B * D * S);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t d = 0; d < D; ++d) store[(b * D + d) * S + s] = static_cast<float>(p.data[(b * S + s) * p.D + d]);
  for (auto& v : p.data) v = static_cast<double>(static_cast<float>(v));
  std::vector<float> out(B * T * D);
  auto data = rc::make_view(store.data(), rc::DType::Float32, {}, {B, S, D}, {D * S, 1, S});
  auto st = rc::make_view(p.src_t.data(), rc::DType::Float64, {}, {B, S});
  auto tt = rc::make_view(p.tgt_t.data(), rc::DType::Float64, {}, {B, T});
  auto ov = rc::make_view(out.data(), rc::DType::Float32, {}, {B, T, D});
  ASSERT_TRUE(rc::resample_trajectories(data, st, tt, nullptr, ov, nullptr, {}).is_ok());
  std::vector<double> out64(out.begin(), out.end());
  check_against_reference(p, out64, nullptr, rc::InterpMethod::Linear, rc::Boundary::Clamp, 1e-5);
}

TEST(Resample, EpochNanosecondsKeepFullPrecision) {
  // 1 ms apart near 1.7e18 ns: float64 timestamps could not even tell the samples apart.
  const int64_t S = 50, T = 97;
  const int64_t t0 = 1'700'000'000'123'456'789;
  std::vector<int64_t> st(S), tt(T);
  std::vector<double> data(S);
  for (int64_t s = 0; s < S; ++s) {
    st[s] = t0 + s * 1'000'000;
    data[s] = std::sin(0.3 * static_cast<double>(s)) * 5.0;
  }
  for (int64_t i = 0; i < T; ++i) tt[i] = t0 + i * 487'313 + 17;
  std::vector<double> out(T);
  auto dv = rc::make_view(data.data(), rc::DType::Float64, {}, {S, 1});
  auto sv = rc::make_view(st.data(), rc::DType::Int64, {}, {S});
  auto tv = rc::make_view(tt.data(), rc::DType::Int64, {}, {T});
  auto ov = rc::make_view(out.data(), rc::DType::Float64, {}, {T, 1});
  ASSERT_TRUE(rc::resample_trajectories(dv, sv, tv, nullptr, ov, nullptr, {}).is_ok());
  for (int64_t i = 0; i < T; ++i) {
    const int64_t rel = tt[i] - t0;
    const int64_t k = std::min<int64_t>(rel / 1'000'000, S - 1);
    double want = data[k];
    if (k + 1 < S) want += static_cast<double>(rel - k * 1'000'000) / 1e6 * (data[k + 1] - data[k]);
    ASSERT_NEAR(out[i], want, 1e-12) << i;
  }
}

TEST(Resample, BadInputNamesTheArgument) {
  std::vector<double> d(12, 1.0), st = {0.0, 1.0, 0.5, 2.0}, tt = {0.2, 0.4}, out(6);
  auto dv = rc::make_view(d.data(), rc::DType::Float64, {}, {4, 3});
  auto sv = rc::make_view(st.data(), rc::DType::Float64, {}, {4});
  auto tv = rc::make_view(tt.data(), rc::DType::Float64, {}, {2});
  auto ov = rc::make_view(out.data(), rc::DType::Float64, {}, {2, 3});
  rc::Status s = rc::resample_trajectories(dv, sv, tv, nullptr, ov, nullptr, {});
  EXPECT_EQ(s.code(), rc::StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("src_t[2] = 0.5 < src_t[1] = 1"), std::string::npos) << s.message();

  st[2] = std::nan("");
  s = rc::resample_trajectories(dv, sv, tv, nullptr, ov, nullptr, {});
  EXPECT_NE(s.message().find("NaN"), std::string::npos) << s.message();

  auto short_t = rc::make_view(st.data(), rc::DType::Float64, {}, {3});
  s = rc::resample_trajectories(dv, short_t, tv, nullptr, ov, nullptr, {});
  EXPECT_NE(s.message().find("src_t must have 4 samples"), std::string::npos) << s.message();

  auto int_data = rc::make_view(d.data(), rc::DType::Int32, {}, {4, 3});
  s = rc::resample_trajectories(int_data, sv, tv, nullptr, ov, nullptr, {});
  EXPECT_EQ(s.code(), rc::StatusCode::TypeError);
  EXPECT_NE(s.message().find("int32"), std::string::npos) << s.message();

  rc::InterpMethod m;
  s = rc::parse_method("cubic", &m);
  EXPECT_NE(s.message().find("'slerp', got 'cubic'"), std::string::npos) << s.message();
}

TEST(TensorView, MakeViewRejectsMismatchedStrides) {
  float x[6];
  EXPECT_THROW(rc::make_view(x, rc::DType::Float32, {}, {2, 3}, {3}), std::invalid_argument);
  const auto v = rc::make_view(x, rc::DType::Float32, {}, {2, 3});
  EXPECT_EQ(v.strides[0], 3);
  EXPECT_EQ(v.strides[1], 1);
}

TEST(ThreadPool, SetNumThreadsIsReported) {
  const int before = rc::get_num_threads();
  rc::set_num_threads(3);
  EXPECT_EQ(rc::get_num_threads(), 3);
  EXPECT_EQ(rc::build_info().num_threads, 3);
  rc::set_num_threads(before);
}

#ifdef ROBOCACHE_WITH_CUDA
TEST(ResampleCuda, MatchesCpu) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) GTEST_SKIP() << "no CUDA device";
  const int64_t B = 3, S = 111, T = 989, D = 8;
  Problem p = make_problem(B, S, T, D, 11);
  std::vector<float> data(p.data.begin(), p.data.end()), cpu(B * T * D), gpu(B * T * D);
  void *d_data, *d_st, *d_tt, *d_out;
  ASSERT_EQ(cudaMalloc(&d_data, data.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_st, p.src_t.size() * 8), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_tt, p.tgt_t.size() * 8), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_out, gpu.size() * 4), cudaSuccess);
  cudaMemcpy(d_data, data.data(), data.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(d_st, p.src_t.data(), p.src_t.size() * 8, cudaMemcpyHostToDevice);
  cudaMemcpy(d_tt, p.tgt_t.data(), p.tgt_t.size() * 8, cudaMemcpyHostToDevice);
  const rc::Device cuda{rc::DeviceType::CUDA, 0};
  for (auto m : kMethods) {
    for (auto bd : kBoundaries) {
      rc::ResampleOptions opt;
      opt.method = m;
      opt.boundary = bd;
      ASSERT_TRUE(rc::resample_trajectories(rc::make_view(data.data(), rc::DType::Float32, {}, {B, S, D}),
                                            rc::make_view(p.src_t.data(), rc::DType::Float64, {}, {B, S}),
                                            rc::make_view(p.tgt_t.data(), rc::DType::Float64, {}, {B, T}), nullptr,
                                            rc::make_view(cpu.data(), rc::DType::Float32, {}, {B, T, D}), nullptr, opt)
                      .is_ok());
      rc::Status s = rc::resample_trajectories(rc::make_view(d_data, rc::DType::Float32, cuda, {B, S, D}),
                                               rc::make_view(d_st, rc::DType::Float64, cuda, {B, S}),
                                               rc::make_view(d_tt, rc::DType::Float64, cuda, {B, T}), nullptr,
                                               rc::make_view(d_out, rc::DType::Float32, cuda, {B, T, D}), nullptr, opt);
      ASSERT_TRUE(s.is_ok()) << s.message();
      ASSERT_EQ(cudaMemcpy(gpu.data(), d_out, gpu.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      for (size_t i = 0; i < cpu.size(); ++i) {
        if (std::isnan(cpu[i])) {
          ASSERT_TRUE(std::isnan(gpu[i])) << i;
        } else {
          ASSERT_NEAR(gpu[i], cpu[i], 1e-5f * (1.0f + std::fabs(cpu[i]))) << i;
        }
      }
    }
  }
  cudaFree(d_data);
  cudaFree(d_st);
  cudaFree(d_tt);
  cudaFree(d_out);
}
#endif
