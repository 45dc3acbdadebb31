// The loader pipeline from C++ on a store written byte by byte: batches against a plain float64 loop,
// every column checked against the manifest, errors that name the file, and teardown mid-run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "loader/store_reader.h"
#include "robocache/loader.h"

namespace {

using namespace robocache;
namespace fs = std::filesystem;

void write_file(const fs::path& p, const std::string& bytes) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

template <class T>
std::string npy(const std::string& descr, const std::vector<int64_t>& shape, const std::vector<T>& v) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  return out;
}

// A store with one float64 [S, 2] stream "a" per episode (jittered times) and an int32 [S] stream "g" at
// another rate, episodes of `lengths` samples.
struct TestStore {
  fs::path dir;
  std::vector<std::vector<double>> t, data, tg;
  std::vector<std::vector<int32_t>> g;

  explicit TestStore(const std::vector<int64_t>& lengths, const std::string& name) {
    dir = fs::temp_directory_path() / ("robocache_test_loader_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "streams" / "000");
    fs::create_directories(dir / "streams" / "001");
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<double> all_t, all_d, all_tg;
    std::vector<int32_t> all_g;
    std::vector<int64_t> ep_a = {0}, ep_g = {0};
    for (int64_t S : lengths) {
      std::vector<double> ts, ds, tgs;
      std::vector<int32_t> gs;
      for (int64_t i = 0; i < S; ++i) {
        ts.push_back(i * 0.01 + 0.003 * u(rng) + (i ? 0.0 : 0.0));
        ds.push_back(u(rng));
        ds.push_back(10 * u(rng));
      }
      std::sort(ts.begin(), ts.end());
      ts[0] = 0.0;
      for (int64_t i = 0; i < S / 4 + 1; ++i) {
        tgs.push_back(0.02 + i * 0.04);
        gs.push_back(static_cast<int32_t>(1000 * u(rng)));
      }
      t.push_back(ts);
      data.push_back(ds);
      tg.push_back(tgs);
      g.push_back(gs);
      all_t.insert(all_t.end(), ts.begin(), ts.end());
      all_d.insert(all_d.end(), ds.begin(), ds.end());
      all_tg.insert(all_tg.end(), tgs.begin(), tgs.end());
      all_g.insert(all_g.end(), gs.begin(), gs.end());
      ep_a.push_back(ep_a.back() + S);
      ep_g.push_back(ep_g.back() + static_cast<int64_t>(gs.size()));
    }
    const int64_t E = static_cast<int64_t>(lengths.size());
    const auto n_a = static_cast<int64_t>(all_t.size()), n_g = static_cast<int64_t>(all_g.size());
    write_file(dir / "streams/000/timestamps.npy", npy("<f8", {n_a}, all_t));
    write_file(dir / "streams/000/data.npy", npy("<f8", {n_a, 2}, all_d));
    write_file(dir / "streams/000/episodes.npy", npy("<i8", {E + 1}, ep_a));
    write_file(dir / "streams/001/timestamps.npy", npy("<f8", {n_g}, all_tg));
    write_file(dir / "streams/001/data.npy", npy("<i4", {n_g}, all_g));
    write_file(dir / "streams/001/episodes.npy", npy("<i8", {E + 1}, ep_g));
    std::string files;
    for (const char* s : {"000", "001"}) {
      for (const char* f : {"timestamps.npy", "data.npy", "episodes.npy"}) {
        const std::string rel = std::string("streams/") + s + "/" + f;
        files += (files.empty() ? "" : ", ") + ("\"" + rel + "\": {\"bytes\": " +
                                                std::to_string(fs::file_size(dir / rel)) + ", \"sha256\": \"\"}");
      }
    }
    const std::string stream = "\"kind\": \"tensor\", \"time_unit\": \"s\", \"time_source\": \"recorded\", \"rate_hz\": 0, "
                               "\"encoding\": \"\"";
    write_file(dir / "manifest.json",
               "{\"format\": \"robocache-store\", \"version\": 1, \"num_episodes\": " + std::to_string(E) +
                   ", \"streams\": [{\"name\": \"a\", \"dtype\": \"<f8\", \"shape\": [2], \"dir\": \"streams/000\", " +
                   stream + "}, {\"name\": \"g\", \"dtype\": \"<i4\", \"shape\": [], \"dir\": \"streams/001\", " + stream +
                   "}], \"files\": {" + files + "}}");
  }
  ~TestStore() { fs::remove_all(dir); }
};

LoaderOptions options(const TestStore& s, int64_t B, int64_t T, double hz) {
  LoaderOptions o;
  o.store = s.dir.string();
  LoaderStream a, g;
  a.name = "a";
  g.name = "g";
  g.method = InterpMethod::Hold;
  o.streams = {a, g};
  o.batch_size = B;
  o.steps = T;
  o.target_hz = hz;
  o.num_threads = 2;
  o.prefetch = 1;
  for (size_t e = 0; e < s.t.size(); ++e) o.origin_s.push_back(std::min(s.t[e][0], s.tg[e][0]));
  return o;
}

TEST(Loader, BatchesMatchAPlainLoop) {
  TestStore s({37, 120, 64}, "match");
  const int64_t B = 5, T = 9;
  const double hz = 30;
  std::unique_ptr<LoaderPipeline> p;
  ASSERT_TRUE(LoaderPipeline::create(options(s, B, T, hz), &p).is_ok());
  // 23 windows, in a shuffled order of our own, some past the end of the stream "g" (masks false there)
  std::vector<int64_t> eps;
  std::vector<double> starts;
  std::mt19937 rng(3);
  for (int i = 0; i < 23; ++i) {
    const int64_t e = static_cast<int64_t>(rng() % 3);
    eps.push_back(e);
    starts.push_back((rng() % 1000) / 1000.0 * (s.t[e].back() - (T - 1) / hz));
  }
  uint64_t run = 0;
  ASSERT_TRUE(p->start(eps.data(), starts.data(), 23, &run).is_ok());
  int64_t row = 0;
  for (int b = 0; b < 5; ++b) {
    LoaderBatch batch;
    const Status st = p->next(run, nullptr, &batch);
    ASSERT_TRUE(st.is_ok()) << st.message();
    ASSERT_EQ(batch.tensors.size(), 4u);
    const BatchTensor &a = batch.tensors[0], &g = batch.tensors[1], &ma = batch.tensors[2], &mg = batch.tensors[3];
    EXPECT_EQ(a.name, "a");
    EXPECT_FALSE(a.is_mask);
    EXPECT_TRUE(ma.is_mask && mg.is_mask);
    const int64_t rows = a.shape[0];
    EXPECT_EQ(rows, b < 4 ? 5 : 3);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{rows, T, 2}));
    EXPECT_EQ(g.shape, (std::vector<int64_t>{rows, T}));
    EXPECT_TRUE(g.type == (ScalarType{'i', 4}));
    for (int64_t j = 0; j < rows; ++j, ++row) {
      const auto& ts = s.t[eps[row]];
      const auto& ds = s.data[eps[row]];
      const auto& tg = s.tg[eps[row]];
      for (int64_t k = 0; k < T; ++k) {
        const double t = starts[row] + k / hz;  // origin 0
        const size_t hi = std::upper_bound(ts.begin(), ts.end(), t) - ts.begin();
        for (int c = 0; c < 2; ++c) {
          double want;
          if (hi == 0) want = ds[c];
          else if (hi == ts.size()) want = ds[(ts.size() - 1) * 2 + c];
          else {
            const double w = (t - ts[hi - 1]) / (ts[hi] - ts[hi - 1]);
            want = ds[(hi - 1) * 2 + c] + w * (ds[hi * 2 + c] - ds[(hi - 1) * 2 + c]);
          }
          EXPECT_NEAR(static_cast<const double*>(a.data)[(j * T + k) * 2 + c], want, 1e-12) << row << " " << k;
        }
        // hold: a sample up to tolerance_s after the target counts as at it (its pad mask starts that early)
        const double tol = LoaderOptions{}.tolerance_s;
        const size_t gh = std::upper_bound(tg.begin(), tg.end(), t + tol) - tg.begin();
        const size_t gi = gh == 0 ? 0 : gh - 1;
        EXPECT_EQ(static_cast<const int32_t*>(g.data)[j * T + k], s.g[eps[row]][gi]);
        const bool inside = t >= tg.front() - tol - 1e-9 && t <= tg.back() + 1e-9;
        EXPECT_EQ(static_cast<const bool*>(mg.data)[j * T + k], inside);
        EXPECT_TRUE(static_cast<const bool*>(ma.data)[j * T + k]);
      }
    }
  }
  LoaderBatch extra;
  const Status done = p->next(run, nullptr, &extra);
  EXPECT_FALSE(done.is_ok());
  EXPECT_NE(done.message().find("no batch left"), std::string::npos);
  EXPECT_GE(p->stats().batches_built, 5);
}

