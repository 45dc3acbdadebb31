// Voxelization ops and point-cloud readers against plain-loop float64 references (std::map keyed by voxel
// coordinates), independent of the library's key and sort code. CUDA (where built and present) == CPU.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "io/lzf.h"
#include "robocache/robocache.h"

#ifdef ROBOCACHE_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace rc = robocache;

namespace {

using Coord = std::array<int64_t, 3>;
const rc::Device kCPU{rc::DeviceType::CPU, 0};

// Random cloud: uniform points (some outside), a quarter exactly on voxel boundaries, duplicates, NaN, inf.
std::vector<float> make_cloud(int64_t n, uint32_t seed, const double origin[3], const double size[3],
                              const int64_t grid[3]) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-0.1, 1.1);
  std::vector<float> p(static_cast<size_t>(n * 3));
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < 3; ++d) {
      const double ext = static_cast<double>(grid[d]) * size[d];
      double v = origin[d] + u(rng) * ext;
      if (i % 4 == 0) v = origin[d] + static_cast<double>(rng() % (grid[d] + 1)) * size[d];
      p[i * 3 + d] = static_cast<float>(v);
    }
    if (i % 9 == 5) std::memcpy(&p[i * 3], &p[(i / 2) * 3], 12);
  }
  if (n > 10) {
    p[3] = std::numeric_limits<float>::quiet_NaN();
    p[7] = std::numeric_limits<float>::infinity();
  }
  return p;
}

bool ref_coord(const float* p, const double origin[3], const double size[3], const int64_t grid[3], Coord* c) {
  for (int d = 0; d < 3; ++d) {
    const double v = std::floor((static_cast<double>(p[d]) - origin[d]) / size[d]);
    if (!(v >= 0 && v < static_cast<double>(grid[d]))) return false;
    (*c)[d] = static_cast<int64_t>(v);
  }
  return true;
}

TEST(Voxelize, DenseCountAndMeanMatchPlainLoop) {
  const double origin[3] = {-1.0, -2.0, 0.5}, size[3] = {0.25, 0.5, 0.125};
  const int64_t grid[3] = {7, 3, 11};
  const int64_t N = 989, C = 2;
  std::vector<float> pts = make_cloud(N, 1, origin, size, grid);
  std::vector<float> feats(N * C);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.f, 2.f);
  for (auto& f : feats) f = nd(rng);

  std::map<Coord, std::pair<int64_t, std::vector<double>>> want;
  int64_t want_dropped = 0;
  for (int64_t i = 0; i < N; ++i) {
    Coord c;
    if (!ref_coord(&pts[i * 3], origin, size, grid, &c)) {
      ++want_dropped;
      continue;
    }
    auto& e = want[c];
    e.second.resize(C);
    ++e.first;
    for (int64_t k = 0; k < C; ++k) e.second[k] += feats[i * C + k];
  }

  rc::VoxelGridSpec spec;
  for (int d = 0; d < 3; ++d) spec.origin[d] = origin[d], spec.voxel_size[d] = size[d], spec.grid_size[d] = grid[d];
  const int64_t V = grid[0] * grid[1] * grid[2];
  std::vector<float> mean(V * C, -1.f);
  std::vector<int32_t> count(V, -1);
  int64_t dropped = -1;
  const auto pv = rc::make_view(pts.data(), rc::DType::Float32, kCPU, {N, 3});
  const auto fv = rc::make_view(feats.data(), rc::DType::Float32, kCPU, {N, C});
  const auto ov = rc::make_view(mean.data(), rc::DType::Float32, kCPU, {grid[0], grid[1], grid[2], C});
  const auto cv = rc::make_view(count.data(), rc::DType::Int32, kCPU, {grid[0], grid[1], grid[2]});
  const auto dv = rc::make_view(&dropped, rc::DType::Int64, kCPU, {});
  ASSERT_TRUE(rc::voxelize_dense(pv, &fv, nullptr, spec, rc::VoxelMode::Mean, ov, &cv, &dv).is_ok());
  EXPECT_EQ(dropped, want_dropped);
  for (int64_t x = 0; x < grid[0]; ++x) {
    for (int64_t y = 0; y < grid[1]; ++y) {
      for (int64_t z = 0; z < grid[2]; ++z) {
        const int64_t k = (x * grid[1] + y) * grid[2] + z;
        const auto it = want.find({x, y, z});
        const int64_t n = it == want.end() ? 0 : it->second.first;
        ASSERT_EQ(count[k], n) << "voxel " << x << "," << y << "," << z;
        for (int64_t c = 0; c < C; ++c) {
          const double w = n == 0 ? 0.0 : it->second.second[c] / static_cast<double>(n);
          EXPECT_NEAR(mean[k * C + c], w, 1e-5 * (1 + std::fabs(w)));
        }
      }
    }
  }
}

