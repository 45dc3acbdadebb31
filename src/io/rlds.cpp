#ifdef ROBOCACHE_WITH_RLDS
// RLDS / TFDS reader: dataset_info.json (splits, shards), features.json (feature types and shapes),
// TFRecord shards of tf.train.Example, one episode per record with steps/* features flattened.
// tf.train.Example is decoded by libprotobuf-lite from our example.proto: the real protobuf parser
// (Debian libprotobuf-dev), not a hand-written wire decoder.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include "io/file.h"
#include "io/json_file.h"

#include "example.pb.h"  // generated from src/io/example.proto into the build tree
#include "io/readers.h"
#include "io/rlds.h"
#include "io/tfrecord.h"

namespace robocache::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

enum class FeatureKind { Tensor, Image, Text };

struct FeatureSpec {
  std::string key;  // "steps/observation/image_0", "episode_metadata/file_path"
  bool is_step = false;
  FeatureKind kind = FeatureKind::Tensor;
  std::string tfds_dtype;  // as features.json states it
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;  // per step (steps/*) or per episode; -1 = unknown
  std::string encoding;        // tensors: "none" or "bytes"; images: "jpeg" / "png"
};

Status read_json(const fs::path& file, json* out) { return io::read_json_file(file.string(), out); }

// TFDS dtypes onto the episode model's; narrower integers widen losslessly.
Status map_dtype(const std::string& name, const std::string& key, const std::string& file, DType* out) {
  if (name == "float32") *out = DType::Float32;
  else if (name == "float64") *out = DType::Float64;
  else if (name == "int64") *out = DType::Int64;
  else if (name == "int32" || name == "int16" || name == "int8" || name == "uint16") *out = DType::Int32;
  else if (name == "uint32") *out = DType::Int64;
  else if (name == "uint8") *out = DType::UInt8;
  else if (name == "bool") *out = DType::Bool;
  else return io_error(file, ": feature '", key, "' has dtype '", name, "', which the episode model does not hold");
  return Status::ok();
}

Status parse_shape(const json& tensor, const std::string& key, const std::string& file, std::vector<int64_t>* out) {
  out->clear();
  try {
    if (!tensor.contains("shape") || !tensor["shape"].contains("dimensions")) return Status::ok();  // scalar
    for (const json& d : tensor["shape"]["dimensions"]) {
      out->push_back(d.is_string() ? std::stoll(d.get<std::string>()) : d.get<int64_t>());
    }
  } catch (const std::exception& e) {
    return io_error(file, ": feature '", key, "' has a bad shape: ", e.what());
  }
  int unknown = 0;
  for (int64_t d : *out) {
    if (d < -1) return io_error(file, ": feature '", key, "' has a negative dimension ", d);
    unknown += d == -1;
  }
  if (unknown > 1 && tensor.contains("dtype") && !tensor.contains("encodingFormat"))  // images may have several
    return io_error(file, ": feature '", key, "' has more than one unknown (-1) dimension");
  return Status::ok();
}

