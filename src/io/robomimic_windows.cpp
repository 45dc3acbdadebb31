// RoboMimic sequence windows (include/robocache/robomimic.h says what a window is). Everything about the
// file is checked at open, so a read only slices rows: from the file (a hyperslab per key, under the HDF5
// lock) or from memory with `cache`.
#include "robocache/robomimic.h"

#ifdef ROBOCACHE_WITH_HDF5

#include <algorithm>
#include <cstring>
#include <mutex>
#include <set>

#include "io/hdf5_util.h"

namespace robocache {
namespace {

using io::Handle;

constexpr int64_t kMaxWindow = int64_t{1} << 30;  // frame_stack / seq_length bound: keeps T * row sizes sane

// One requested dataset of one demo: open in the file, or read whole into memory.
struct Source {
  std::string key;  // "data/demo_3/obs/agentview_image", for errors
  hid_t dataset = H5I_INVALID_HID;
  io::Mapped type{};
  hid_t native_bool = H5I_INVALID_HID;  // h5py bools: the file's enum as a native type, read as raw bytes
  std::vector<int64_t> row_shape;      // shape after the step axis
  size_t row_bytes = 0;
  Array cached;  // [L, ...] with `cache`
};

struct Demo {
  std::string name;        // "demo_3"
  int64_t length = 0;      // L: num_samples
  int64_t first = 0;       // index of its first window
  int64_t count = 0;       // its number of windows
  std::vector<Source> sources;  // dataset keys, then obs keys, then next_obs keys
};

class Windows final : public RobomimicWindows {
 public:
  ~Windows() override {
    std::lock_guard<std::recursive_mutex> lock(io::hdf5_lock());
    for (Demo& d : demos_)
      for (Source& s : d.sources) {
        if (s.native_bool >= 0) H5Tclose(s.native_bool);
        if (s.dataset >= 0) H5Dclose(s.dataset);
      }
    if (file_ >= 0) H5Fclose(file_);
  }

  std::string path() const override { return path_; }
  int64_t size() const override { return total_; }
  const std::vector<std::string>& demos() const override { return names_; }
  int64_t demo_length(int64_t demo) const override {
    return demo >= 0 && demo < static_cast<int64_t>(demos_.size()) ? demos_[demo].length : -1;
  }
  int64_t window_length() const override { return opt_.frame_stack - 1 + opt_.seq_length; }

  Status locate(int64_t index, int64_t* demo, int64_t* index_in_demo) const override {
    if (index < 0 || index >= total_)
      return invalid_argument("index must be in [0, ", total_, ") for the windows of ", path_, ", got ", index);
    // The last demo whose first window is at or before `index` (demos with no windows cannot exist: open
    // rejects them).
    auto it = std::upper_bound(demos_.begin(), demos_.end(), index,
                               [](int64_t i, const Demo& d) { return i < d.first; });
    const int64_t d = static_cast<int64_t>(it - demos_.begin()) - 1;
    *demo = d;
    *index_in_demo = index - demos_[d].first + (opt_.pad_frame_stack ? 0 : opt_.frame_stack - 1);
    return Status::ok();
  }

  Status read(int64_t index, std::vector<WindowItem>* out) const override {
    return read_batch(&index, -1, out);
  }

