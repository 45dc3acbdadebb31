#ifdef ROBOCACHE_LEROBOT_PLUGIN
// LeRobot reader, v2.0/v2.1 and v3.0. Common to both: meta/info.json (codebase_version, fps, robot type,
// data_path / video_path templates, features); every non-video column of the data parquet becomes a stream
// [S, ...] (fixed-size or equal-length lists become [S, n]), and the `timestamp` column gives every stream
// its timestamps (float64 s). Video features become Episode::videos (decoded on request by video.cpp).
// - v2.x: meta/episodes.jsonl (index, tasks, length), one parquet file per episode
//   (data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet) and one mp4 per episode and camera.
// - v3.0: meta/episodes/chunk-XXX/file-XXX.parquet, one row per episode (episode_index, length, tasks,
//   data/chunk_index, data/file_index, dataset_from_index, dataset_to_index, and per camera
//   videos/<key>/chunk_index, file_index, from_timestamp, to_timestamp); data/chunk-XXX/file-XXX.parquet
//   holds many episodes (the rows with that episode_index), videos/<key>/chunk-XXX/file-XXX.mp4 many
//   episodes back to back (the episode's frames lie in [from_timestamp, to_timestamp) of the file).
// Parquet goes through Apache Arrow / Parquet C++.
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
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <variant>

#include "io/file.h"
#include "io/json_file.h"
#include "io/readers.h"

namespace robocache::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct VideoEntry {
  std::string path;
  double from = 0.0, to = std::numeric_limits<double>::infinity();
};

struct EpisodeEntry {
  int64_t index = 0;
  int64_t length = 0;
  std::vector<std::string> tasks;
  std::string data_file;
  int64_t from_index = -1;        // v3.0: global `index` of the episode's first frame
  std::vector<std::string> next_data_files;  // v3.0: where to look when data_file lacks the episode (below)
  std::vector<VideoEntry> videos;  // one per LeRobotDataset::video_features_
};

struct VideoFeature {
  std::string key, codec;
  double fps = 0.0;
};

