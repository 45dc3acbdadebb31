// libFuzzer target: TFRecord framing, then tf.train.Example decoding into an episode with the Bridge
// features.json (or a small built-in schema when the shared data is absent). Seeds: records of the real
// Bridge shards (tests/fuzz/make_seeds.py).
#include <cstdint>
#include <fstream>
#include <sstream>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "io/rlds.h"
#include "io/tfrecord.h"

namespace {

// Tensor, unknown dimension, bool, image, text and episode-level features.
const char* kSmallSchema = R"({"featuresDict": {"features": {
  "steps": {"sequence": {"feature": {"featuresDict": {"features": {
    "action": {"tensor": {"shape": {"dimensions": ["7"]}, "dtype": "float32", "encoding": "none"}},
    "points": {"tensor": {"shape": {"dimensions": ["-1", "3"]}, "dtype": "float32", "encoding": "none"}},
    "raw": {"tensor": {"shape": {"dimensions": ["2"]}, "dtype": "int16", "encoding": "bytes"}},
    "is_first": {"tensor": {"shape": {}, "dtype": "bool", "encoding": "none"}},
    "image": {"image": {"shape": {"dimensions": ["64", "64", "3"]}, "dtype": "uint8", "encodingFormat": "jpeg"}},
    "language_instruction": {"text": {}}}}}, "length": "-1"}},
  "episode_metadata": {"featuresDict": {"features": {"file_path": {"text": {}}}}}}}})";

std::shared_ptr<const robocache::io::RldsSchema> load_schema() {
  std::string text = kSmallSchema;
  std::ifstream in(ROBOCACHE_FUZZ_FEATURES_JSON);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  std::shared_ptr<const robocache::io::RldsSchema> schema;
  if (!robocache::io::parse_rlds_features(text, "features.json", &schema).is_ok()) __builtin_trap();
  return schema;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto schema = [] {
    google::protobuf::SetLogHandler(nullptr);  // malformed keys are errors we return; no stderr noise
    return load_schema();
  }();
  std::vector<robocache::io::TFRecordSpan> spans;
  (void)robocache::io::split_tfrecords(data, size, "fuzz", true, &spans);
  // Unverified framing too, so that mutated records reach the Example decoder.
  if (!robocache::io::split_tfrecords(data, size, "fuzz", false, &spans).is_ok()) return 0;
  for (const auto& span : spans) {
    robocache::Episode ep;
    (void)robocache::io::decode_rlds_record(*schema, data + span.offset + 12, span.length, "fuzz", 10.0, &ep);
  }
  return 0;
}