TEST(Voxelize, MaxOfNegativeFeatures) {
  std::vector<float> pts = {0.1f, 0.1f, 0.1f, 0.2f, 0.2f, 0.2f};
  std::vector<float> feats = {-5.f, -3.f};
  std::vector<float> out(2, 7.f);
  rc::VoxelGridSpec spec;
  spec.grid_size[0] = 2, spec.grid_size[1] = 1, spec.grid_size[2] = 1;
  const auto pv = rc::make_view(pts.data(), rc::DType::Float32, kCPU, {2, 3});
  const auto fv = rc::make_view(feats.data(), rc::DType::Float32, kCPU, {2, 1});
  const auto ov = rc::make_view(out.data(), rc::DType::Float32, kCPU, {2, 1, 1, 1});
  ASSERT_TRUE(rc::voxelize_dense(pv, &fv, nullptr, spec, rc::VoxelMode::Max, ov, nullptr, nullptr).is_ok());
  EXPECT_EQ(out[0], -3.f);
  EXPECT_EQ(out[1], 0.f);  // empty voxel
}

TEST(Voxelize, ImpossibleDenseGridIsAnError) {
  float p[3] = {0, 0, 0};
  int32_t out = 0;
  rc::VoxelGridSpec spec;
  spec.grid_size[0] = spec.grid_size[1] = spec.grid_size[2] = int64_t{1} << 22;
  const auto pv = rc::make_view(p, rc::DType::Float32, kCPU, {1, 3});
  const auto ov = rc::make_view(&out, rc::DType::Int32, kCPU, {1});
  const rc::Status s = rc::voxelize_dense(pv, nullptr, nullptr, spec, rc::VoxelMode::Count, ov, nullptr, nullptr);
  EXPECT_EQ(s.code(), rc::StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("more than 2^63 voxels"), std::string::npos) << s.message();
}

TEST(Voxelize, DownsampleCentroidsSortedByVoxel) {
  const double origin[3] = {0, 0, 0}, size[3] = {0.3, 0.3, 0.3};
  const int64_t grid[3] = {10, 10, 10};
  const int64_t N = 2001;
  std::vector<float> pts = make_cloud(N, 3, origin, size, grid);
  // Reference: Open3D's anchor (min - size / 2), std::map orders coordinates x, then y, then z.
  double lo[3] = {1e300, 1e300, 1e300};
  for (int64_t i = 0; i < N; ++i) {
    const float* p = &pts[i * 3];
    if (!(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]))) continue;
    for (int d = 0; d < 3; ++d) lo[d] = std::min(lo[d], static_cast<double>(p[d]));
  }
  std::map<Coord, std::pair<int64_t, std::array<double, 3>>> want;
  for (int64_t i = 0; i < N; ++i) {
    const float* p = &pts[i * 3];
    if (!(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]))) continue;
    Coord c;
    for (int d = 0; d < 3; ++d) c[d] = static_cast<int64_t>(std::floor((p[d] - (lo[d] - size[d] * 0.5)) / size[d]));
    auto& e = want[c];
    ++e.first;
    for (int d = 0; d < 3; ++d) e.second[d] += p[d];
  }
  std::vector<float> out(N * 3);
  int64_t M = -1;
  const auto pv = rc::make_view(pts.data(), rc::DType::Float32, kCPU, {N, 3});
  const auto ov = rc::make_view(out.data(), rc::DType::Float32, kCPU, {N, 3});
  ASSERT_TRUE(rc::voxel_downsample(pv, size, nullptr, nullptr, ov, nullptr, &M).is_ok());
  ASSERT_EQ(M, static_cast<int64_t>(want.size()));
  int64_t m = 0;
  for (const auto& [c, e] : want) {
    for (int d = 0; d < 3; ++d) EXPECT_EQ(out[m * 3 + d], static_cast<float>(e.second[d] / e.first)) << m;
    ++m;
  }
}

