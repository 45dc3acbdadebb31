#ifdef ROBOCACHE_WITH_HDF5
// RoboMimic / robosuite HDF5 reader (libhdf5): data/demo_N groups, one episode each, in N order; every
// dataset under a demo group (actions, states, obs/agentview_image, next_obs/..., rewards, dones) is one
// stream [S, ...] named by its path inside the demo. A split selects the demos listed in mask/<split>
// (RoboMimic filter keys). Attributes become metadata: data@env / env_args / env_info give the task, the
// robot and the control rate (the timestamps' rate unless the caller gives one).
// Debian's libhdf5 is not built thread-safe, so every HDF5 call here runs under one lock.
#include <hdf5.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>
#include "robocache/status.h"

#include "io/hdf5_util.h"
#include "io/readers.h"

namespace robocache::io {
namespace {

class RobomimicDataset final : public Dataset {
 public:
  ~RobomimicDataset() override {
    std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
    if (file_ >= 0) H5Fclose(file_);
  }
  std::string format() const override { return "robomimic"; }
  std::string path() const override { return path_; }
  int64_t num_episodes() const override { return static_cast<int64_t>(demos_.size()); }

  Status read_episode_at(int64_t index, Episode* out) const override {
    std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
    const std::string key = "data/" + demos_[index];
    Handle g(H5Gopen2(file_, key.c_str(), H5P_DEFAULT), H5Gclose);
    if (!g.ok()) return io_error(path_, ": cannot open group '", key, "': ", hdf5_message());
    Episode ep;
    ep.index = index;
    ep.metadata = metadata_;
    ep.metadata.source_file = path_;
    ep.metadata.source_key = key;
    attrs_as_text(g.id, key + "@", &ep.metadata.extra);
    ROBOCACHE_RETURN_IF_ERROR(read_group(g.id, key, "", &ep));
    for (EpisodeStream& s : ep.streams) set_step_timestamps(&s, rate_hz_);
    *out = std::move(ep);
    return Status::ok();
  }

  Status read_group(hid_t group, const std::string& key, const std::string& prefix, Episode* ep) const {
    for (const std::string& name : child_names(group)) {
      const std::string full = key + "/" + name;
      if (is_group(group, name)) {
        Handle sub(H5Gopen2(group, name.c_str(), H5P_DEFAULT), H5Gclose);
        if (!sub.ok()) return io_error(path_, ": cannot open group '", full, "': ", hdf5_message());
        ROBOCACHE_RETURN_IF_ERROR(read_group(sub.id, full, prefix + name + "/", ep));
        continue;
      }
      Handle d(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose);
      if (!d.ok()) return io_error(path_, ": cannot open dataset '", full, "': ", hdf5_message());
      Handle ft(H5Dget_type(d.id), H5Tclose);
      Handle space(H5Dget_space(d.id), H5Sclose);
      const int ndim = H5Sget_simple_extent_ndims(space.id);
      if (ndim < 1) return io_error(path_, ": dataset '", full, "' is a scalar, streams need a step axis [S, ...]");
      if (ndim > kMaxDims) return io_error(path_, ": dataset '", full, "' has ", ndim, " dimensions, at most ", kMaxDims);
      std::vector<hsize_t> dims(ndim);
      H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
      Mapped m{};
      if (!map_type(ft.id, &m)) {
        return io_error(path_, ": dataset '", full, "' has an HDF5 type (class ", static_cast<int>(H5Tget_class(ft.id)),
                        ", ", H5Tget_size(ft.id), " bytes) that the episode model does not hold");
      }
      EpisodeStream s;
      s.name = prefix + name;
      std::vector<int64_t> shape(dims.begin(), dims.end());
      s.data = Array::empty(m.dtype, shape);
      if (s.data.numel() > 0) {
        hid_t mem = m.mem_type;
        Handle native(m.raw_bool ? H5Tget_native_type(ft.id, H5T_DIR_ASCEND) : H5I_INVALID_HID, H5Tclose);
        if (m.raw_bool) mem = native.id;
        if (H5Dread(d.id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, s.data.data()) < 0)
          return io_error(path_, ": cannot read dataset '", full, "': ", hdf5_message());
        if (m.raw_bool) {
          uint8_t* p = s.data.ptr<uint8_t>();
          for (int64_t i = 0; i < s.data.numel(); ++i) p[i] = p[i] != 0;
        }
      }
      ep->streams.push_back(std::move(s));
    }
    return Status::ok();
  }