TEST(Loader, CorruptColumnsNameTheFile) {
  TestStore s({20, 30}, "corrupt");
  std::unique_ptr<LoaderPipeline> p;
  // episodes.npy whose offsets go backwards
  const fs::path ep = s.dir / "streams/000/episodes.npy";
  write_file(ep, npy("<i8", {3}, std::vector<int64_t>{0, 25, 20}));
  Status st = LoaderPipeline::create(options(s, 2, 4, 30), &p);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("episodes.npy: episodes[2] = 20 < episodes[1] = 25"), std::string::npos) << st.message();
  // a data.npy cut short: its size disagrees with the manifest
  write_file(ep, npy("<i8", {3}, std::vector<int64_t>{0, 20, 50}));
  const fs::path data = s.dir / "streams/000/data.npy";
  fs::resize_file(data, fs::file_size(data) - 16);
  st = LoaderPipeline::create(options(s, 2, 4, 30), &p);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("streams/000/data.npy: "), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("manifest.json says"), std::string::npos) << st.message();
  // an unknown stream
  LoaderOptions o = options(s, 2, 4, 30);
  o.streams[1].name = "jiont";
  st = LoaderPipeline::create(o, &p);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("no stream 'jiont' in store"), std::string::npos) << st.message();
}

TEST(Loader, BadOptions) {
  TestStore s({20}, "options");
  std::unique_ptr<LoaderPipeline> p;
  LoaderOptions o = options(s, 2, 4, 30);
  o.target_hz = 0;
  EXPECT_NE(LoaderPipeline::create(o, &p).message().find("target_hz must be a finite number > 0, got 0"),
            std::string::npos);
  o = options(s, 2, 4, 30);
  o.streams[1].method = InterpMethod::Linear;
  EXPECT_NE(LoaderPipeline::create(o, &p).message().find("cannot interpolate integer samples"), std::string::npos);
  o = options(s, 2, 4, 30);
  o.origin_s.clear();
  EXPECT_NE(LoaderPipeline::create(o, &p).message().find("origin must have one entry per episode"), std::string::npos);
  o = options(s, 2, 4, 30);
  ASSERT_TRUE(LoaderPipeline::create(o, &p).is_ok());
  const int64_t bad_ep = 3;
  const double start = 0;
  uint64_t run = 0;
  EXPECT_NE(p->start(&bad_ep, &start, 1, &run).message().find("episodes[0] = 3 is out of range for 1 episodes"),
            std::string::npos);
}