TEST(Voxelize, HardVoxelizeFirstPointsInInputOrder) {
  const double origin[3] = {0, 0, 0}, size[3] = {0.5, 0.5, 0.5};
  const int64_t grid[3] = {4, 4, 2};
  const int64_t N = 777, P = 3, MV = 20;
  std::vector<float> pts = make_cloud(N, 4, origin, size, grid);
  // mmcv's loop.
  std::map<Coord, int64_t> id;
  std::vector<Coord> coords;
  std::vector<std::vector<int64_t>> members;
  for (int64_t i = 0; i < N; ++i) {
    Coord c;
    if (!ref_coord(&pts[i * 3], origin, size, grid, &c)) continue;
    auto it = id.find(c);
    if (it == id.end()) {
      if (static_cast<int64_t>(coords.size()) >= MV) continue;
      it = id.emplace(c, static_cast<int64_t>(coords.size())).first;
      coords.push_back(c);
      members.emplace_back();
    }
    if (static_cast<int64_t>(members[it->second].size()) < P) members[it->second].push_back(i);
  }
  rc::HardVoxelizeOptions o;
  for (int d = 0; d < 3; ++d) {
    o.voxel_size[d] = size[d], o.range_min[d] = origin[d], o.range_max[d] = origin[d] + grid[d] * size[d];
  }
  o.max_points = P, o.max_voxels = MV;
  std::vector<float> vox(MV * P * 3, -9.f);
  std::vector<int32_t> co(MV * 3), np(MV);
  int64_t M = -1;
  const auto pv = rc::make_view(pts.data(), rc::DType::Float32, kCPU, {N, 3});
  ASSERT_TRUE(rc::hard_voxelize(pv, o, rc::make_view(vox.data(), rc::DType::Float32, kCPU, {MV, P, 3}),
                                rc::make_view(co.data(), rc::DType::Int32, kCPU, {MV, 3}),
                                rc::make_view(np.data(), rc::DType::Int32, kCPU, {MV}), &M)
                  .is_ok());
  ASSERT_EQ(M, static_cast<int64_t>(coords.size()));
  for (int64_t m = 0; m < M; ++m) {
    EXPECT_EQ(co[m * 3 + 0], coords[m][2]);  // (z, y, x) like mmcv
    EXPECT_EQ(co[m * 3 + 1], coords[m][1]);
    EXPECT_EQ(co[m * 3 + 2], coords[m][0]);
    ASSERT_EQ(np[m], static_cast<int32_t>(members[m].size()));
    for (int64_t j = 0; j < P; ++j) {
      for (int d = 0; d < 3; ++d) {
        const float w = j < np[m] ? pts[members[m][j] * 3 + d] : 0.f;
        EXPECT_EQ(vox[(m * P + j) * 3 + d], w);
      }
    }
  }
}

TEST(PointCloudIO, LzfRoundTripsAndRejectsCorruptStreams) {
  // "abcabcabcabc": a literal run of 3 and a back reference of length 9 at distance 3.
  const uint8_t good[] = {0x02, 'a', 'b', 'c', static_cast<uint8_t>((7 << 5) | 0), 0x00, 0x02};
  std::string out(12, '\0'), why;
  ASSERT_TRUE(rc::io::lzf_decompress(good, sizeof(good), reinterpret_cast<uint8_t*>(out.data()), 12, &why)) << why;
  EXPECT_EQ(out, "abcabcabcabc");
  const uint8_t bad[] = {0x20, 0x05};
  EXPECT_FALSE(rc::io::lzf_decompress(bad, sizeof(bad), reinterpret_cast<uint8_t*>(out.data()), 12, &why));
  EXPECT_NE(why.find("offset 0"), std::string::npos) << why;
}

TEST(PointCloudIO, PcdAsciiAndErrorsNameTheFile) {
  const std::string ok = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\n"
                         "POINTS 2\nDATA ascii\n1 2 3\nnan 0 -4.5\n";
  rc::PointCloudFile f;
  ASSERT_TRUE(rc::parse_pcd(ok, "mem.pcd", &f).is_ok());
  ASSERT_EQ(f.num_points, 2);
  EXPECT_EQ(f.values[2], 3.f);
  EXPECT_TRUE(std::isnan(f.values[3]));
  EXPECT_EQ(f.values[5], -4.5f);
  const rc::Status s = rc::parse_pcd(ok.substr(0, ok.size() - 12), "cut.pcd", &f);
  EXPECT_EQ(s.code(), rc::StatusCode::IOError);
  EXPECT_EQ(s.message().rfind("cut.pcd: ", 0), 0u) << s.message();
}

TEST(PointCloudIO, RealKittiBin) {
  rc::PointCloudFile f;
  const rc::Status s = rc::read_point_cloud(std::string(ROBOCACHE_SHARED_DATA) + "/pointclouds/kitti_000008.bin", &f);
  if (s.code() == rc::StatusCode::IOError && s.message().find("cannot open") != std::string::npos) {
    GTEST_SKIP() << "sample data not present: " << s.message();
  }
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(f.num_points, 17238);
  EXPECT_EQ(f.fields.size(), 4u);
}

