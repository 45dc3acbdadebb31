#ifdef ROBOCACHE_WITH_CALVIN
// CALVIN reader: one episode_XXXXXXX.npz per step (a zip of .npy members, read through libzip),
// ep_start_end_ids.npy listing each episode's first and last step (inclusive). Every step of an episode
// must hold the same keys with the same shapes; each key becomes one stream [S, ...].
// lang_annotations/auto_lang_ann.npy is a pickled Python dict, which this C++ reader does not unpickle;
// the Python view attaches it (robocache.datasets).
#include <zip.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/parallel.h"
#include "io/npy.h"
#include "io/readers.h"

namespace robocache::io {
namespace {

namespace fs = std::filesystem;

struct Member {
  std::string key;  // "rgb_static" (from "rgb_static.npy")
  Array array;
};

Status read_npz(const std::string& file, std::vector<Member>* out) {
  out->clear();
  int err = 0;
  zip_t* z = zip_open(file.c_str(), ZIP_RDONLY, &err);
  if (!z) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, err);
    Status s = io_error(file, ": cannot open as npz (zip): ", zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return s;
  }
  struct Closer {
    zip_t* z;
    ~Closer() { zip_discard(z); }
  } closer{z};
  const zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z, i, 0, &st) != 0) return io_error(file, ": zip entry ", i, ": ", zip_strerror(z));
    std::string name = st.name ? st.name : "";
    if (name.size() < 5 || name.compare(name.size() - 4, 4, ".npy") != 0)
      return io_error(file, ": member '", name, "' is not a .npy array");
    const std::string where = file + ": member '" + name + "'";
    if (!(st.valid & ZIP_STAT_SIZE)) return io_error(where, ": size unknown");
    if (st.size > (uint64_t(1) << 40)) return io_error(where, ": implausible size ", st.size);
    std::vector<uint8_t> buf(st.size);
    zip_file_t* f = zip_fopen_index(z, i, 0);
    if (!f) return io_error(where, ": ", zip_strerror(z));
    const zip_int64_t got = buf.empty() ? 0 : zip_fread(f, buf.data(), buf.size());
    const bool ok = got == static_cast<zip_int64_t>(buf.size());
    std::string ferr = ok ? "" : zip_error_strerror(zip_file_get_error(f));
    zip_fclose(f);
    if (!ok) return io_error(where, ": read ", got, " of ", buf.size(), " bytes: ", ferr);
    Member m;
    m.key = name.substr(0, name.size() - 4);
    ROBOCACHE_RETURN_IF_ERROR(parse_npy(buf.data(), buf.size(), where, &m.array));
    out->push_back(std::move(m));
  }
  return Status::ok();
}

std::string step_file(const fs::path& dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "episode_%07lld.npz", static_cast<long long>(step));
  return (dir / name).string();
}

class CalvinDataset final : public Dataset {
 public:
  std::string format() const override { return "calvin"; }
  std::string path() const override { return dir_.string(); }
  int64_t num_episodes() const override { return static_cast<int64_t>(ranges_.size()); }

