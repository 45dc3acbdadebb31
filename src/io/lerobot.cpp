#ifdef ROBOCACHE_LEROBOT_PLUGIN
// LeRobot v2.x reader: meta/info.json (fps, robot type, path templates, features), meta/episodes.jsonl
// (index, tasks, length), one parquet file per episode read through Apache Arrow / Parquet C++. Every
// non-video column becomes a stream [S, ...] (fixed-size or equal-length lists become [S, n]); the
// `timestamp` column gives every stream its timestamps (float64 s). Video features are listed in the
// metadata with their paths; decoding them (FFmpeg) is not part of this reader yet.
// Built as its own plugin, librobocache_lerobot.so, which open.cpp loads on the first LeRobot dataset:
// pyarrow's libparquet exports a bundled OpenSSL, and in the module's own link scope it would take over
// libcrypto's symbols (through libhdf5 -> libcurl) and crash a later `import hashlib`. Loaded alone, with
// RTLD_LOCAL, it shares no scope with libcrypto, and a pyarrow upgrade breaks only this reader, not
// `import robocache`.
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/util/config.h>
#include <parquet/arrow/reader.h>
#include <parquet/exception.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include "io/file.h"
#include "io/json_file.h"

#include "io/readers.h"

namespace robocache::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct EpisodeEntry {
  int64_t index = 0;
  int64_t length = 0;
  std::vector<std::string> tasks;
};

std::string format_path(std::string tmpl, int64_t chunk, int64_t episode, const std::string& video_key) {
  auto replace = [&tmpl](const std::string& name, const std::string& value) {
    for (size_t p; (p = tmpl.find(name)) != std::string::npos;) {
      const size_t close = tmpl.find('}', p);
      tmpl.replace(p, close - p + 1, value);
    }
  };
  char buf[32];
  std::snprintf(buf, sizeof buf, "%03lld", static_cast<long long>(chunk));
  replace("{episode_chunk", buf);
  std::snprintf(buf, sizeof buf, "%06lld", static_cast<long long>(episode));
  replace("{episode_index", buf);
  replace("{video_key", video_key);
  return tmpl;
}

Status map_arrow_type(const arrow::DataType& t, DType* out) {
  switch (t.id()) {
    case arrow::Type::HALF_FLOAT: *out = DType::Float16; return Status::ok();
    case arrow::Type::FLOAT: *out = DType::Float32; return Status::ok();
    case arrow::Type::DOUBLE: *out = DType::Float64; return Status::ok();
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::UINT16:
    case arrow::Type::INT32: *out = DType::Int32; return Status::ok();
    case arrow::Type::UINT32:
    case arrow::Type::INT64: *out = DType::Int64; return Status::ok();
    case arrow::Type::UINT8: *out = DType::UInt8; return Status::ok();
    case arrow::Type::BOOL: *out = DType::Bool; return Status::ok();
    default: return type_error("arrow type ", t.ToString());
  }
}

// values[start : start + count] (a primitive Arrow array) into `dst` as `dtype`.
void copy_values(const arrow::Array& values, int64_t start, int64_t count, DType dtype, uint8_t* dst) {
  const size_t es = dtype_size(dtype);
  if (values.type_id() == arrow::Type::BOOL) {
    const auto& b = static_cast<const arrow::BooleanArray&>(values);
    for (int64_t i = 0; i < count; ++i) dst[i] = b.Value(start + i) ? 1 : 0;
    return;
  }
  const auto& prim = static_cast<const arrow::PrimitiveArray&>(values);
  const int width = prim.type()->byte_width();
  const uint8_t* src = prim.values()->data() + (prim.offset() + start) * width;
  if (static_cast<size_t>(width) == es) {
    std::memcpy(dst, src, count * es);
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* e = src + i * width;
    int64_t v = 0;
    switch (values.type_id()) {
      case arrow::Type::INT8: v = static_cast<int8_t>(*e); break;
      case arrow::Type::INT16: { int16_t x; std::memcpy(&x, e, 2); v = x; break; }
      case arrow::Type::UINT16: { uint16_t x; std::memcpy(&x, e, 2); v = x; break; }
      case arrow::Type::UINT32: { uint32_t x; std::memcpy(&x, e, 4); v = x; break; }
      default: break;
    }
    if (es == 4) { const int32_t x = static_cast<int32_t>(v); std::memcpy(dst + i * 4, &x, 4); }
    else std::memcpy(dst + i * 8, &v, 8);
  }
}