  // n == -1: one window without the batch axis.
  Status read_batch(const int64_t* indices, int64_t n, std::vector<WindowItem>* out) const override {
    const bool single = n < 0;
    const int64_t B = single ? 1 : n;
    if (demos_.empty()) return invalid_argument(path_, " has no windows (no demos selected)");
    if (B > 0 && indices == nullptr) return invalid_argument("indices is null for ", B, " windows");
    std::vector<int64_t> demo(B), anchor(B);
    for (int64_t b = 0; b < B; ++b) {
      const Status s = locate(indices[b], &demo[b], &anchor[b]);
      if (!s.is_ok()) return single ? s : invalid_argument("indices[", b, "]: ", s.message());
    }
    const int64_t T = window_length();
    const int64_t n_data = static_cast<int64_t>(opt_.dataset_keys.size());
    const int64_t n_obs = static_cast<int64_t>(opt_.obs_keys.size());
    std::vector<WindowItem> items;

    // Allocates item `name` for source `src` of every window (same dtype and row shape in every demo).
    auto alloc = [&](int64_t src, int64_t rows, Array* a) -> Status {
      const Source& first = demos_[B ? demo[0] : 0].sources[src];
      for (int64_t b = 1; b < B; ++b) {
        const Source& s = demos_[demo[b]].sources[src];
        if (s.type.dtype != first.type.dtype || s.row_shape != first.row_shape) {
          Array x, y;
          x.shape = first.row_shape;
          y.shape = s.row_shape;
          return invalid_argument("cannot batch windows ", indices[0], " and ", indices[b], " of ", path_, ": '",
                                  first.key, "' is ", dtype_name(first.type.dtype), " ", x.shape_str(), " per row, '",
                                  s.key, "' is ", dtype_name(s.type.dtype), " ", y.shape_str());
        }
      }
      std::vector<int64_t> shape;
      if (!single) shape.push_back(B);
      if (rows > 0) shape.push_back(rows);
      shape.insert(shape.end(), first.row_shape.begin(), first.row_shape.end());
      *a = Array::empty(first.type.dtype, shape);
      return Status::ok();
    };

    auto window_rows = [&](int64_t b, int64_t src, uint8_t* dst) -> Status {
      const Demo& d = demos_[demo[b]];
      const Source& s = d.sources[src];
      const int64_t nfs = opt_.frame_stack - 1;
      const int64_t begin = std::max<int64_t>(0, anchor[b] - nfs);
      const int64_t end = std::min(d.length, anchor[b] + opt_.seq_length);
      const int64_t begin_pad = std::max<int64_t>(0, nfs - anchor[b]);
      const int64_t end_pad = std::max<int64_t>(0, anchor[b] + opt_.seq_length - d.length);
      ROBOCACHE_RETURN_IF_ERROR(read_rows(s, begin, end, dst + begin_pad * s.row_bytes));
      for (int64_t r = 0; r < begin_pad; ++r) std::memcpy(dst + r * s.row_bytes, dst + begin_pad * s.row_bytes, s.row_bytes);
      const int64_t last = T - end_pad - 1;
      for (int64_t r = last + 1; r < T; ++r) std::memcpy(dst + r * s.row_bytes, dst + last * s.row_bytes, s.row_bytes);
      return Status::ok();
    };

    auto pad_mask = [&](const std::string& name) {
      WindowItem it{name, Array::empty(DType::Bool, single ? std::vector<int64_t>{T, 1} : std::vector<int64_t>{B, T, 1})};
      uint8_t* p = it.data.ptr<uint8_t>();
      for (int64_t b = 0; b < B; ++b) {
        const Demo& d = demos_[demo[b]];
        for (int64_t r = 0; r < T; ++r) {
          const int64_t row = anchor[b] - (opt_.frame_stack - 1) + r;
          p[b * T + r] = row >= 0 && row < d.length;
        }
      }
      items.push_back(std::move(it));
    };

    auto group = [&](const std::string& prefix, int64_t first_src, int64_t count) -> Status {
      for (int64_t k = 0; k < count; ++k) {
        const std::string& key = prefix.empty() ? opt_.dataset_keys[k] : opt_.obs_keys[k];
        WindowItem it{prefix + key, {}};
        ROBOCACHE_RETURN_IF_ERROR(alloc(first_src + k, T, &it.data));
        const size_t per_window = it.data.nbytes() / static_cast<size_t>(B ? B : 1);
        for (int64_t b = 0; b < B; ++b)
          ROBOCACHE_RETURN_IF_ERROR(window_rows(b, first_src + k, static_cast<uint8_t*>(it.data.data()) + b * per_window));
        items.push_back(std::move(it));
      }
      if (opt_.get_pad_mask) pad_mask(prefix + "pad_mask");
      return Status::ok();
    };

    ROBOCACHE_RETURN_IF_ERROR(group("", 0, n_data));
    ROBOCACHE_RETURN_IF_ERROR(group("obs/", n_data, n_obs));
    if (opt_.load_next_obs) ROBOCACHE_RETURN_IF_ERROR(group("next_obs/", n_data + n_obs, n_obs));
    if (opt_.goal_mode == "last") {
      // next_obs at the demo's last window end, one row without the time axis.
      for (int64_t k = 0; k < n_obs; ++k) {
        WindowItem it{"goal_obs/" + opt_.obs_keys[k], {}};
        ROBOCACHE_RETURN_IF_ERROR(alloc(n_data + n_obs + k, 0, &it.data));
        const size_t per_window = it.data.nbytes() / static_cast<size_t>(B ? B : 1);
        for (int64_t b = 0; b < B; ++b) {
          const Demo& d = demos_[demo[b]];
          const int64_t goal = d.length - (opt_.pad_seq_length ? 0 : opt_.seq_length - 1) - 1;
          ROBOCACHE_RETURN_IF_ERROR(read_rows(d.sources[n_data + n_obs + k], goal, goal + 1,
                                              static_cast<uint8_t*>(it.data.data()) + b * per_window));
        }
        items.push_back(std::move(it));
      }
      if (opt_.get_pad_mask) {
        WindowItem it{"goal_obs/pad_mask", Array::empty(DType::Bool, single ? std::vector<int64_t>{1} : std::vector<int64_t>{B, 1})};
        std::memset(it.data.data(), 1, it.data.nbytes());
        items.push_back(std::move(it));
      }
    }
    *out = std::move(items);
    return Status::ok();
  }