Status collect_features(const json& node, const std::string& key, bool in_steps, const std::string& file,
                        std::vector<FeatureSpec>* out) {
  if (!node.is_object()) return io_error(file, ": feature '", key, "' is not a JSON object");
  const std::string cls = node.value("pythonClassName", std::string());
  if (node.contains("featuresDict")) {
    const json& fd = node["featuresDict"];
    if (!fd.contains("features") || !fd["features"].is_object())
      return io_error(file, ": featuresDict of '", key, "' has no 'features' object");
    for (auto it = fd["features"].begin(); it != fd["features"].end(); ++it) {
      const std::string child = key.empty() ? it.key() : key + "/" + it.key();
      ROBOCACHE_RETURN_IF_ERROR(collect_features(it.value(), child, in_steps, file, out));
    }
    return Status::ok();
  }
  if (node.contains("sequence")) {
    if (in_steps) return io_error(file, ": feature '", key, "' is a sequence inside a sequence, which is not supported");
    if (!node["sequence"].contains("feature")) return io_error(file, ": sequence '", key, "' has no 'feature'");
    return collect_features(node["sequence"]["feature"], key, true, file, out);
  }
  FeatureSpec spec;
  spec.key = key;
  spec.is_step = in_steps;
  if (node.contains("tensor")) {
    const json& t = node["tensor"];
    spec.kind = FeatureKind::Tensor;
    spec.tfds_dtype = t.value("dtype", std::string());
    spec.encoding = t.value("encoding", std::string("none"));
    if (spec.encoding != "none" && spec.encoding != "bytes")
      return io_error(file, ": feature '", key, "' has tensor encoding '", spec.encoding,
                      "'; only 'none' and 'bytes' are supported");
    if (spec.tfds_dtype == "string") {
      spec.kind = FeatureKind::Text;
    } else {
      ROBOCACHE_RETURN_IF_ERROR(map_dtype(spec.tfds_dtype, key, file, &spec.dtype));
    }
    ROBOCACHE_RETURN_IF_ERROR(parse_shape(t, key, file, &spec.shape));
  } else if (node.contains("image")) {
    const json& t = node["image"];
    spec.kind = FeatureKind::Image;
    spec.tfds_dtype = t.value("dtype", std::string("uint8"));
    spec.encoding = t.value("encodingFormat", std::string("png"));  // TFDS's default image encoding
    spec.dtype = DType::UInt8;
    ROBOCACHE_RETURN_IF_ERROR(parse_shape(t, key, file, &spec.shape));
  } else if (node.contains("text")) {
    spec.kind = FeatureKind::Text;
  } else if (node.contains("classLabel")) {
    spec.kind = FeatureKind::Tensor;
    spec.dtype = DType::Int64;
    spec.tfds_dtype = "int64";
    spec.encoding = "none";
  } else {
    return io_error(file, ": feature '", key, "' has type '", cls, "', which this reader does not support");
  }
  out->push_back(std::move(spec));
  return Status::ok();
}

Status collect_all_features(const json& features, const std::string& file, std::vector<FeatureSpec>* out) {
  out->clear();
  try {
    ROBOCACHE_RETURN_IF_ERROR(collect_features(features, "", false, file, out));
  } catch (const json::exception& e) {
    return io_error(file, ": unexpected layout: ", e.what());
  }
  // Fixed-shape steps features first, so a feature with an unknown dimension can take the step count.
  std::stable_partition(out->begin(), out->end(), [](const FeatureSpec& s) {
    return !(s.is_step && s.kind == FeatureKind::Tensor &&
             std::find(s.shape.begin(), s.shape.end(), -1) != s.shape.end());
  });
  return Status::ok();
}

