// The .npy parser on arrays built byte by byte, and the reader-not-built error.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/npy.h"
#include "robocache/episode.h"

namespace {

using namespace robocache;

std::vector<uint8_t> npy(const std::string& dict, const std::vector<uint8_t>& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(header.size() & 0xff), uint8_t(header.size() >> 8)};
  out.insert(out.end(), header.begin(), header.end());
  if (!data.empty()) out.insert(out.end(), data.begin(), data.end());  // GCC 12 warns on an empty range
  return out;
}

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

TEST(IoNpy, CAndFortranOrder) {
  const std::vector<float> v = {1.5f, -2, 3, 4.25f, 5, 6};  // 2x3
  Array a;
  auto c = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", bytes_of(v));
  ASSERT_TRUE(io::parse_npy(c.data(), c.size(), "c", &a).is_ok());
  EXPECT_EQ(a.shape_str(), "[2, 3]");
  EXPECT_EQ(a.ptr<float>()[4], 5.0f);
  auto f = npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", bytes_of(v));
  ASSERT_TRUE(io::parse_npy(f.data(), f.size(), "f", &a).is_ok());
  // column-major source: element (r, c) is v[c * 2 + r]
  EXPECT_EQ(a.ptr<float>()[1], v[2]);
  EXPECT_EQ(a.ptr<float>()[3], v[1]);
  auto s = npy("{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", bytes_of(std::vector<int16_t>{-7, 300, 1}));
  ASSERT_TRUE(io::parse_npy(s.data(), s.size(), "s", &a).is_ok());
  EXPECT_EQ(a.dtype, DType::Int32);
  EXPECT_EQ(a.ptr<int32_t>()[0], -7);
  auto scalar = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", bytes_of(std::vector<double>{2.5}));
  ASSERT_TRUE(io::parse_npy(scalar.data(), scalar.size(), "scalar", &a).is_ok());
  EXPECT_TRUE(a.shape.empty());
  EXPECT_EQ(a.ptr<double>()[0], 2.5);
}

TEST(IoNpy, BadInputNamesTheArray) {
  Array a;
  auto short_data = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", std::vector<uint8_t>(20));
  Status s = io::parse_npy(short_data.data(), short_data.size(), "x.npz: member 'a.npy'", &a);
  EXPECT_EQ(s.code(), StatusCode::IOError);
  EXPECT_NE(s.message().find("x.npz: member 'a.npy': .npy data is 20 bytes from byte offset 128"), std::string::npos)
      << s.message();
  auto bad = short_data;
  bad[1] = 'X';
  s = io::parse_npy(bad.data(), bad.size(), "m", &a);
  EXPECT_NE(s.message().find("bad magic"), std::string::npos) << s.message();
  s = io::parse_npy(bad.data(), 5, "m", &a);
  EXPECT_EQ(s.code(), StatusCode::IOError);
  auto huge = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", {});
  s = io::parse_npy(huge.data(), huge.size(), "h", &a);
  EXPECT_NE(s.message().find("too large"), std::string::npos) << s.message();
  auto big_endian = npy("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", std::vector<uint8_t>(8));
  s = io::parse_npy(big_endian.data(), big_endian.size(), "b", &a);
  EXPECT_NE(s.message().find("big-endian"), std::string::npos) << s.message();
  auto header_cut = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", {});
  s = io::parse_npy(header_cut.data(), 30, "t", &a);
  EXPECT_NE(s.message().find("truncated .npy header"), std::string::npos) << s.message();
}

// A format whose reader is not in this build is an error that says so (checked in whichever build runs).
TEST(IoOpen, ReaderNotBuiltIsAnError) {
  const std::filesystem::path bridge =
      std::filesystem::path(ROBOCACHE_SHARED_DATA) / "rlds" / "bridge_dataset" / "1.0.0";
  if (!std::filesystem::exists(bridge)) GTEST_SKIP() << bridge << " not present";
  std::unique_ptr<Dataset> ds;
  Status s = open_dataset(bridge.string(), {}, &ds);
  if (dataset_readers()["rlds"]) {
    EXPECT_TRUE(s.is_ok()) << s.message();
  } else {
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("built without the RLDS reader"), std::string::npos) << s.message();
  }
}

}  // namespace
