// Dataset readers: the C++ Dataset / Episode objects, with each stream's owned buffer handed to NumPy
// without a copy (the ndarray keeps the buffer alive through a capsule).
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <memory>

#include "convert.h"
#include "robocache/episode.h"
#include "robocache/robomimic.h"

namespace robocache::bindings {
namespace {

// Shares the Array's buffer with NumPy: the capsule holds one more reference to it.
nb::object to_numpy(const robocache::Array& a) {
  auto* keep = new std::shared_ptr<std::vector<uint8_t>>(a.buffer);
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<std::shared_ptr<std::vector<uint8_t>>*>(p); });
  std::vector<size_t> shape(a.shape.begin(), a.shape.end());
  static uint8_t empty_sentinel = 0;  // NumPy wants a non-null pointer even for zero elements
  void* data = a.data() ? a.data() : &empty_sentinel;
  return nb::cast(nb::ndarray<nb::numpy>(data, shape.size(), shape.data(), owner, nullptr, dlpack_dtype(a.dtype)));
}

const EpisodeStream& find_stream(const Episode& ep, const std::string& name) {
  const EpisodeStream* s = ep.find(name);
  if (!s) {
    std::string names;
    for (const EpisodeStream& t : ep.streams) names += (names.empty() ? "" : ", ") + t.name;
    throw nb::key_error(("no stream '" + name + "' in this episode (streams: " + names + ")").c_str());
  }
  return *s;
}

const char* time_source_name(TimeSource s) {
  switch (s) {
    case TimeSource::Recorded: return "recorded";
    case TimeSource::StepIndexOverRate: return "step_index_over_rate";
    case TimeSource::StepIndex: return "step_index";
  }
  return "unknown";
}

}  // namespace