std::string shard_name(const std::string& tmpl, const std::string& dataset, const std::string& split,
                       const std::string& format, size_t shard, size_t num_shards) {
  char xy[64];
  std::snprintf(xy, sizeof xy, "%05zu-of-%05zu", shard, num_shards);
  std::string s = tmpl;
  auto replace = [&s](const std::string& from, const std::string& to) {
    for (size_t pos; (pos = s.find(from)) != std::string::npos;) s.replace(pos, from.size(), to);
  };
  replace("{DATASET}", dataset);
  replace("{SPLIT}", split);
  replace("{FILEFORMAT}", format);
  replace("{SHARD_X_OF_Y}", xy);
  replace("{SHARD_INDEX}", std::to_string(shard));
  return s;
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

struct EpisodeRef {
  size_t shard;
  int64_t record;  // in its shard
  TFRecordSpan span;
};

class RldsDataset final : public Dataset {
 public:
  std::string format() const override { return "rlds"; }
  std::string path() const override { return dir_; }
  int64_t num_episodes() const override { return static_cast<int64_t>(episodes_.size()); }
  Status read_episode_at(int64_t index, Episode* out) const override;

  std::string dir_;
  DatasetOptions options_;
  std::vector<FeatureSpec> features_;
  std::vector<std::string> shards_;
  std::vector<std::string> shard_split_;
  std::vector<EpisodeRef> episodes_;

};

// Values of one feature as the spec's dtype, appended to `dst`.
Status convert_values(const tfexample::Feature& f, const FeatureSpec& spec, const std::string& where,
                      std::vector<uint8_t>* dst, int64_t* count) {
  const size_t esize = dtype_size(spec.dtype);
  auto put = [&](auto v, int64_t i) {
    uint8_t* p = dst->data() + i * esize;
    switch (spec.dtype) {
      case DType::Float32: { float x = static_cast<float>(v); std::memcpy(p, &x, 4); break; }
      case DType::Float64: { double x = static_cast<double>(v); std::memcpy(p, &x, 8); break; }
      case DType::Int32: { int32_t x = static_cast<int32_t>(v); std::memcpy(p, &x, 4); break; }
      case DType::Int64: { int64_t x = static_cast<int64_t>(v); std::memcpy(p, &x, 8); break; }
      case DType::UInt8: { uint8_t x = static_cast<uint8_t>(v); *p = x; break; }
      case DType::Bool: { *p = v != 0; break; }
      default: break;
    }
  };
  const bool is_float = spec.dtype == DType::Float32 || spec.dtype == DType::Float64;
  if (spec.encoding == "bytes") {
    if (f.kind_case() != tfexample::Feature::kBytesList || f.bytes_list().value_size() != 1)
      return io_error(where, ": feature '", spec.key, "' (encoding 'bytes') must hold one bytes value");
    const std::string& raw = f.bytes_list().value(0);
    const size_t src_esize = spec.tfds_dtype == "float64" || spec.tfds_dtype == "int64" || spec.tfds_dtype == "uint32"
                                 ? (spec.tfds_dtype == "uint32" ? 4 : 8)
                                 : (spec.tfds_dtype == "float32" || spec.tfds_dtype == "int32" ? 4
                                    : spec.tfds_dtype == "int16" || spec.tfds_dtype == "uint16" ? 2 : 1);
    if (raw.size() % src_esize != 0)
      return io_error(where, ": feature '", spec.key, "' holds ", raw.size(), " bytes, not a whole number of ",
                      spec.tfds_dtype, " values");
    const int64_t n = static_cast<int64_t>(raw.size() / src_esize);
    dst->resize(n * esize);
    const auto* s = reinterpret_cast<const uint8_t*>(raw.data());
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* q = s + i * src_esize;
      if (spec.tfds_dtype == "float32") { float v; std::memcpy(&v, q, 4); put(v, i); }
      else if (spec.tfds_dtype == "float64") { double v; std::memcpy(&v, q, 8); put(v, i); }
      else if (spec.tfds_dtype == "int64") { int64_t v; std::memcpy(&v, q, 8); put(v, i); }
      else if (spec.tfds_dtype == "int32") { int32_t v; std::memcpy(&v, q, 4); put(v, i); }
      else if (spec.tfds_dtype == "uint32") { uint32_t v; std::memcpy(&v, q, 4); put(v, i); }
      else if (spec.tfds_dtype == "int16") { int16_t v; std::memcpy(&v, q, 2); put(v, i); }
      else if (spec.tfds_dtype == "uint16") { uint16_t v; std::memcpy(&v, q, 2); put(v, i); }
      else if (spec.tfds_dtype == "int8") { put(static_cast<int8_t>(*q), i); }
      else { put(*q, i); }
    }
    *count = n;
    return Status::ok();
  }
  if (is_float) {
    if (f.kind_case() != tfexample::Feature::kFloatList)
      return io_error(where, ": feature '", spec.key, "' should be a float_list (dtype ", spec.tfds_dtype, ")");
    const auto& v = f.float_list().value();
    dst->resize(v.size() * esize);
    for (int i = 0; i < v.size(); ++i) put(v[i], i);
    *count = v.size();
  } else {
    if (f.kind_case() != tfexample::Feature::kInt64List)
      return io_error(where, ": feature '", spec.key, "' should be an int64_list (dtype ", spec.tfds_dtype, ")");
    const auto& v = f.int64_list().value();
    dst->resize(v.size() * esize);
    for (int i = 0; i < v.size(); ++i) put(v[i], i);
    *count = v.size();
  }
  return Status::ok();
}