// One column (all chunks) into a stream array [S] or [S, n].
Status column_to_array(const arrow::ChunkedArray& col, const std::string& where, Array* out) {
  const auto& type = *col.type();
  const int64_t S = col.length();
  if (col.null_count() > 0) return io_error(where, ": has ", col.null_count(), " null values; streams cannot hold nulls");
  DType dtype;
  if (type.id() == arrow::Type::FIXED_SIZE_LIST || type.id() == arrow::Type::LIST || type.id() == arrow::Type::LARGE_LIST) {
    const auto& value_type = *type.field(0)->type();
    if (!map_arrow_type(value_type, &dtype).is_ok())
      return io_error(where, ": list of ", value_type.ToString(), " is not a type the episode model holds");
    int64_t n = -1;
    for (const auto& chunk : col.chunks()) {
      for (int64_t i = 0; i < chunk->length(); ++i) {
        int64_t len = 0;
        if (type.id() == arrow::Type::FIXED_SIZE_LIST) len = static_cast<const arrow::FixedSizeListArray&>(*chunk).value_length(i);
        else if (type.id() == arrow::Type::LIST) len = static_cast<const arrow::ListArray&>(*chunk).value_length(i);
        else len = static_cast<const arrow::LargeListArray&>(*chunk).value_length(i);
        if (n >= 0 && len != n) return io_error(where, ": lists of different lengths (", n, " and ", len, ") cannot form [S, n]");
        n = len;
      }
    }
    if (n < 0) n = type.id() == arrow::Type::FIXED_SIZE_LIST ? static_cast<const arrow::FixedSizeListType&>(type).list_size() : 0;
    Array a = Array::empty(dtype, {S, n});
    uint8_t* dst = a.ptr<uint8_t>();
    const size_t row = n * dtype_size(dtype);
    for (const auto& chunk : col.chunks()) {
      const arrow::Array* values = nullptr;
      for (int64_t i = 0; i < chunk->length(); ++i, dst += row) {
        int64_t off = 0;
        if (type.id() == arrow::Type::FIXED_SIZE_LIST) {
          const auto& l = static_cast<const arrow::FixedSizeListArray&>(*chunk);
          values = l.values().get();
          off = l.value_offset(i);
        } else if (type.id() == arrow::Type::LIST) {
          const auto& l = static_cast<const arrow::ListArray&>(*chunk);
          values = l.values().get();
          off = l.value_offset(i);
        } else {
          const auto& l = static_cast<const arrow::LargeListArray&>(*chunk);
          values = l.values().get();
          off = l.value_offset(i);
        }
        if (values->null_count() > 0) return io_error(where, ": list values hold nulls");
        copy_values(*values, off, n, dtype, dst);
      }
    }
    *out = std::move(a);
    return Status::ok();
  }
  if (!map_arrow_type(type, &dtype).is_ok())
    return io_error(where, ": type ", type.ToString(), " is not a type the episode model holds");
  Array a = Array::empty(dtype, {S});
  uint8_t* dst = a.ptr<uint8_t>();
  for (const auto& chunk : col.chunks()) {
    copy_values(*chunk, 0, chunk->length(), dtype, dst);
    dst += chunk->length() * dtype_size(dtype);
  }
  *out = std::move(a);
  return Status::ok();
}

Status read_json_file(const fs::path& file, json* out) { return io::read_json_file(file.string(), out); }

class LeRobotDataset final : public Dataset {
 public:
  std::string format() const override { return "lerobot"; }
  std::string path() const override { return dir_.string(); }
  int64_t num_episodes() const override { return static_cast<int64_t>(episodes_.size()); }