// Fills a path template of the Python str.format kind: "{name}" or "{name:03d}" (integers, zero-padded).
using TemplateValue = std::variant<int64_t, std::string>;
Status format_template(const std::string& tmpl, const std::map<std::string, TemplateValue>& values,
                       const std::string& where, std::string* out) {
  std::string r;
  for (size_t p = 0; p < tmpl.size();) {
    const size_t open = tmpl.find('{', p);
    if (open == std::string::npos) {
      r += tmpl.substr(p);
      break;
    }
    r += tmpl.substr(p, open - p);
    const size_t close = tmpl.find('}', open);
    if (close == std::string::npos) return io_error(where, ": unbalanced '{' in path template '", tmpl, "'");
    std::string field = tmpl.substr(open + 1, close - open - 1), spec;
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    auto it = values.find(field);
    if (it == values.end()) return io_error(where, ": path template '", tmpl, "' names an unknown field '", field, "'");
    if (const auto* i = std::get_if<int64_t>(&it->second)) {
      int width = 0;
      if (!spec.empty()) {
        if (spec.back() != 'd') return io_error(where, ": path template '", tmpl, "': format '", spec, "' is not an integer format");
        width = std::atoi(spec.c_str());
      }
      char buf[40];
      std::snprintf(buf, sizeof buf, "%0*lld", width, static_cast<long long>(*i));
      r += buf;
    } else {
      r += std::get<std::string>(it->second);
    }
    p = close + 1;
  }
  *out = std::move(r);
  return Status::ok();
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


// A string field that may be absent or null ("video_path": null in datasets without videos).
std::string optional_string(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// ---- Arrow helpers for the metadata tables ----

Status open_parquet(const std::string& file, std::unique_ptr<parquet::arrow::FileReader>* out) {
  auto infile = arrow::io::ReadableFile::Open(file);
  if (!infile.ok()) return io_error(file, ": cannot open: ", infile.status().ToString());
  auto reader = parquet::arrow::OpenFile(*infile, arrow::default_memory_pool());
  if (!reader.ok()) return io_error(file, ": not a readable parquet file: ", reader.status().ToString());
  *out = std::move(*reader);
  return Status::ok();
}

// The whole file, or only `columns` (by name; each must exist).
Status read_parquet(const std::string& file, const std::vector<std::string>* columns, std::shared_ptr<arrow::Table>* out) {
  try {
    std::unique_ptr<parquet::arrow::FileReader> reader;
    ROBOCACHE_RETURN_IF_ERROR(open_parquet(file, &reader));
    std::shared_ptr<arrow::Table> table;
    if (columns) {
      std::shared_ptr<arrow::Schema> schema;
      const arrow::Status st = reader->GetSchema(&schema);
      if (!st.ok()) return io_error(file, ": cannot read the schema: ", st.ToString());
      std::vector<int> indices;
      for (const std::string& c : *columns) {
        const int i = schema->GetFieldIndex(c);
        if (i < 0) return io_error(file, ": has no column '", c, "'");
        indices.push_back(i);
      }
#if ARROW_VERSION_MAJOR >= 24
      auto read = reader->ReadTable(indices);
      if (!read.ok()) return io_error(file, ": cannot read: ", read.status().ToString());
      table = *read;
#else
      const arrow::Status rs = reader->ReadTable(indices, &table);
      if (!rs.ok()) return io_error(file, ": cannot read: ", rs.ToString());
#endif
    } else {
#if ARROW_VERSION_MAJOR >= 24
      auto read = reader->ReadTable();
      if (!read.ok()) return io_error(file, ": cannot read: ", read.status().ToString());
      table = *read;
#else
      const arrow::Status rs = reader->ReadTable(&table);
      if (!rs.ok()) return io_error(file, ": cannot read: ", rs.ToString());
#endif
    }
    *out = std::move(table);
  } catch (const std::exception& ex) {  // parquet::ParquetException on corrupt pages
    return io_error(file, ": corrupt parquet: ", ex.what());
  }
  return Status::ok();
}

// An integer or floating-point column as doubles / int64 (no nulls).
template <class T>
Status numeric_column(const arrow::Table& table, const std::string& name, const std::string& file, std::vector<T>* out) {
  auto col = table.GetColumnByName(name);
  if (!col) return io_error(file, ": has no column '", name, "'");
  if (col->null_count() > 0) return io_error(file, ": column '", name, "' has ", col->null_count(), " null values");
  out->clear();
  out->reserve(col->length());
  for (const auto& chunk : col->chunks()) {
    for (int64_t i = 0; i < chunk->length(); ++i) {
      switch (chunk->type_id()) {
        case arrow::Type::INT64: out->push_back(static_cast<T>(static_cast<const arrow::Int64Array&>(*chunk).Value(i))); break;
        case arrow::Type::INT32: out->push_back(static_cast<T>(static_cast<const arrow::Int32Array&>(*chunk).Value(i))); break;
        case arrow::Type::UINT32: out->push_back(static_cast<T>(static_cast<const arrow::UInt32Array&>(*chunk).Value(i))); break;
        case arrow::Type::INT16: out->push_back(static_cast<T>(static_cast<const arrow::Int16Array&>(*chunk).Value(i))); break;
        case arrow::Type::DOUBLE: out->push_back(static_cast<T>(static_cast<const arrow::DoubleArray&>(*chunk).Value(i))); break;
        case arrow::Type::FLOAT: out->push_back(static_cast<T>(static_cast<const arrow::FloatArray&>(*chunk).Value(i))); break;
        default: return io_error(file, ": column '", name, "' has type ", chunk->type()->ToString(), ", not a number");
      }
    }
  }
  return Status::ok();
}

// A list<string> column (an episode's tasks); a plain string column gives one-element lists.
Status string_list_column(const arrow::Table& table, const std::string& name, const std::string& file,
                          std::vector<std::vector<std::string>>* out) {
  auto col = table.GetColumnByName(name);
  if (!col) return io_error(file, ": has no column '", name, "'");
  out->clear();
  for (const auto& chunk : col->chunks()) {
    for (int64_t i = 0; i < chunk->length(); ++i) {
      std::vector<std::string> items;
      if (chunk->IsNull(i)) {
      } else if (chunk->type_id() == arrow::Type::STRING) {
        items.push_back(static_cast<const arrow::StringArray&>(*chunk).GetString(i));
      } else if (chunk->type_id() == arrow::Type::LARGE_STRING) {
        items.push_back(static_cast<const arrow::LargeStringArray&>(*chunk).GetString(i));
      } else if (chunk->type_id() == arrow::Type::LIST || chunk->type_id() == arrow::Type::LARGE_LIST) {
        std::shared_ptr<arrow::Array> values;
        if (chunk->type_id() == arrow::Type::LIST) values = static_cast<const arrow::ListArray&>(*chunk).value_slice(i);
        else values = static_cast<const arrow::LargeListArray&>(*chunk).value_slice(i);
        for (int64_t j = 0; j < values->length(); ++j) {
          if (values->type_id() == arrow::Type::STRING) items.push_back(static_cast<const arrow::StringArray&>(*values).GetString(j));
          else if (values->type_id() == arrow::Type::LARGE_STRING) items.push_back(static_cast<const arrow::LargeStringArray&>(*values).GetString(j));
          else return io_error(file, ": column '", name, "' is a list of ", values->type()->ToString(), ", not of strings");
        }
      } else {
        return io_error(file, ": column '", name, "' has type ", chunk->type()->ToString(), ", not a list of strings");
      }
      out->push_back(std::move(items));
    }
  }
  return Status::ok();
}

// A v3.0 data file in memory, with each episode's rows.
struct DataFile {
  std::shared_ptr<arrow::Table> table;
  std::map<int64_t, std::pair<int64_t, int64_t>> rows;  // episode_index -> (first row, row count)
};

Status load_data_file(const std::string& file, DataFile* out) {
  DataFile d;
  ROBOCACHE_RETURN_IF_ERROR(read_parquet(file, nullptr, &d.table));
  std::vector<int64_t> ep;
  ROBOCACHE_RETURN_IF_ERROR(numeric_column(*d.table, "episode_index", file, &ep));
  for (int64_t r = 0; r < static_cast<int64_t>(ep.size());) {
    int64_t e = r;
    while (e < static_cast<int64_t>(ep.size()) && ep[e] == ep[r]) ++e;
    if (!d.rows.emplace(ep[r], std::make_pair(r, e - r)).second)
      return io_error(file, ": the rows of episode ", ep[r], " are not contiguous (again at row ", r, ")");
    r = e;
  }
  *out = std::move(d);
  return Status::ok();
}

class LeRobotDataset final : public Dataset {
 public:
  std::string format() const override { return "lerobot"; }
  std::string path() const override { return dir_.string(); }
  int64_t num_episodes() const override { return static_cast<int64_t>(episodes_.size()); }

  Status read_episode_at(int64_t index, Episode* out) const override {
    const EpisodeEntry& e = episodes_[index];
    std::string file = e.data_file;
    std::shared_ptr<arrow::Table> table;
    if (!v3_) {
      ROBOCACHE_RETURN_IF_ERROR(read_parquet(file, nullptr, &table));
      if (table->num_rows() != e.length)
        return io_error(file, ": holds ", table->num_rows(), " frames, meta/episodes.jsonl says ", e.length, " for episode ", e.index);
    } else {
      std::shared_ptr<const DataFile> d;
      ROBOCACHE_RETURN_IF_ERROR(data_file(file, &d));
      auto it = d->rows.find(e.index);
      // LeRobot's v2.1 -> v3.0 converter (lerobot 0.4.x, huggingface/lerobot issue #2401) names the previous
      // data file for the first episode of each new file; such datasets are common, so the next file is
      // tried. The episode's rows are identified by their episode_index column either way.
      for (size_t k = 0; it == d->rows.end() && k < e.next_data_files.size(); ++k) {
        std::shared_ptr<const DataFile> next;
        ROBOCACHE_RETURN_IF_ERROR(data_file(e.next_data_files[k], &next));
        if (auto jt = next->rows.find(e.index); jt != next->rows.end()) {
          d = next;
          it = jt;
          file = e.next_data_files[k];
        }
      }
      if (it == d->rows.end()) return io_error(file, ": holds no rows of episode ", e.index, " (meta/episodes names this file)");
      const auto [row, count] = it->second;
      if (count != e.length)
        return io_error(file, ": holds ", count, " frames of episode ", e.index, ", meta/episodes says ", e.length);
      table = d->table->Slice(row, count);
      if (auto idx = table->GetColumnByName("index"); idx && count > 0) {
        std::vector<int64_t> first;
        ROBOCACHE_RETURN_IF_ERROR(numeric_column(*table->Slice(0, 1), "index", file, &first));
        if (first[0] != e.from_index)
          return io_error(file, ": episode ", e.index, " starts at index ", first[0], ", meta/episodes says dataset_from_index ", e.from_index);
      }
    }
    Episode ep;
    ep.index = index;
    ep.metadata.source_file = file;
    ep.metadata.source_key = "episode_index " + std::to_string(e.index);
    ep.metadata.robot_type = robot_type_;
    if (!e.tasks.empty()) ep.metadata.task = ep.metadata.language_instruction = e.tasks[0];
    for (size_t t = 1; t < e.tasks.size(); ++t) ep.metadata.extra["task_" + std::to_string(t)] = e.tasks[t];
    for (size_t k = 0; k < video_features_.size(); ++k) {
      const VideoFeature& f = video_features_[k];
      EpisodeVideo v;
      v.name = f.key;
      v.path = e.videos[k].path;
      v.from_timestamp = e.videos[k].from;
      v.to_timestamp = e.videos[k].to;
      v.fps = f.fps;
      v.codec = f.codec;
      v.episode_index = e.index;
      std::error_code ec;
      v.exists = fs::is_regular_file(v.path, ec);
      ep.metadata.extra["video/" + f.key] = v.path + (v.exists ? "" : " (missing)");
      ep.videos.push_back(std::move(v));
    }
    Array timestamps;
    bool have_time = false;
    const auto& schema = *table->schema();
    for (int c = 0; c < table->num_columns(); ++c) {
      EpisodeStream s;
      s.name = schema.field(c)->name();
      if (v3_ && s.name == "__index_level_0__") continue;  // a pandas index written along, not a feature
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

  // v3.0: the data file, from a small cache of the most recently used ones (a file holds many episodes,
  // and reading episodes in order then reads each file once).
  Status data_file(const std::string& file, std::shared_ptr<const DataFile>* out) const {
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      for (auto it = cache_.begin(); it != cache_.end(); ++it) {
        if (it->first == file) {
          cache_.splice(cache_.begin(), cache_, it);
          *out = cache_.front().second;
          return Status::ok();
        }
      }
    }
    auto d = std::make_shared<DataFile>();
    ROBOCACHE_RETURN_IF_ERROR(load_data_file(file, d.get()));
    std::lock_guard<std::mutex> lock(cache_mutex_);
    cache_.emplace_front(file, d);
    while (cache_.size() > kCachedFiles) cache_.pop_back();
    *out = d;
    return Status::ok();
  }

  static constexpr size_t kCachedFiles = 2;
  fs::path dir_;
  bool v3_ = false;
  std::string robot_type_;
  double rate_hz_ = 0;
  std::vector<VideoFeature> video_features_;
  std::vector<EpisodeEntry> episodes_;
  mutable std::mutex cache_mutex_;
  mutable std::list<std::pair<std::string, std::shared_ptr<const DataFile>>> cache_;
};

// v2.x: meta/episodes.jsonl, one parquet and one video per camera per episode.
Status read_episodes_v2(LeRobotDataset* ds, const json& info, const std::string& info_file, int64_t lo, int64_t hi) {
  const std::string data_path = info.at("data_path").get<std::string>();
  const std::string video_path = optional_string(info, "video_path");
  const int64_t chunks_size = info.value("chunks_size", int64_t{1000});
  if (chunks_size <= 0) return io_error(info_file, ": chunks_size must be > 0, got ", chunks_size);
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
    const int64_t chunk = e.index / chunks_size;
    std::string rel;
    ROBOCACHE_RETURN_IF_ERROR(format_template(data_path, {{"episode_chunk", chunk}, {"episode_index", e.index}}, info_file, &rel));
    e.data_file = (ds->dir_ / rel).string();
    if (!fs::exists(e.data_file))
      return io_error(e.data_file, ": missing parquet file of episode ", e.index, " (listed in ", episodes_file.string(), ")");
    for (const VideoFeature& f : ds->video_features_) {
      ROBOCACHE_RETURN_IF_ERROR(format_template(
          video_path, {{"episode_chunk", chunk}, {"episode_index", e.index}, {"video_key", f.key}}, info_file, &rel));
      e.videos.push_back(VideoEntry{(ds->dir_ / rel).string()});
    }
    ds->episodes_.push_back(std::move(e));
  }
  return Status::ok();
}

// v3.0: meta/episodes/chunk-*/file-*.parquet; data and video files shared by many episodes.
Status read_episodes_v3(LeRobotDataset* ds, const json& info, const std::string& info_file, int64_t lo, int64_t hi) {
  const std::string data_path = info.at("data_path").get<std::string>();
  const std::string video_path = optional_string(info, "video_path");
  const fs::path meta_dir = ds->dir_ / "meta" / "episodes";
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(meta_dir, ec))
    for (const auto& entry : fs::recursive_directory_iterator(meta_dir, ec))
      if (entry.is_regular_file() && entry.path().extension() == ".parquet") files.push_back(entry.path().string());
  if (files.empty()) return io_error(meta_dir.string(), ": no episode metadata (meta/episodes/chunk-*/file-*.parquet) for a v3.0 dataset");
  std::sort(files.begin(), files.end());
  std::map<std::string, bool> data_files;  // existence, asked once per file
  auto exists = [&data_files](const std::string& f) {
    auto [it, fresh] = data_files.emplace(f, false);
    if (fresh) it->second = fs::exists(f);
    return it->second;
  };
  for (const std::string& file : files) {
    std::vector<std::string> columns = {"episode_index", "length", "data/chunk_index", "data/file_index",
                                        "dataset_from_index", "dataset_to_index"};
    for (const VideoFeature& f : ds->video_features_)
      for (const char* c : {"chunk_index", "file_index", "from_timestamp", "to_timestamp"})
        columns.push_back("videos/" + f.key + "/" + c);
    bool has_tasks = false;
    {
      std::unique_ptr<parquet::arrow::FileReader> reader;
      ROBOCACHE_RETURN_IF_ERROR(open_parquet(file, &reader));
      std::shared_ptr<arrow::Schema> schema;
      if (!reader->GetSchema(&schema).ok()) return io_error(file, ": cannot read the schema");
      has_tasks = schema->GetFieldIndex("tasks") >= 0;
    }
    if (has_tasks) columns.push_back("tasks");
    std::shared_ptr<arrow::Table> t;
    ROBOCACHE_RETURN_IF_ERROR(read_parquet(file, &columns, &t));
    std::vector<int64_t> index, length, chunk, fidx, from, to;
    ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, "episode_index", file, &index));
    ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, "length", file, &length));
    ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, "data/chunk_index", file, &chunk));
    ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, "data/file_index", file, &fidx));
    ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, "dataset_from_index", file, &from));
    ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, "dataset_to_index", file, &to));
    std::vector<std::vector<std::string>> tasks;
    if (has_tasks) ROBOCACHE_RETURN_IF_ERROR(string_list_column(*t, "tasks", file, &tasks));
    struct VideoCols { std::vector<int64_t> chunk, file; std::vector<double> from, to; };
    std::vector<VideoCols> vcols(ds->video_features_.size());
    for (size_t k = 0; k < vcols.size(); ++k) {
      const std::string p = "videos/" + ds->video_features_[k].key + "/";
      ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, p + "chunk_index", file, &vcols[k].chunk));
      ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, p + "file_index", file, &vcols[k].file));
      ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, p + "from_timestamp", file, &vcols[k].from));
      ROBOCACHE_RETURN_IF_ERROR(numeric_column(*t, p + "to_timestamp", file, &vcols[k].to));
    }
    for (size_t r = 0; r < index.size(); ++r) {
      if (index[r] < lo || index[r] >= hi) continue;
      EpisodeEntry e;
      e.index = index[r];
      e.length = length[r];
      e.from_index = from[r];
      if (to[r] - from[r] != length[r]) {
        return io_error(file, ": episode ", e.index, ": dataset_to_index - dataset_from_index = ", to[r] - from[r],
                        " but length = ", length[r]);
      }
      if (has_tasks) e.tasks = tasks[r];
      std::string rel;
      ROBOCACHE_RETURN_IF_ERROR(format_template(data_path, {{"chunk_index", chunk[r]}, {"file_index", fidx[r]}}, info_file, &rel));
      e.data_file = (ds->dir_ / rel).string();
      if (!exists(e.data_file))
        return io_error(e.data_file, ": missing data file of episode ", e.index, " (named in ", file, ")");
      // The files that follow (next file of the chunk, first file of the next chunk), for the converter
      // bug handled in read_episode_at.
      for (const auto& [c, f] : {std::make_pair(chunk[r], fidx[r] + 1), std::make_pair(chunk[r] + 1, int64_t{0})}) {
        ROBOCACHE_RETURN_IF_ERROR(format_template(data_path, {{"chunk_index", c}, {"file_index", f}}, info_file, &rel));
        const std::string next = (ds->dir_ / rel).string();
        if (exists(next)) e.next_data_files.push_back(next);
      }
      for (size_t k = 0; k < vcols.size(); ++k) {
        ROBOCACHE_RETURN_IF_ERROR(format_template(
            video_path, {{"chunk_index", vcols[k].chunk[r]}, {"file_index", vcols[k].file[r]}, {"video_key", ds->video_features_[k].key}},
            info_file, &rel));
        const double vf = vcols[k].from[r], vt = vcols[k].to[r];
        if (!(vf >= 0) || !(vt >= vf))
          return io_error(file, ": episode ", e.index, ": videos/", ds->video_features_[k].key, " from_timestamp ", vf,
                          " and to_timestamp ", vt, " do not form a range");
        e.videos.push_back(VideoEntry{(ds->dir_ / rel).string(), vf, vt});
      }
      ds->episodes_.push_back(std::move(e));
    }
  }
  return Status::ok();
}

}  // namespace