std::string metadata_text(const EpisodeStream& s) {
  if (s.kind == StreamKind::Bytes) {
    std::string out;
    const int64_t* off = s.offsets.ptr<int64_t>();
    for (int64_t i = 0; i < s.length(); ++i) {
      if (i) out += ", ";
      if (s.encoding == "utf-8") out.append(s.data.ptr<char>() + off[i], off[i + 1] - off[i]);
      else out += "<" + std::to_string(off[i + 1] - off[i]) + " bytes " + s.encoding + ">";
    }
    return out;
  }
  std::string text;
  const int64_t n = s.data.numel();
  for (int64_t i = 0; i < n; ++i) {
    if (i) text += ", ";
    switch (s.data.dtype) {
      case DType::Float32: text += detail::concat(s.data.ptr<float>()[i]); break;
      case DType::Float64: text += detail::concat(s.data.ptr<double>()[i]); break;
      case DType::Int32: text += detail::concat(s.data.ptr<int32_t>()[i]); break;
      case DType::Int64: text += detail::concat(s.data.ptr<int64_t>()[i]); break;
      case DType::UInt8: text += detail::concat(int{s.data.ptr<uint8_t>()[i]}); break;
      case DType::Bool: text += s.data.ptr<uint8_t>()[i] ? "true" : "false"; break;
      default: text += "?"; break;
    }
  }
  return text;
}

Status decode_example(const std::vector<FeatureSpec>& features_, double rate_hz, const tfexample::Example& ex,
                      const std::string& where, Episode* out) {
  const auto& fmap = ex.features().feature();
  for (const auto& kv : fmap) {
    bool known = false;
    for (const FeatureSpec& s : features_) known |= s.key == kv.first;
    if (!known) return io_error(where, ": feature '", kv.first, "' is in the record but not in features.json");
  }
  int64_t steps = -1;
  std::string steps_from;
  std::vector<EpisodeStream> episode_fields;
  for (const FeatureSpec& spec : features_) {
    auto it = fmap.find(spec.key);
    if (it == fmap.end()) return io_error(where, ": feature '", spec.key, "' (from features.json) is missing");
    const tfexample::Feature& f = it->second;
    EpisodeStream s;
    s.name = spec.key;
    int64_t items = 0;
    if (spec.kind == FeatureKind::Image || spec.kind == FeatureKind::Text) {
      if (f.kind_case() != tfexample::Feature::kBytesList)
        return io_error(where, ": feature '", spec.key, "' should be a bytes_list");
      const auto& v = f.bytes_list().value();
      size_t total = 0;
      for (const std::string& b : v) total += b.size();
      s.kind = StreamKind::Bytes;
      s.encoding = spec.kind == FeatureKind::Text ? "utf-8" : spec.encoding;
      s.data = Array::empty(DType::UInt8, {static_cast<int64_t>(total)});
      s.offsets = Array::empty(DType::Int64, {static_cast<int64_t>(v.size()) + 1});
      int64_t* off = s.offsets.ptr<int64_t>();
      off[0] = 0;
      for (int i = 0; i < v.size(); ++i) {
        if (!v[i].empty()) std::memcpy(s.data.ptr<uint8_t>() + off[i], v[i].data(), v[i].size());
        off[i + 1] = off[i] + static_cast<int64_t>(v[i].size());
      }
      items = v.size();
    } else {
      auto buf = std::make_shared<std::vector<uint8_t>>();
      int64_t n = 0;
      ROBOCACHE_RETURN_IF_ERROR(convert_values(f, spec, where, buf.get(), &n));
      std::vector<int64_t> shape = spec.shape;
      int64_t known_elems = 1;
      int unknown = -1;
      for (size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == -1) unknown = static_cast<int>(d);
        else known_elems *= shape[d];
      }
      if (spec.is_step) {
        if (unknown >= 0) {
          // The step count comes from another feature; resolved below.
          if (steps < 0) return io_error(where, ": feature '", spec.key, "' has an unknown dimension and no fixed-shape steps feature comes before it");
          const int64_t per_step = steps > 0 ? n / steps : 0;
          if (known_elems == 0 || steps * per_step != n || per_step % known_elems != 0)
            return io_error(where, ": feature '", spec.key, "' holds ", n, " values, which do not fill ", steps, " steps of shape ", Array{DType::UInt8, shape, nullptr}.shape_str());
          shape[unknown] = per_step / known_elems;
        } else if (known_elems == 0 || n % known_elems != 0) {
          return io_error(where, ": feature '", spec.key, "' holds ", n, " values, not a multiple of its step shape ",
                          Array{DType::UInt8, shape, nullptr}.shape_str());
        }
        items = known_elems == 0 ? 0 : n / product(shape);
        shape.insert(shape.begin(), items);
      } else {
        if (unknown >= 0) {
          if (known_elems == 0 || n % known_elems != 0)
            return io_error(where, ": feature '", spec.key, "' holds ", n, " values, which do not fit its shape");
          shape[unknown] = n / known_elems;
        } else if (product(shape) != n) {
          return io_error(where, ": feature '", spec.key, "' holds ", n, " values, its shape ",
                          Array{DType::UInt8, shape, nullptr}.shape_str(), " needs ", product(shape));
        }
        items = 1;
      }
      s.kind = StreamKind::Tensor;
      s.data.dtype = spec.dtype;
      s.data.shape = shape;
      s.data.buffer = std::move(buf);
    }
    if (spec.is_step) {
      if (steps < 0) {
        steps = items;
        steps_from = spec.key;
      } else if (items != steps) {
        return io_error(where, ": feature '", spec.key, "' has ", items, " steps but '", steps_from, "' has ", steps);
      }
      set_step_timestamps(&s, rate_hz);
      out->streams.push_back(std::move(s));
    } else {
      episode_fields.push_back(std::move(s));
    }
  }
  for (const EpisodeStream& s : episode_fields) {
    const std::string text = metadata_text(s);
    const std::string leaf = s.name.substr(s.name.rfind('/') + 1);
    if (leaf == "language_instruction" || leaf == "natural_language_instruction") out->metadata.language_instruction = text;
    out->metadata.extra[s.name] = text;
  }
  if (out->metadata.language_instruction.empty()) {
    for (const char* k : {"steps/language_instruction", "steps/observation/natural_language_instruction"}) {
      const EpisodeStream* s = out->find(k);
      if (s && s->kind == StreamKind::Bytes && s->length() > 0) {
        const int64_t* off = s->offsets.ptr<int64_t>();
        out->metadata.language_instruction.assign(s->data.ptr<char>() + off[0], off[1] - off[0]);
        break;
      }
    }
  }
  return Status::ok();
}