  Status read_episode_at(int64_t index, Episode* out) const override {
    const EpisodeEntry& e = episodes_[index];
    const int64_t chunk = e.index / chunks_size_;
    const std::string file = (dir_ / format_path(data_path_, chunk, e.index, "")).string();
    std::shared_ptr<arrow::Table> table;
    try {
      auto infile = arrow::io::ReadableFile::Open(file);
      if (!infile.ok()) return io_error(file, ": cannot open episode ", e.index, ": ", infile.status().ToString());
      auto reader = parquet::arrow::OpenFile(*infile, arrow::default_memory_pool());
      if (!reader.ok()) return io_error(file, ": not a readable parquet file: ", reader.status().ToString());
#if ARROW_VERSION_MAJOR >= 24
      auto read = (*reader)->ReadTable();
      if (!read.ok()) return io_error(file, ": cannot read: ", read.status().ToString());
      table = *read;
#else
      const arrow::Status st = (*reader)->ReadTable(&table);
      if (!st.ok()) return io_error(file, ": cannot read: ", st.ToString());
#endif
    } catch (const std::exception& ex) {  // parquet::ParquetException on corrupt pages
      return io_error(file, ": corrupt parquet: ", ex.what());
    }
    if (table->num_rows() != e.length)
      return io_error(file, ": holds ", table->num_rows(), " frames, meta/episodes.jsonl says ", e.length, " for episode ", e.index);
    Episode ep;
    ep.index = index;
    ep.metadata.source_file = file;
    ep.metadata.source_key = "episode_index " + std::to_string(e.index);
    ep.metadata.robot_type = robot_type_;
    if (!e.tasks.empty()) ep.metadata.task = ep.metadata.language_instruction = e.tasks[0];
    for (size_t t = 1; t < e.tasks.size(); ++t) ep.metadata.extra["task_" + std::to_string(t)] = e.tasks[t];
    for (const auto& [key, rel] : videos_) {
      const fs::path video = dir_ / format_path(rel, chunk, e.index, key);
      ep.metadata.extra["video/" + key] = video.string() + (fs::exists(video) ? "" : " (missing)");
    }
    Array timestamps;
    bool have_time = false;
    const auto& schema = *table->schema();
    for (int c = 0; c < table->num_columns(); ++c) {
      EpisodeStream s;
      s.name = schema.field(c)->name();
      ROBOCACHE_RETURN_IF_ERROR(column_to_array(*table->column(c), file + ": column '" + s.name + "'", &s.data));
      if (s.name == "timestamp") {
        if (s.data.shape.size() != 1 || (s.data.dtype != DType::Float32 && s.data.dtype != DType::Float64))
          return io_error(file, ": column 'timestamp' must be float seconds [S], got ", dtype_name(s.data.dtype), " ", s.data.shape_str());
        timestamps = Array::empty(DType::Float64, {s.data.shape[0]});
        for (int64_t i = 0; i < s.data.shape[0]; ++i)
          timestamps.ptr<double>()[i] = s.data.dtype == DType::Float32 ? static_cast<double>(s.data.ptr<float>()[i]) : s.data.ptr<double>()[i];
        have_time = true;
      }
      ep.streams.push_back(std::move(s));
    }
    for (EpisodeStream& s : ep.streams) {
      if (have_time) {
        s.timestamps = timestamps;  // shared buffer
        s.time_unit = TimeUnit::Seconds;
        s.time_source = TimeSource::Recorded;
      } else {
        set_step_timestamps(&s, rate_hz_);
      }
    }
    *out = std::move(ep);
    return Status::ok();
  }

  fs::path dir_;
  std::string data_path_, robot_type_;
  int64_t chunks_size_ = 1000;
  double rate_hz_ = 0;
  std::vector<std::pair<std::string, std::string>> videos_;  // feature key, video_path template
  std::vector<EpisodeEntry> episodes_;
};

}  // namespace

