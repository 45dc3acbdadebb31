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

#include "io/readers.h"

namespace robocache::io {
namespace {

std::recursive_mutex& hdf5_lock() {
  static std::recursive_mutex m;
  return m;
}

// Closes an HDF5 handle with the matching H5*close on scope exit.
struct Handle {
  hid_t id = H5I_INVALID_HID;
  herr_t (*close)(hid_t) = nullptr;
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id >= 0 && close) close(id);
  }
  bool ok() const { return id >= 0; }
};

// The innermost message on HDF5's error stack, for our error text.
std::string hdf5_message() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD,
           [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
             auto* s = static_cast<std::string*>(out);
             if (s->empty() && e->desc) *s = e->desc;
             return 0;
           },
           &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg.empty() ? "HDF5 error" : msg;
}

// Names of a group's members, in name order (H5Gget_info / H5Lget_name_by_idx: the same in HDF5 1.10 to 1.14).
std::vector<std::string> child_names(hid_t group) {
  std::vector<std::string> names;
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) continue;
    std::string name(static_cast<size_t>(n), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    names.push_back(std::move(name));
  }
  return names;
}

bool is_group(hid_t parent, const std::string& name) {
  const hid_t obj = H5Oopen(parent, name.c_str(), H5P_DEFAULT);
  if (obj < 0) return false;
  const bool group = H5Iget_type(obj) == H5I_GROUP;
  H5Oclose(obj);
  return group;
}

// A string attribute (fixed or variable length), or "" when absent / not a string.
std::string string_attr(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return "";
  Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!a.ok()) return "";
  Handle ft(H5Aget_type(a.id), H5Tclose);
  if (H5Tget_class(ft.id) != H5T_STRING) return "";
  Handle space(H5Aget_space(a.id), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.id) != 1) return "";
  if (H5Tis_variable_str(ft.id) > 0) {
    Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mt.id, H5T_VARIABLE);
    H5Tset_cset(mt.id, H5Tget_cset(ft.id));
    char* s = nullptr;
    if (H5Aread(a.id, mt.id, &s) < 0 || !s) return "";
    std::string out(s);
    H5free_memory(s);
    return out;
  }
  const size_t n = H5Tget_size(ft.id);
  std::string out(n, '\0');
  if (H5Aread(a.id, ft.id, out.data()) < 0) return "";
  out.resize(std::strlen(out.c_str()));
  return out;
}

// Every attribute of an object as text: strings as they are, numbers in their shortest exact form.
void attrs_as_text(hid_t obj, const std::string& prefix, std::map<std::string, std::string>* out) {
  std::pair<std::string, std::map<std::string, std::string>*> ctx(prefix, out);
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t o, const char* name, const H5A_info_t*, void* data) -> herr_t {
                auto* ctx = static_cast<std::pair<std::string, std::map<std::string, std::string>*>*>(data);
                std::string text = string_attr(o, name);
                if (text.empty()) {
                  Handle a(H5Aopen(o, name, H5P_DEFAULT), H5Aclose);
                  Handle space(H5Aget_space(a.id), H5Sclose);
                  Handle ft(H5Aget_type(a.id), H5Tclose);
                  const hssize_t n = H5Sget_simple_extent_npoints(space.id);
                  const H5T_class_t cls = H5Tget_class(ft.id);
                  if (n >= 1 && n <= 64 && (cls == H5T_INTEGER || cls == H5T_FLOAT)) {
                    std::vector<double> v(n);
                    if (H5Aread(a.id, H5T_NATIVE_DOUBLE, v.data()) >= 0) {
                      for (hssize_t i = 0; i < n; ++i) text += detail::concat(i ? ", " : "", v[i]);
                    }
                  }
                }
                (*ctx->second)[ctx->first + name] = text;
                return 0;
              },
              &ctx);
}

struct Mapped {
  DType dtype;
  hid_t mem_type;  // what H5Dread converts into
  bool raw_bool = false;
};

// The HDF5 file type onto the episode model's dtypes; narrower integers widen losslessly (HDF5 converts).
bool map_type(hid_t ft, Mapped* out) {
  const H5T_class_t cls = H5Tget_class(ft);
  const size_t size = H5Tget_size(ft);
  if (cls == H5T_FLOAT) {
    if (size == 4) *out = {DType::Float32, H5T_NATIVE_FLOAT};
    else if (size == 8) *out = {DType::Float64, H5T_NATIVE_DOUBLE};
    else return false;
    return true;
  }
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(ft) == H5T_SGN_2;
    if (!is_signed && size == 1) *out = {DType::UInt8, H5T_NATIVE_UINT8};
    else if (size == 8 && is_signed) *out = {DType::Int64, H5T_NATIVE_INT64};
    else if (size <= 2 || (size == 4 && is_signed)) *out = {DType::Int32, H5T_NATIVE_INT32};
    else if (size == 4) *out = {DType::Int64, H5T_NATIVE_INT64};
    else return false;  // uint64 does not fit int64
    return true;
  }
  if (cls == H5T_ENUM && size == 1) {  // h5py's bool: an int8 enum {FALSE, TRUE}
    *out = {DType::Bool, H5T_NATIVE_UINT8, true};
    return true;
  }
  return false;
}

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

bool demo_number(const std::string& name, int64_t* n) {
  if (name.rfind("demo_", 0) != 0 || name.size() == 5 || name.size() > 20) return false;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + (name[i] - '0');
  }
  *n = v;
  return true;
}

// Reads a 1-d string dataset (RoboMimic's mask/<filter key>: the demo names).
Status read_string_list(hid_t file, const std::string& key, const std::string& path, std::vector<std::string>* out) {
  Handle d(H5Dopen2(file, key.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) return io_error(path, ": cannot open dataset '", key, "': ", hdf5_message());
  Handle ft(H5Dget_type(d.id), H5Tclose);
  Handle space(H5Dget_space(d.id), H5Sclose);
  if (H5Tget_class(ft.id) != H5T_STRING || H5Sget_simple_extent_ndims(space.id) != 1)
    return io_error(path, ": '", key, "' must be a 1-d array of demo names (strings)");
  const hssize_t n = H5Sget_simple_extent_npoints(space.id);
  out->clear();
  if (H5Tis_variable_str(ft.id) > 0) {
    std::vector<char*> v(n);
    Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mt.id, H5T_VARIABLE);
    H5Tset_cset(mt.id, H5Tget_cset(ft.id));
    if (n && H5Dread(d.id, mt.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
      return io_error(path, ": cannot read '", key, "': ", hdf5_message());
    for (char* s : v) out->push_back(s ? s : "");
    if (n) H5Dvlen_reclaim(mt.id, space.id, H5P_DEFAULT, v.data());
  } else {
    const size_t w = H5Tget_size(ft.id);
    std::vector<char> buf(n * w + 1, '\0');
    if (n && H5Dread(d.id, ft.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      return io_error(path, ": cannot read '", key, "': ", hdf5_message());
    for (hssize_t i = 0; i < n; ++i) out->push_back(std::string(buf.data() + i * w, strnlen(buf.data() + i * w, w)));
  }
  return Status::ok();
}

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