Status RldsDataset::read_episode_at(int64_t index, Episode* out) const {
  const EpisodeRef& ref = episodes_[index];
  const std::string& file = shards_[ref.shard];
  std::string record;
  ROBOCACHE_RETURN_IF_ERROR(read_tfrecord(file, ref.span, options_.verify_checksums, &record));
  const std::string where = file + ": record " + std::to_string(ref.record) + " at byte offset " + std::to_string(ref.span.offset);
  tfexample::Example ex;
  if (!ex.ParseFromString(record)) return io_error(where, ": malformed tf.train.Example (protobuf parse failed)");
  *out = Episode{};
  out->index = index;
  out->metadata.source_file = file;
  out->metadata.source_key = "record " + std::to_string(ref.record) + " at byte offset " + std::to_string(ref.span.offset);
  out->metadata.extra["split"] = shard_split_[ref.shard];
  return decode_example(features_, options_.rate_hz, ex, where, out);
}

}  // namespace

Status open_rlds(const std::string& dir_in, const DatasetOptions& options, std::unique_ptr<Dataset>* out) {
  const fs::path dir(dir_in);
  auto ds = std::make_unique<RldsDataset>();
  ds->dir_ = dir_in;
  ds->options_ = options;
  json info, features;
  ROBOCACHE_RETURN_IF_ERROR(read_json(dir / "dataset_info.json", &info));
  ROBOCACHE_RETURN_IF_ERROR(read_json(dir / "features.json", &features));
  const std::string info_file = (dir / "dataset_info.json").string();
  ROBOCACHE_RETURN_IF_ERROR(collect_all_features(features, (dir / "features.json").string(), &ds->features_));
  try {
    const std::string file_format = info.value("fileFormat", std::string("tfrecord"));
    if (file_format != "tfrecord")
      return io_error(info_file, ": fileFormat '", file_format, "' is not supported; only 'tfrecord' is");
    const std::string name = info.at("name").get<std::string>();
    if (!info.contains("splits") || !info["splits"].is_array() || info["splits"].empty())
      return io_error(info_file, ": no 'splits' listed");
    bool split_found = false;
    std::vector<std::string> names;
    for (const json& split : info["splits"]) {
      const std::string sname = split.at("name").get<std::string>();
      names.push_back(sname);
      if (!options.split.empty() && sname != options.split) continue;
      split_found = true;
      const std::string tmpl = split.value("filepathTemplate", std::string("{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"));
      std::vector<int64_t> lengths;
      if (split.contains("shardLengths")) {
        for (const json& l : split["shardLengths"]) lengths.push_back(l.is_string() ? std::stoll(l.get<std::string>()) : l.get<int64_t>());
      } else {
        return io_error(info_file, ": split '", sname, "' has no 'shardLengths'");
      }
      for (size_t i = 0; i < lengths.size(); ++i) {
        const fs::path shard = dir / shard_name(tmpl, name, sname, file_format, i, lengths.size());
        if (!fs::exists(shard)) {
          return io_error(shard.string(), ": missing shard ", i, " of ", lengths.size(), " of split '", sname,
                          "' (named by ", info_file, ")");
        }
        std::vector<TFRecordSpan> spans;
        ROBOCACHE_RETURN_IF_ERROR(index_tfrecord_file(shard.string(), options.verify_checksums, &spans));
        if (static_cast<int64_t>(spans.size()) != lengths[i]) {
          return io_error(shard.string(), ": holds ", spans.size(), " records but ", info_file, " says ", lengths[i]);
        }
        const size_t shard_index = ds->shards_.size();
        ds->shards_.push_back(shard.string());
        ds->shard_split_.push_back(sname);
        for (size_t r = 0; r < spans.size(); ++r) ds->episodes_.push_back({shard_index, static_cast<int64_t>(r), spans[r]});
      }
    }
    if (!split_found) {
      std::string all;
      for (const std::string& n : names) all += (all.empty() ? "" : ", ") + n;
      return invalid_argument("split '", options.split, "' is not in ", info_file, " (splits: ", all, ")");
    }
  } catch (const json::exception& e) {
    return io_error(info_file, ": unexpected layout: ", e.what());
  } catch (const std::invalid_argument& e) {
    return io_error(info_file, ": bad number: ", e.what());
  } catch (const std::out_of_range& e) {
    return io_error(info_file, ": number out of range: ", e.what());
  }
  *out = std::move(ds);
  return Status::ok();
}