  // Rows [begin, end) of one source into dst (contiguous, row_bytes each).
  Status read_rows(const Source& s, int64_t begin, int64_t end, uint8_t* dst) const {
    const int64_t rows = end - begin;
    if (rows <= 0 || s.row_bytes == 0) return Status::ok();
    if (s.cached.buffer) {
      std::memcpy(dst, s.cached.ptr<uint8_t>() + begin * s.row_bytes, rows * s.row_bytes);
      return Status::ok();
    }
    std::lock_guard<std::recursive_mutex> lock(io::hdf5_lock());
    return read_hyperslab(s, begin, rows, dst);
  }

  Status read_hyperslab(const Source& s, int64_t begin, int64_t rows, uint8_t* dst) const {
    Handle fspace(H5Dget_space(s.dataset), H5Sclose);
    const int ndim = 1 + static_cast<int>(s.row_shape.size());
    std::vector<hsize_t> start(ndim, 0), count(ndim);
    start[0] = static_cast<hsize_t>(begin);
    count[0] = static_cast<hsize_t>(rows);
    for (int i = 1; i < ndim; ++i) count[i] = static_cast<hsize_t>(s.row_shape[i - 1]);
    Handle mspace(H5Screate_simple(ndim, count.data(), nullptr), H5Sclose);
    if (!fspace.ok() || !mspace.ok() ||
        H5Sselect_hyperslab(fspace.id, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
        H5Dread(s.dataset, s.type.raw_bool ? s.native_bool : s.type.mem_type, mspace.id, fspace.id, H5P_DEFAULT, dst) < 0) {
      return io_error(path_, ": cannot read rows [", begin, ", ", begin + rows, ") of '", s.key, "': ", io::hdf5_message());
    }
    if (s.type.raw_bool)
      for (size_t i = 0; i < rows * s.row_bytes; ++i) dst[i] = dst[i] != 0;
    return Status::ok();
  }

  hid_t file_ = H5I_INVALID_HID;
  std::string path_;
  RobomimicWindowOptions opt_;
  std::vector<Demo> demos_;
  std::vector<std::string> names_;
  int64_t total_ = 0;
};

// The integer attribute data/demo_N@num_samples; *found = false when the demo has none (robosuite layout).
Status num_samples(hid_t group, const std::string& path, const std::string& key, bool* found, int64_t* out) {
  *found = false;
  if (H5Aexists(group, "num_samples") <= 0) return Status::ok();
  Handle a(H5Aopen(group, "num_samples", H5P_DEFAULT), H5Aclose);
  Handle ft(H5Aget_type(a.id), H5Tclose);
  Handle space(H5Aget_space(a.id), H5Sclose);
  int64_t v = 0;
  if (!a.ok() || H5Tget_class(ft.id) != H5T_INTEGER || H5Sget_simple_extent_npoints(space.id) != 1 ||
      H5Aread(a.id, H5T_NATIVE_INT64, &v) < 0) {
    io::hdf5_message();
    return io_error(path, ": attribute '", key, "@num_samples' must be one integer (the demo's length)");
  }
  if (v < 0) return io_error(path, ": attribute '", key, "@num_samples' is ", v, ", must be >= 0");
  *found = true;
  *out = v;
  return Status::ok();
}

// Opens data/<demo>/<key> and records its type and shape; the row count is checked by the caller.
Status open_source(hid_t file, const std::string& path, const std::string& demo_key, const std::string& sub,
                   const std::string& key, const char* what, Source* s, int64_t* rows) {
  s->key = demo_key + "/" + sub;
  if (!io::is_dataset(file, s->key)) {
    std::string have;
    const std::string parent = s->key.substr(0, s->key.rfind('/'));
    if (io::is_group(file, parent)) {
      Handle g(H5Gopen2(file, parent.c_str(), H5P_DEFAULT), H5Gclose);
      for (const std::string& c : io::child_names(g.id)) have += (have.empty() ? "" : ", ") + c;
      return io_error(path, ": no dataset '", s->key, "' (", what, " '", key, "'; ", parent, " holds: ",
                      have.empty() ? "nothing" : have, ")");
    }
    return io_error(path, ": no dataset '", s->key, "' (", what, " '", key, "'; there is no group ", parent, ")");
  }
  s->dataset = H5Dopen2(file, s->key.c_str(), H5P_DEFAULT);
  if (s->dataset < 0) return io_error(path, ": cannot open dataset '", s->key, "': ", io::hdf5_message());
  Handle ft(H5Dget_type(s->dataset), H5Tclose);
  Handle space(H5Dget_space(s->dataset), H5Sclose);
  const int ndim = H5Sget_simple_extent_ndims(space.id);
  if (ndim < 1) return io_error(path, ": dataset '", s->key, "' is a scalar, windows need a step axis [L, ...]");
  if (ndim > kMaxDims - 1)  // the batch axis of read_batch needs one more
    return io_error(path, ": dataset '", s->key, "' has ", ndim, " dimensions, at most ", kMaxDims - 1);
  std::vector<hsize_t> dims(ndim);
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  if (!io::map_type(ft.id, &s->type))
    return io_error(path, ": dataset '", s->key, "' has an HDF5 type (class ", static_cast<int>(H5Tget_class(ft.id)),
                    ", ", H5Tget_size(ft.id), " bytes) that the episode model does not hold");
  if (s->type.raw_bool) s->native_bool = H5Tget_native_type(ft.id, H5T_DIR_ASCEND);
  s->row_shape.assign(dims.begin() + 1, dims.end());
  s->row_bytes = dtype_size(s->type.dtype);
  for (int64_t d : s->row_shape) s->row_bytes *= static_cast<size_t>(d);
  *rows = static_cast<int64_t>(dims[0]);
  return Status::ok();
}

Status check_options(const RobomimicWindowOptions& o) {
  if (o.frame_stack < 1 || o.frame_stack > kMaxWindow)
    return invalid_argument("frame_stack must be in [1, ", kMaxWindow, "], got ", o.frame_stack);
  if (o.seq_length < 1 || o.seq_length > kMaxWindow)
    return invalid_argument("seq_length must be in [1, ", kMaxWindow, "], got ", o.seq_length);
  if (!o.goal_mode.empty() && o.goal_mode != "last")
    return invalid_argument("goal_mode must be None or \"last\", got \"", o.goal_mode, "\"");
  if (o.goal_mode == "last" && !o.load_next_obs)
    return invalid_argument("goal_mode \"last\" reads the goal from next_obs, so load_next_obs must be true");
  std::set<std::string> seen;
  for (const std::string& k : o.obs_keys) {
    if (k.empty() || k.find('/') != std::string::npos || k == "pad_mask")
      return invalid_argument("obs_keys: '", k, "' is not an observation name (no '/', not empty, not 'pad_mask')");
    if (!seen.insert(k).second) return invalid_argument("obs_keys names '", k, "' twice");
  }
  seen.clear();
  for (const std::string& k : o.dataset_keys) {
    const std::string head = k.substr(0, k.find('/'));
    if (k.empty() || head == "obs" || head == "next_obs" || head == "goal_obs" || (k == "pad_mask" && o.get_pad_mask))
      return invalid_argument("dataset_keys: '", k, "' would clash with the window's own entries");
    if (!seen.insert(k).second) return invalid_argument("dataset_keys names '", k, "' twice");
  }
  return Status::ok();
}

}  // namespace

Status open_robomimic_windows(const std::string& path, const RobomimicWindowOptions& options,
                              std::unique_ptr<RobomimicWindows>* out) {
  ROBOCACHE_RETURN_IF_ERROR(check_options(options));
  std::lock_guard<std::recursive_mutex> lock(io::hdf5_lock());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors come back as Status, not printed
  io::register_filters();
  auto w = std::make_unique<Windows>();
  w->path_ = path;
  w->opt_ = options;
  w->file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (w->file_ < 0) return io_error(path, ": cannot open as HDF5: ", io::hdf5_message());
  const hid_t file = w->file_;
  if (!io::is_group(file, "data")) return io_error(path, ": no 'data' group (RoboMimic layout: data/demo_N/...)");

  // The demos: every data/demo_N, or the names in mask/<filter key>; then sorted by N, as robomimic does.
  std::vector<std::string> names;
  if (options.filter_by_attribute.empty()) {
    Handle data(H5Gopen2(file, "data", H5P_DEFAULT), H5Gclose);
    names = io::child_names(data.id);
  } else {
    const std::string key = "mask/" + options.filter_by_attribute;
    if (!io::is_dataset(file, key)) {
      std::string keys;
      if (io::is_group(file, "mask")) {
        Handle mask(H5Gopen2(file, "mask", H5P_DEFAULT), H5Gclose);
        for (const std::string& k : io::child_names(mask.id)) keys += (keys.empty() ? "" : ", ") + k;
      }
      return invalid_argument("filter_by_attribute '", options.filter_by_attribute, "' is not a filter key in ", path,
                              " (mask/: ", keys.empty() ? "none" : keys, ")");
    }
    ROBOCACHE_RETURN_IF_ERROR(io::read_string_list(file, key, path, &names));
    std::set<std::string> seen;
    for (const std::string& n : names) {
      if (!seen.insert(n).second) return io_error(path, ": '", key, "' names '", n, "' twice");
      if (!io::is_group(file, "data/" + n))
        return io_error(path, ": '", key, "' names '", n, "', which is not a group under data/");
    }
  }
  std::vector<std::pair<int64_t, std::string>> order;
  for (const std::string& n : names) {
    int64_t num = 0;
    if (!io::demo_number(n, &num) || !io::is_group(file, "data/" + n))
      return io_error(path, ": 'data/", n, "' is not a demo_N group (RoboMimic layout: data/demo_N/...)");
    order.emplace_back(num, n);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  const int64_t fs = options.frame_stack, seq = options.seq_length;
  for (const auto& [num, name] : order) {
    (void)num;
    Demo d;
    d.name = name;
    const std::string key = "data/" + name;
    Handle g(H5Gopen2(file, key.c_str(), H5P_DEFAULT), H5Gclose);
    if (!g.ok()) return io_error(path, ": cannot open group '", key, "': ", io::hdf5_message());
    bool has_length = false;
    ROBOCACHE_RETURN_IF_ERROR(num_samples(g.id, path, key, &has_length, &d.length));
    const std::string length_from = has_length ? key + "@num_samples" : "";
    std::string first_key;  // without num_samples: the first dataset sets the length
    auto add = [&](const std::string& sub, const std::string& name, const char* what) -> Status {
      Source s;
      int64_t rows = 0;
      const Status st = open_source(file, path, key, sub, name, what, &s, &rows);
      d.sources.push_back(std::move(s));  // its handles are closed by ~Windows, also after an error
      ROBOCACHE_RETURN_IF_ERROR(st);
      const Source& src = d.sources.back();
      if (!has_length && first_key.empty()) {
        d.length = rows;
        first_key = src.key;
      }
      if (rows != d.length) {
        return io_error(path, ": dataset '", src.key, "' has ", rows, " rows, but ",
                        has_length ? length_from + " says " : "'" + first_key + "' has ", d.length,
                        has_length ? "" : " (no num_samples attribute: every requested dataset must have the same length)");
      }
      return Status::ok();
    };
    for (const std::string& k : options.dataset_keys) ROBOCACHE_RETURN_IF_ERROR(add(k, k, "dataset_keys names"));
    for (const std::string& k : options.obs_keys) ROBOCACHE_RETURN_IF_ERROR(add("obs/" + k, k, "obs_keys names"));
    if (options.load_next_obs)
      for (const std::string& k : options.obs_keys)
        ROBOCACHE_RETURN_IF_ERROR(add("next_obs/" + k, k, "obs_keys names"));
    if (!has_length && first_key.empty())
      return io_error(path, ": '", key, "' has no num_samples attribute and no dataset was requested to take the length from");

    // Window count, as robomimic's SequenceDataset.load_demo_info computes it; the demos that robomimic
    // rejects (an assertion at construction or at the first read of the demo) are errors here, at open.
    int64_t count = d.length;
    if (!options.pad_frame_stack) count -= fs - 1;
    if (!options.pad_seq_length) count -= seq - 1;
    if (options.pad_seq_length) {
      if (d.length < 1) return invalid_argument(path, ": '", key, "' has 0 samples; a demo needs at least 1");
      if (!options.pad_frame_stack && d.length < fs)
        return invalid_argument(path, ": '", key, "' has ", d.length, " samples, fewer than frame_stack = ", fs,
                                " without pad_frame_stack (its first window would start past its end)");
      count = std::max<int64_t>(count, 1);
    } else if (count < 1) {
      return invalid_argument(path, ": '", key, "' has ", d.length, " samples, fewer than the ",
                              (options.pad_frame_stack ? 0 : fs - 1) + seq, " that one window needs without padding",
                              options.pad_frame_stack ? " (pad_seq_length is false)" : " (pad_frame_stack and pad_seq_length are false)");
    }
    d.first = w->total_;
    d.count = count;
    w->total_ += count;
    w->names_.push_back(name);
    w->demos_.push_back(std::move(d));
  }

  if (options.cache) {
    for (Demo& d : w->demos_)
      for (Source& s : d.sources) {
        std::vector<int64_t> shape{d.length};
        shape.insert(shape.end(), s.row_shape.begin(), s.row_shape.end());
        Array a = Array::empty(s.type.dtype, shape);
        if (a.numel() > 0)
          ROBOCACHE_RETURN_IF_ERROR(w->read_hyperslab(s, 0, d.length, static_cast<uint8_t*>(a.data())));
        s.cached = std::move(a);
        if (s.native_bool >= 0) H5Tclose(s.native_bool);
        H5Dclose(s.dataset);
        s.native_bool = s.dataset = H5I_INVALID_HID;
      }
  }
  *out = std::move(w);
  return Status::ok();
}

}  // namespace robocache

#else  // no libhdf5 at build time

namespace robocache {

Status open_robomimic_windows(const std::string& path, const RobomimicWindowOptions&, std::unique_ptr<RobomimicWindows>*) {
  return runtime_error(path, ": RoboCache was built without the RoboMimic/robosuite HDF5 reader (libhdf5 not found at "
                             "build time; CMake option ROBOCACHE_WITH_HDF5)");
}

}  // namespace robocache

#endif  // ROBOCACHE_WITH_HDF5