Status open_lerobot(const std::string& dir, const DatasetOptions& options, std::unique_ptr<Dataset>* out) {
  auto ds = std::make_unique<LeRobotDataset>();
  ds->dir_ = dir;
  const fs::path info_file = ds->dir_ / "meta" / "info.json";
  json info;
  ROBOCACHE_RETURN_IF_ERROR(read_json_file(info_file, &info));
  try {
    const std::string version = info.value("codebase_version", std::string());
    if (version.rfind("v2.", 0) != 0)
      return io_error(info_file.string(), ": codebase_version '", version, "' is not supported; this reader reads LeRobot v2.0 and v2.1");
    ds->data_path_ = info.at("data_path").get<std::string>();
    ds->chunks_size_ = info.value("chunks_size", int64_t{1000});
    if (ds->chunks_size_ <= 0) return io_error(info_file.string(), ": chunks_size must be > 0");
    ds->robot_type_ = info.value("robot_type", std::string());
    ds->rate_hz_ = options.rate_hz > 0 ? options.rate_hz : info.value("fps", 0.0);
    const std::string video_path = info.value("video_path", std::string());
    for (auto it = info.at("features").begin(); it != info.at("features").end(); ++it)
      if (it.value().value("dtype", std::string()) == "video") ds->videos_.emplace_back(it.key(), video_path);
    // Episodes, optionally restricted to a split "first:last" (half-open) from info.json.
    int64_t lo = 0, hi = INT64_MAX;
    if (!options.split.empty()) {
      if (!info.contains("splits") || !info["splits"].contains(options.split))
        return invalid_argument("split '", options.split, "' is not in ", info_file.string(), " (splits: ", info.value("splits", json::object()).dump(), ")");
      const std::string range = info["splits"][options.split].get<std::string>();
      const size_t colon = range.find(':');
      if (colon == std::string::npos) return io_error(info_file.string(), ": split '", options.split, "' is '", range, "', not 'first:last'");
      lo = std::stoll(range.substr(0, colon));
      hi = std::stoll(range.substr(colon + 1));
    }
    const fs::path episodes_file = ds->dir_ / "meta" / "episodes.jsonl";
    std::string text;
    ROBOCACHE_RETURN_IF_ERROR(read_file(episodes_file.string(), &text));
    size_t pos = 0;
    for (int64_t lineno = 1; pos < text.size(); ++lineno) {
      const size_t nl = std::min(text.find('\n', pos), text.size());
      const std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json j;
      try {
        j = json::parse(line);
      } catch (const json::parse_error& e) {
        return io_error(episodes_file.string(), ": line ", lineno, ": invalid JSON at byte ", e.byte);
      }
      EpisodeEntry e;
      try {
        e.index = j.at("episode_index").get<int64_t>();
        e.length = j.at("length").get<int64_t>();
        if (j.contains("tasks")) e.tasks = j["tasks"].get<std::vector<std::string>>();
      } catch (const json::exception& ex) {
        return io_error(episodes_file.string(), ": line ", lineno, ": ", ex.what());
      }
      if (e.index < lo || e.index >= hi) continue;
      const fs::path file = ds->dir_ / format_path(ds->data_path_, e.index / ds->chunks_size_, e.index, "");
      if (!fs::exists(file))
        return io_error(file.string(), ": missing parquet file of episode ", e.index, " (listed in ", episodes_file.string(), ")");
      ds->episodes_.push_back(std::move(e));
    }
    std::sort(ds->episodes_.begin(), ds->episodes_.end(), [](const EpisodeEntry& a, const EpisodeEntry& b) { return a.index < b.index; });
  } catch (const json::exception& e) {
    return io_error(info_file.string(), ": unexpected layout: ", e.what());
  } catch (const std::exception& e) {
    return io_error(info_file.string(), ": ", e.what());
  }
  *out = std::move(ds);
  return Status::ok();
}

}  // namespace robocache::io

// The plugin's entry points (the only exported symbols; everything else is hidden).
extern "C" __attribute__((visibility("default"))) int robocache_lerobot_abi() {
  return static_cast<int>(sizeof(robocache::Episode) * 1000 + sizeof(robocache::DatasetOptions));
}

extern "C" __attribute__((visibility("default"))) void robocache_lerobot_open(
    const char* dir, const robocache::DatasetOptions* options, std::unique_ptr<robocache::Dataset>* out,
    robocache::Status* status) {
  try {
    *status = robocache::io::open_lerobot(dir, *options, out);
  } catch (const std::exception& e) {
    *status = robocache::io_error(dir, ": LeRobot reader failed: ", e.what());
  }
}
#endif  // ROBOCACHE_LEROBOT_PLUGIN