  Status read_episode_at(int64_t index, Episode* out) const override {
    const int64_t first = ranges_[index].first, last = ranges_[index].second;
    const int64_t S = last - first + 1;
    std::vector<Member> head;
    const std::string first_file = step_file(dir_, first);
    if (!fs::exists(first_file))
      return io_error(first_file, ": missing step file of episode ", index, " (steps ", first, "-", last, " in ", ids_file_, ")");
    ROBOCACHE_RETURN_IF_ERROR(read_npz(first_file, &head));
    Episode ep;
    ep.index = index;
    ep.metadata.source_file = first_file;
    ep.metadata.source_key = "steps " + std::to_string(first) + "-" + std::to_string(last);
    ep.metadata.extra["first_step"] = std::to_string(first);
    ep.metadata.extra["last_step"] = std::to_string(last);
    for (const Member& m : head) {
      EpisodeStream s;
      s.name = m.key;
      std::vector<int64_t> shape = m.array.shape;
      shape.insert(shape.begin(), S);
      s.data = Array::empty(m.array.dtype, shape);
      if (m.array.nbytes()) std::memcpy(s.data.data(), m.array.data(), m.array.nbytes());
      ep.streams.push_back(std::move(s));
    }
    std::vector<Status> status(S);
    core::parallel_for(1, S, 1, [&](int64_t b, int64_t e) {
      std::vector<Member> members;
      for (int64_t i = b; i < e; ++i) {
        const std::string file = step_file(dir_, first + i);
        if (!fs::exists(file)) {
          status[i] = io_error(file, ": missing step file of episode ", index, " (steps ", first, "-", last, " in ", ids_file_, ")");
          continue;
        }
        status[i] = read_npz(file, &members);
        if (!status[i].is_ok()) continue;
        if (members.size() != head.size()) {
          status[i] = io_error(file, ": holds ", members.size(), " arrays, the episode's first step ", first_file, " holds ", head.size());
          continue;
        }
        for (const Member& m : members) {
          size_t k = 0;
          while (k < head.size() && head[k].key != m.key) ++k;
          if (k == head.size()) {
            status[i] = io_error(file, ": key '", m.key, "' is not in the episode's first step ", first_file);
            break;
          }
          const EpisodeStream& s = ep.streams[k];
          if (m.array.dtype != head[k].array.dtype || m.array.shape != head[k].array.shape) {
            status[i] = io_error(file, ": key '", m.key, "' is ", dtype_name(m.array.dtype), " ", m.array.shape_str(),
                                 ", but ", dtype_name(head[k].array.dtype), " ", head[k].array.shape_str(),
                                 " in the episode's first step ", first_file);
            break;
          }
          if (m.array.nbytes()) std::memcpy(s.data.ptr<uint8_t>() + i * m.array.nbytes(), m.array.data(), m.array.nbytes());
        }
      }
    });
    for (const Status& s : status) ROBOCACHE_RETURN_IF_ERROR(s);
    for (EpisodeStream& s : ep.streams) set_step_timestamps(&s, options_.rate_hz);
    *out = std::move(ep);
    return Status::ok();
  }

  fs::path dir_;
  std::string ids_file_;
  DatasetOptions options_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;
};

}  // namespace

Status open_calvin(const std::string& dir, const DatasetOptions& options, std::unique_ptr<Dataset>* out) {
  auto ds = std::make_unique<CalvinDataset>();
  ds->dir_ = dir;
  ds->options_ = options;
  ds->ids_file_ = (fs::path(dir) / "ep_start_end_ids.npy").string();
  Array ids;
  ROBOCACHE_RETURN_IF_ERROR(read_npy_file(ds->ids_file_, &ids));
  if (ids.shape.size() != 2 || ids.shape[1] != 2 || (ids.dtype != DType::Int64 && ids.dtype != DType::Int32))
    return io_error(ds->ids_file_, ": must be an integer array [E, 2] of (first, last) steps, got ",
                    dtype_name(ids.dtype), " ", ids.shape_str());
  for (int64_t e = 0; e < ids.shape[0]; ++e) {
    const int64_t a = ids.dtype == DType::Int64 ? ids.ptr<int64_t>()[2 * e] : ids.ptr<int32_t>()[2 * e];
    const int64_t b = ids.dtype == DType::Int64 ? ids.ptr<int64_t>()[2 * e + 1] : ids.ptr<int32_t>()[2 * e + 1];
    if (a < 0 || b < a || b > 9999999)
      return io_error(ds->ids_file_, ": row ", e, " is (", a, ", ", b, "); steps must satisfy 0 <= first <= last <= 9999999");
    ds->ranges_.emplace_back(a, b);
  }
  *out = std::move(ds);
  return Status::ok();
}

}  // namespace robocache::io
#endif  // ROBOCACHE_WITH_CALVIN