Status open_lerobot(const std::string& dir, const DatasetOptions& options, std::unique_ptr<Dataset>* out) {
  auto ds = std::make_unique<LeRobotDataset>();
  ds->dir_ = dir;
  const fs::path info_path = ds->dir_ / "meta" / "info.json";
  const std::string info_file = info_path.string();
  json info;
  ROBOCACHE_RETURN_IF_ERROR(read_json_file(info_file, &info));
  try {
    const std::string version = info.value("codebase_version", std::string());
    if (version.rfind("v2.", 0) == 0) {
      ds->v3_ = false;
    } else if (version.rfind("v3.", 0) == 0) {
      ds->v3_ = true;
    } else {
      return io_error(info_file, ": codebase_version '", version, "' is not supported; this reader reads LeRobot v2.0, v2.1 and v3.0");
    }
    ds->robot_type_ = info.value("robot_type", std::string());
    const double fps = info.value("fps", 0.0);
    ds->rate_hz_ = options.rate_hz > 0 ? options.rate_hz : fps;
    for (auto it = info.at("features").begin(); it != info.at("features").end(); ++it) {
      if (it.value().value("dtype", std::string()) != "video") continue;
      VideoFeature f;
      f.key = it.key();
      f.fps = fps;
      if (it.value().contains("info") && it.value()["info"].is_object()) {
        const json& vi = it.value()["info"];
        if (vi.contains("video.fps") && vi["video.fps"].is_number()) f.fps = vi["video.fps"].get<double>();
        if (vi.contains("video.codec") && vi["video.codec"].is_string()) f.codec = vi["video.codec"].get<std::string>();
      }
      ds->video_features_.push_back(std::move(f));
    }
    if (!ds->video_features_.empty() && optional_string(info, "video_path").empty())
      return io_error(info_file, ": features name videos (", ds->video_features_[0].key, ") but video_path is missing");
    // Episodes, optionally restricted to a split "first:last" (half-open) from info.json.
    int64_t lo = 0, hi = INT64_MAX;
    if (!options.split.empty()) {
      if (!info.contains("splits") || !info["splits"].contains(options.split))
        return invalid_argument("split '", options.split, "' is not in ", info_file, " (splits: ", info.value("splits", json::object()).dump(), ")");
      const std::string range = info["splits"][options.split].get<std::string>();
      const size_t colon = range.find(':');
      if (colon == std::string::npos) return io_error(info_file, ": split '", options.split, "' is '", range, "', not 'first:last'");
      lo = std::stoll(range.substr(0, colon));
      hi = std::stoll(range.substr(colon + 1));
    }
    ROBOCACHE_RETURN_IF_ERROR(ds->v3_ ? read_episodes_v3(ds.get(), info, info_file, lo, hi)
                                      : read_episodes_v2(ds.get(), info, info_file, lo, hi));
    std::sort(ds->episodes_.begin(), ds->episodes_.end(), [](const EpisodeEntry& a, const EpisodeEntry& b) { return a.index < b.index; });
    for (size_t i = 1; i < ds->episodes_.size(); ++i)
      if (ds->episodes_[i].index == ds->episodes_[i - 1].index)
        return io_error(ds->dir_.string(), ": episode ", ds->episodes_[i].index, " is listed twice in the episode metadata");
  } catch (const json::exception& e) {
    return io_error(info_file, ": unexpected layout: ", e.what());
  } catch (const std::exception& e) {
    return io_error(info_file, ": ", e.what());
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