  hid_t file_ = H5I_INVALID_HID;
  std::string path_;
  std::vector<std::string> demos_;
  EpisodeMetadata metadata_;
  double rate_hz_ = 0.0;
};

// The control rate a robosuite env_info or RoboMimic env_args states, or 0.
double stated_rate(const nlohmann::json& j) {
  for (const nlohmann::json* p : {&j, j.contains("env_kwargs") ? &j["env_kwargs"] : nullptr}) {
    if (p && p->is_object() && p->contains("control_freq") && (*p)["control_freq"].is_number())
      return (*p)["control_freq"].get<double>();
  }
  return 0.0;
}

std::string robots_text(const nlohmann::json& j) {
  for (const nlohmann::json* p : {&j, j.contains("env_kwargs") ? &j["env_kwargs"] : nullptr}) {
    if (!p || !p->is_object() || !p->contains("robots")) continue;
    const nlohmann::json& r = (*p)["robots"];
    if (r.is_string()) return r.get<std::string>();
    if (r.is_array()) {
      std::string s;
      for (const auto& x : r) s += (s.empty() ? "" : ",") + (x.is_string() ? x.get<std::string>() : x.dump());
      return s;
    }
  }
  return "";
}

}  // namespace

Status open_robomimic(const std::string& file, const DatasetOptions& options, std::unique_ptr<Dataset>* out) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors come back as Status, not printed
  register_filters();
  auto ds = std::make_unique<RobomimicDataset>();
  ds->path_ = file;
  ds->file_ = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (ds->file_ < 0) return io_error(file, ": cannot open as HDF5: ", hdf5_message());
  if (H5Lexists(ds->file_, "data", H5P_DEFAULT) <= 0 || !is_group(ds->file_, "data"))
    return io_error(file, ": no 'data' group (RoboMimic / robosuite layout: data/demo_N/...)");
  Handle data(H5Gopen2(ds->file_, "data", H5P_DEFAULT), H5Gclose);
  std::vector<std::pair<int64_t, std::string>> demos;
  for (const std::string& name : child_names(data.id)) {
    int64_t n = 0;
    if (!demo_number(name, &n) || !is_group(data.id, name))
      return io_error(file, ": 'data/", name, "' is not a demo_N group (RoboMimic / robosuite layout: data/demo_N/...)");
    demos.emplace_back(n, name);
  }
  std::sort(demos.begin(), demos.end());
  std::vector<std::string> selected;
  if (!options.split.empty()) {
    const std::string key = "mask/" + options.split;
    if (H5Lexists(ds->file_, "mask", H5P_DEFAULT) <= 0 || H5Lexists(ds->file_, key.c_str(), H5P_DEFAULT) <= 0) {
      std::string keys;
      if (H5Lexists(ds->file_, "mask", H5P_DEFAULT) > 0) {
        Handle mask(H5Gopen2(ds->file_, "mask", H5P_DEFAULT), H5Gclose);
        for (const std::string& k : child_names(mask.id)) keys += (keys.empty() ? "" : ", ") + k;
      }
      return invalid_argument("split '", options.split, "' is not a filter key in ", file, " (mask/: ",
                              keys.empty() ? "none" : keys, ")");
    }
    ROBOCACHE_RETURN_IF_ERROR(read_string_list(ds->file_, key, file, &selected));
    for (const std::string& name : selected) {
      if (!std::any_of(demos.begin(), demos.end(), [&](const auto& d) { return d.second == name; }))
        return io_error(file, ": '", key, "' names '", name, "', which is not a group under data/");
    }
  }
  for (const auto& d : demos)
    if (selected.empty() || std::find(selected.begin(), selected.end(), d.second) != selected.end())
      ds->demos_.push_back(d.second);
  // Dataset-wide metadata.
  EpisodeMetadata& md = ds->metadata_;
  attrs_as_text(data.id, "data@", &md.extra);
  md.task = string_attr(data.id, "env");
  for (const char* attr : {"env_info", "env_args"}) {
    const std::string text = string_attr(data.id, attr);
    if (text.empty()) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(text);
      if (md.task.empty() && j.contains("env_name") && j["env_name"].is_string()) md.task = j["env_name"].get<std::string>();
      if (md.robot_type.empty()) md.robot_type = robots_text(j);
      if (ds->rate_hz_ == 0.0) ds->rate_hz_ = stated_rate(j);
    } catch (const nlohmann::json::exception& e) {
      return io_error(file, ": attribute data@", attr, " is not valid JSON: ", e.what());
    }
  }
  if (options.rate_hz > 0) ds->rate_hz_ = options.rate_hz;
  *out = std::move(ds);
  return Status::ok();
}

}  // namespace robocache::io
#endif  // ROBOCACHE_WITH_HDF5
