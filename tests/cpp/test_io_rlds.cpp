// Episode model, CRC32C, TFRecord framing and the RLDS reader through the C++ API.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "io/crc32c.h"
#include "io/tfrecord.h"
#include "robocache/episode.h"

namespace {

using namespace robocache;
namespace fs = std::filesystem;

const fs::path kBridge = fs::path(ROBOCACHE_SHARED_DATA) / "rlds" / "bridge_dataset" / "1.0.0";
const char* kShard = "bridge_dataset-train.tfrecord-00000-of-00001";

std::vector<uint8_t> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(IoCrc32c, Rfc3720Vectors) {
  const std::string digits = "123456789";
  EXPECT_EQ(io::crc32c(reinterpret_cast<const uint8_t*>(digits.data()), digits.size()), 0xe3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff);
  EXPECT_EQ(io::crc32c(zeros.data(), zeros.size()), 0x8a9136aau);
  EXPECT_EQ(io::crc32c(ones.data(), ones.size()), 0x62a8ab43u);
  // incremental == one shot, across the 8-byte fast path
  std::vector<uint8_t> odd(111);
  for (size_t i = 0; i < odd.size(); ++i) odd[i] = static_cast<uint8_t>(i * 37 + 11);
  EXPECT_EQ(io::crc32c(odd.data() + 19, 92, io::crc32c(odd.data(), 19)), io::crc32c(odd.data(), odd.size()));
}

TEST(IoEpisode, ArrayOwnsAndViews) {
  Array a = Array::empty(DType::Float32, {19, 7});
  EXPECT_EQ(a.numel(), 133);
  EXPECT_EQ(a.nbytes(), 133u * 4);
  EXPECT_EQ(a.shape_str(), "[19, 7]");
  const TensorView v = a.view();
  EXPECT_EQ(v.ndim, 2);
  EXPECT_EQ(v.strides[0], 7);
  EXPECT_EQ(v.strides[1], 1);
  Array b = a;  // shares the buffer
  EXPECT_EQ(b.data(), a.data());
  EpisodeStream s;
  s.data = a;
  set_step_timestamps(&s, 4.0);
  ASSERT_EQ(s.timestamps.numel(), 19);
  EXPECT_DOUBLE_EQ(s.timestamps.ptr<double>()[18], 18 / 4.0);
  EXPECT_EQ(s.time_source, TimeSource::StepIndexOverRate);
}

TEST(IoTFRecord, SplitsRealShardAndReportsCorruption) {
  if (!fs::exists(kBridge)) GTEST_SKIP() << kBridge << " not present";
  std::vector<uint8_t> raw = read_all(kBridge / kShard);
  std::vector<io::TFRecordSpan> spans, file_spans;
  ASSERT_TRUE(io::split_tfrecords(raw.data(), raw.size(), "shard", true, &spans).is_ok());
  ASSERT_EQ(spans.size(), 25u);
  ASSERT_TRUE(io::index_tfrecord_file((kBridge / kShard).string(), true, &file_spans).is_ok());
  ASSERT_EQ(file_spans.size(), 25u);
  EXPECT_EQ(file_spans[24].offset, spans[24].offset);
  std::string record;
  ASSERT_TRUE(io::read_tfrecord((kBridge / kShard).string(), file_spans[7], true, &record).is_ok());
  EXPECT_EQ(record.size(), file_spans[7].length);

  raw[spans[7].offset + 12 + 100] ^= 0x10;
  Status s = io::split_tfrecords(raw.data(), raw.size(), "shard", true, &spans);
  EXPECT_EQ(s.code(), StatusCode::IOError);
  EXPECT_NE(s.message().find("shard: corrupt TFRecord data in the record at byte offset " +
                             std::to_string(file_spans[7].offset)),
            std::string::npos)
      << s.message();
  s = io::split_tfrecords(raw.data(), file_spans[3].offset + 7, "shard", false, &spans);
  EXPECT_NE(s.message().find("truncated TFRecord at byte offset " + std::to_string(file_spans[3].offset)),
            std::string::npos)
      << s.message();
}

TEST(IoRlds, OpensBridge) {
  if (!dataset_readers()["rlds"]) GTEST_SKIP() << "RLDS reader not built";
  if (!fs::exists(kBridge)) GTEST_SKIP() << kBridge << " not present";
  DatasetOptions opt;
  opt.split = "val";
  std::unique_ptr<Dataset> ds;
  ASSERT_TRUE(open_dataset(kBridge.string(), opt, &ds).is_ok());
  EXPECT_EQ(ds->format(), "rlds");
  ASSERT_EQ(ds->num_episodes(), 25);
  Episode ep;
  ASSERT_TRUE(ds->read_episode(24, &ep).is_ok());
  const EpisodeStream* action = ep.find("steps/action");
  ASSERT_NE(action, nullptr);
  EXPECT_EQ(action->data.shape_str(), "[10, 7]");
  const EpisodeStream* img = ep.find("steps/observation/image_0");
  ASSERT_NE(img, nullptr);
  EXPECT_EQ(img->kind, StreamKind::Bytes);
  EXPECT_EQ(img->length(), 10);
  Array pixels;
  const int64_t* off = img->offsets.ptr<int64_t>();
  ASSERT_TRUE(decode_image(img->data.ptr<uint8_t>() + off[2], off[3] - off[2], "img", &pixels).is_ok());
  EXPECT_EQ(pixels.shape_str(), "[64, 64, 3]");
  EXPECT_FALSE(ep.metadata.language_instruction.empty());
  Status s = ds->read_episode(25, &ep);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
}

}  // namespace