TEST(Loader, CancelWakesAWaitingConsumer) {
  TestStore s({4000}, "cancel");
  std::unique_ptr<LoaderPipeline> p;
  LoaderOptions o = options(s, 64, 200, 500);
  o.num_threads = 1;
  ASSERT_TRUE(LoaderPipeline::create(o, &p).is_ok());
  const int n = 64 * 1000;  // 1000 batches: far more than the consumer gets through before the cancel
  std::vector<int64_t> eps(n, 0);
  std::vector<double> starts(n);
  for (int i = 0; i < n; ++i) starts[i] = (i % 3000) * 0.01;
  uint64_t run = 0;
  ASSERT_TRUE(p->start(eps.data(), starts.data(), n, &run).is_ok());
  LoaderBatch b;
  ASSERT_TRUE(p->next(run, nullptr, &b).is_ok());
  Status waited;
  std::thread consumer([&] {
    while (waited.is_ok()) waited = p->next(run, nullptr, &b);
  });
  p->cancel(run);
  consumer.join();  // returns: the cancel woke it, or it was already past
  EXPECT_FALSE(waited.is_ok());
  EXPECT_NE(waited.message().find("cancel"), std::string::npos) << waited.message();
}

TEST(Loader, TeardownMidRunAndBatchesOutliveThePipeline) {
  TestStore s({400, 300}, "teardown");
  std::vector<int64_t> eps(200);
  std::vector<double> starts(200);
  for (int i = 0; i < 200; ++i) {
    eps[i] = i % 2;
    starts[i] = (i % 50) * 0.02;
  }
  LoaderBatch kept;
  {
    std::unique_ptr<LoaderPipeline> p;
    ASSERT_TRUE(LoaderPipeline::create(options(s, 4, 20, 50), &p).is_ok());
    uint64_t run = 0;
    ASSERT_TRUE(p->start(eps.data(), starts.data(), 200, &run).is_ok());
    ASSERT_TRUE(p->next(run, nullptr, &kept).is_ok());
    // a second run replaces the first; the first's next is then an error, not a hang
    uint64_t run2 = 0;
    ASSERT_TRUE(p->start(eps.data(), starts.data(), 200, &run2).is_ok());
    LoaderBatch b;
    EXPECT_NE(p->next(run, nullptr, &b).message().find("cancelled or replaced"), std::string::npos);
    ASSERT_TRUE(p->next(run2, nullptr, &b).is_ok());
  }  // destroyed with workers busy building ahead
  const double first = static_cast<const double*>(kept.tensors[0].data)[0];
  EXPECT_TRUE(std::isfinite(first));
  EXPECT_GT(loader_memory().host_bytes, 0);
  kept = LoaderBatch{};  // the last reference: the buffer is freed now
}

}  // namespace