void bind_datasets(nb::module_& m) {
  nb::class_<EpisodeVideo>(m, "_Video")
      .def_ro("name", &EpisodeVideo::name)
      .def_ro("path", &EpisodeVideo::path)
      .def_ro("from_timestamp", &EpisodeVideo::from_timestamp)
      .def_ro("to_timestamp", &EpisodeVideo::to_timestamp)
      .def_ro("fps", &EpisodeVideo::fps)
      .def_ro("episode_index", &EpisodeVideo::episode_index)
      .def_ro("codec", &EpisodeVideo::codec)
      .def_ro("exists", &EpisodeVideo::exists)
      .def("timestamps", [](const EpisodeVideo& v) {
        robocache::Array out;
        check_without_gil([&] { return video_frame_timestamps(v, &out); });
        return to_numpy(out);
      })
      .def("frames", [](const EpisodeVideo& v, nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu> t,
                        double tolerance_s) {
        robocache::Array out;
        check_without_gil([&] {
          return decode_video_frames(v, t.data(), static_cast<int64_t>(t.shape(0)), tolerance_s, &out);
        });
        return to_numpy(out);
      }, nb::arg("t"), nb::arg("tolerance_s"));

  m.def("video_decoder_counters", &video_decoder_counters);

  m.def("open_video", [](const std::string& path, const std::string& name) {
    EpisodeVideo v;
    check(open_video(path, name, &v));
    return v;
  }, nb::arg("path"), nb::arg("name"));

  nb::class_<Episode>(m, "_Episode")
      .def("videos", [](const Episode& ep) { return ep.videos; })
      .def_ro("index", &Episode::index)
      .def("names", [](const Episode& ep) {
        std::vector<std::string> names;
        for (const EpisodeStream& s : ep.streams) names.push_back(s.name);
        return names;
      })
      .def("data", [](const Episode& ep, const std::string& name) { return to_numpy(find_stream(ep, name).data); })
      .def("offsets", [](const Episode& ep, const std::string& name) -> nb::object {
        const EpisodeStream& s = find_stream(ep, name);
        return s.kind == StreamKind::Bytes ? to_numpy(s.offsets) : nb::none();
      })
      .def("timestamps", [](const Episode& ep, const std::string& name) { return to_numpy(find_stream(ep, name).timestamps); })
      .def("info", [](const Episode& ep, const std::string& name) {
        const EpisodeStream& s = find_stream(ep, name);
        nb::dict d;
        d["kind"] = s.kind == StreamKind::Bytes ? "bytes" : "tensor";
        d["encoding"] = s.encoding;
        d["length"] = s.length();
        d["time_unit"] = s.time_unit == TimeUnit::Nanoseconds ? "ns" : "s";
        d["time_source"] = time_source_name(s.time_source);
        d["rate_hz"] = s.rate_hz;
        return d;
      })
      .def("decode", [](const Episode& ep, const std::string& name) {
        const EpisodeStream& s = find_stream(ep, name);
        robocache::Array out;
        check_without_gil([&] { return decode_images(s, &out); });
        return to_numpy(out);
      })
      .def("metadata", [](const Episode& ep) {
        nb::dict d;
        d["language_instruction"] = ep.metadata.language_instruction;
        d["task"] = ep.metadata.task;
        d["robot_type"] = ep.metadata.robot_type;
        d["source_file"] = ep.metadata.source_file;
        d["source_key"] = ep.metadata.source_key;
        d["extra"] = ep.metadata.extra;
        return d;
      });

  nb::class_<Dataset>(m, "_Dataset")
      .def_prop_ro("format", &Dataset::format)
      .def_prop_ro("path", &Dataset::path)
      .def("__len__", &Dataset::num_episodes)
      .def("read_episode", [](const Dataset& ds, int64_t index) {
        auto ep = std::make_unique<Episode>();
        check_without_gil([&] { return ds.read_episode(index, ep.get()); });
        return ep;
      }, nb::arg("index"));

  m.def("open_dataset", [](const std::string& path, const std::string& split, double rate_hz, bool verify_checksums) {
    DatasetOptions opt;
    opt.split = split;
    opt.rate_hz = rate_hz;
    opt.verify_checksums = verify_checksums;
    std::unique_ptr<Dataset> ds;
    check_without_gil([&] { return open_dataset(path, opt, &ds); });
    return ds;
  }, nb::arg("path"), nb::arg("split"), nb::arg("rate_hz"), nb::arg("verify_checksums"));

  m.def("dataset_readers", &dataset_readers);

  // Windows come back as [(name, array)], in RobomimicWindows' order; python/robocache/datasets.py nests them.
  auto items_to_list = [](std::vector<WindowItem>&& items) {
    nb::list out;
    for (WindowItem& it : items) out.append(nb::make_tuple(it.name, to_numpy(it.data)));
    return out;
  };
  nb::class_<RobomimicWindows>(m, "_RobomimicWindows")
      .def_prop_ro("path", &RobomimicWindows::path)
      .def("__len__", &RobomimicWindows::size)
      .def_prop_ro("demos", &RobomimicWindows::demos)
      .def("demo_length", &RobomimicWindows::demo_length, nb::arg("demo"))
      .def_prop_ro("window_length", &RobomimicWindows::window_length)
      .def("locate", [](const RobomimicWindows& w, int64_t index) {
        int64_t demo = 0, in_demo = 0;
        check(w.locate(index, &demo, &in_demo));
        return nb::make_tuple(demo, in_demo);
      }, nb::arg("index"))
      .def("read", [items_to_list](const RobomimicWindows& w, int64_t index) {
        std::vector<WindowItem> items;
        check_without_gil([&] { return w.read(index, &items); });
        return items_to_list(std::move(items));
      }, nb::arg("index"))
      .def("read_batch", [items_to_list](const RobomimicWindows& w, nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> indices) {
        std::vector<WindowItem> items;
        check_without_gil([&] { return w.read_batch(indices.data(), static_cast<int64_t>(indices.shape(0)), &items); });
        return items_to_list(std::move(items));
      }, nb::arg("indices"));

  m.def("open_robomimic_windows", [](const std::string& path, const std::vector<std::string>& obs_keys,
                                     const std::vector<std::string>& dataset_keys, int64_t frame_stack,
                                     int64_t seq_length, bool pad_frame_stack, bool pad_seq_length, bool get_pad_mask,
                                     bool load_next_obs, const std::string& goal_mode,
                                     const std::string& filter_by_attribute, bool cache) {
    RobomimicWindowOptions o;
    o.obs_keys = obs_keys;
    o.dataset_keys = dataset_keys;
    o.frame_stack = frame_stack;
    o.seq_length = seq_length;
    o.pad_frame_stack = pad_frame_stack;
    o.pad_seq_length = pad_seq_length;
    o.get_pad_mask = get_pad_mask;
    o.load_next_obs = load_next_obs;
    o.goal_mode = goal_mode;
    o.filter_by_attribute = filter_by_attribute;
    o.cache = cache;
    std::unique_ptr<RobomimicWindows> w;
    check_without_gil([&] { return open_robomimic_windows(path, o, &w); });
    return w;
  }, nb::arg("path"), nb::arg("obs_keys"), nb::arg("dataset_keys"), nb::arg("frame_stack"), nb::arg("seq_length"),
     nb::arg("pad_frame_stack"), nb::arg("pad_seq_length"), nb::arg("get_pad_mask"), nb::arg("load_next_obs"),
     nb::arg("goal_mode"), nb::arg("filter_by_attribute"), nb::arg("cache"));

  m.def("decode_image", [](nb::bytes data, const std::string& what) {
    robocache::Array out;
    check_without_gil([&] { return decode_image(static_cast<const uint8_t*>(data.data()), data.size(), what, &out); });
    return to_numpy(out);
  }, nb::arg("data"), nb::arg("what"));
}

}  // namespace robocache::bindings