#ifdef ROBOCACHE_WITH_CUDA
TEST(VoxelizeCuda, HardVoxelizeAndDownsampleEqualCpu) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no CUDA device";
  const double origin[3] = {0, 0, 0}, size[3] = {0.25, 0.25, 0.25};
  const int64_t grid[3] = {16, 16, 8};
  const int64_t N = 50001, P = 4, MV = 300;
  std::vector<float> pts = make_cloud(N, 9, origin, size, grid);
  float* d_pts = nullptr;
  ASSERT_EQ(cudaMalloc(&d_pts, pts.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d_pts, pts.data(), pts.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  const rc::Device gpu{rc::DeviceType::CUDA, 0};

  std::vector<float> out(N * 3), got(N * 3);
  float* d_out = nullptr;
  ASSERT_EQ(cudaMalloc(&d_out, out.size() * 4), cudaSuccess);
  int64_t m_cpu = 0, m_gpu = 0;
  ASSERT_TRUE(rc::voxel_downsample(rc::make_view(pts.data(), rc::DType::Float32, kCPU, {N, 3}), size, nullptr, nullptr,
                                   rc::make_view(out.data(), rc::DType::Float32, kCPU, {N, 3}), nullptr, &m_cpu)
                  .is_ok());
  const rc::Status s = rc::voxel_downsample(rc::make_view(d_pts, rc::DType::Float32, gpu, {N, 3}), size, nullptr,
                                            nullptr, rc::make_view(d_out, rc::DType::Float32, gpu, {N, 3}), nullptr,
                                            &m_gpu);
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_EQ(m_gpu, m_cpu);
  ASSERT_EQ(cudaMemcpy(got.data(), d_out, m_gpu * 12, cudaMemcpyDeviceToHost), cudaSuccess);
  for (int64_t i = 0; i < m_cpu * 3; ++i) ASSERT_EQ(got[i], out[i]) << i;

  rc::HardVoxelizeOptions o;
  for (int d = 0; d < 3; ++d) {
    o.voxel_size[d] = size[d], o.range_min[d] = origin[d], o.range_max[d] = origin[d] + grid[d] * size[d];
  }
  o.max_points = P, o.max_voxels = MV;
  std::vector<float> vox(MV * P * 3), vox_gpu(MV * P * 3);
  std::vector<int32_t> co(MV * 3), co_gpu(MV * 3), np(MV), np_gpu(MV);
  float* d_vox = nullptr;
  int32_t *d_co = nullptr, *d_np = nullptr;
  ASSERT_EQ(cudaMalloc(&d_vox, vox.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_co, co.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_np, np.size() * 4), cudaSuccess);
  ASSERT_TRUE(rc::hard_voxelize(rc::make_view(pts.data(), rc::DType::Float32, kCPU, {N, 3}), o,
                                rc::make_view(vox.data(), rc::DType::Float32, kCPU, {MV, P, 3}),
                                rc::make_view(co.data(), rc::DType::Int32, kCPU, {MV, 3}),
                                rc::make_view(np.data(), rc::DType::Int32, kCPU, {MV}), &m_cpu)
                  .is_ok());
  ASSERT_TRUE(rc::hard_voxelize(rc::make_view(d_pts, rc::DType::Float32, gpu, {N, 3}), o,
                                rc::make_view(d_vox, rc::DType::Float32, gpu, {MV, P, 3}),
                                rc::make_view(d_co, rc::DType::Int32, gpu, {MV, 3}),
                                rc::make_view(d_np, rc::DType::Int32, gpu, {MV}), &m_gpu)
                  .is_ok());
  ASSERT_EQ(m_gpu, m_cpu);
  cudaMemcpy(vox_gpu.data(), d_vox, m_gpu * P * 12, cudaMemcpyDeviceToHost);
  cudaMemcpy(co_gpu.data(), d_co, m_gpu * 12, cudaMemcpyDeviceToHost);
  cudaMemcpy(np_gpu.data(), d_np, m_gpu * 4, cudaMemcpyDeviceToHost);
  for (int64_t i = 0; i < m_cpu * P * 3; ++i) ASSERT_EQ(vox_gpu[i], vox[i]) << i;
  for (int64_t i = 0; i < m_cpu * 3; ++i) ASSERT_EQ(co_gpu[i], co[i]) << i;
  for (int64_t i = 0; i < m_cpu; ++i) ASSERT_EQ(np_gpu[i], np[i]) << i;
  cudaFree(d_pts), cudaFree(d_out), cudaFree(d_vox), cudaFree(d_co), cudaFree(d_np);
}
#endif

}  // namespace