struct RldsSchema {
  std::vector<FeatureSpec> features;
};

Status parse_rlds_features(const std::string& json_text, const std::string& file,
                           std::shared_ptr<const RldsSchema>* out) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    return io_error(file, ": invalid JSON at byte offset ", e.byte, ": ", e.what());
  }
  auto schema = std::make_shared<RldsSchema>();
  try {
    ROBOCACHE_RETURN_IF_ERROR(collect_all_features(j, file, &schema->features));
  } catch (const json::exception& e) {
    return io_error(file, ": unexpected layout: ", e.what());
  }
  *out = std::move(schema);
  return Status::ok();
}

Status decode_rlds_record(const RldsSchema& schema, const uint8_t* data, size_t size, const std::string& where,
                          double rate_hz, Episode* out) {
  tfexample::Example ex;
  if (size > static_cast<size_t>(INT32_MAX)) return io_error(where, ": record of ", size, " bytes exceeds protobuf's 2 GiB limit");
  if (!ex.ParseFromArray(data, static_cast<int>(size)))
    return io_error(where, ": malformed tf.train.Example (protobuf parse failed)");
  *out = Episode{};
  return decode_example(schema.features, rate_hz, ex, where, out);
}

}  // namespace robocache::io
#endif  // ROBOCACHE_WITH_RLDS
