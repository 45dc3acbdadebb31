// open_dataset: recognises the format of a path and hands it to its reader. A reader that was not built
// (its library was missing at build time) is an error here, never a silent skip.
#include <filesystem>
#include "io/file.h"
#include <mutex>

#ifdef ROBOCACHE_WITH_LEROBOT
#include <dlfcn.h>
#endif

#include "io/readers.h"

namespace robocache {
namespace {

namespace fs = std::filesystem;

[[maybe_unused]] Status not_built(const std::string& format, const std::string& path, const char* option, const char* libs) {
  return runtime_error(path, " looks like a ", format, " dataset, but RoboCache was built without the ", format,
                       " reader (", libs, " not found at build time; CMake option ", option, ")");
}

bool is_hdf5(const fs::path& file) {
  static const char sig[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::string head;
  return io::read_file(file.string(), &head, 8).is_ok() && head.size() == 8 && std::equal(sig, sig + 8, head.data());
}

#ifdef ROBOCACHE_WITH_LEROBOT
// The LeRobot reader lives in librobocache_lerobot.so (see src/io/lerobot.cpp for why): at
// $ROBOCACHE_LEROBOT_PLUGIN, next to the module that holds this library (the Python package), where the
// build put it, or in the install prefix's lib/.
Status open_lerobot_plugin(const std::string& dir, const DatasetOptions& options, std::unique_ptr<Dataset>* out) {
  using OpenFn = void (*)(const char*, const DatasetOptions*, std::unique_ptr<Dataset>*, Status*);
  using AbiFn = int (*)();
  static std::mutex mutex;
  static OpenFn open_fn = nullptr;
  static std::string load_errors;
  std::lock_guard<std::mutex> lock(mutex);
  if (!open_fn) {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("ROBOCACHE_LEROBOT_PLUGIN")) candidates.push_back(env);
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&open_dataset), &info) && info.dli_fname)
      candidates.push_back((fs::path(info.dli_fname).parent_path() / "librobocache_lerobot.so").string());
    candidates.push_back(ROBOCACHE_LEROBOT_PLUGIN_BUILD_PATH);
    candidates.push_back(ROBOCACHE_LEROBOT_PLUGIN_INSTALL_PATH);
    load_errors.clear();
    for (const std::string& c : candidates) {
      if (!fs::exists(c)) {
        load_errors += "\n  " + c + ": not found";
        continue;
      }
      void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed: datasets it opened point into it
      if (!h) {
        const char* e = dlerror();
        load_errors += "\n  " + c + ": " + (e ? e : "dlopen failed");
        continue;
      }
      auto abi = reinterpret_cast<AbiFn>(dlsym(h, "robocache_lerobot_abi"));
      auto fn = reinterpret_cast<OpenFn>(dlsym(h, "robocache_lerobot_open"));
      const int want = static_cast<int>(sizeof(Episode) * 1000 + sizeof(DatasetOptions));
      if (!abi || !fn || abi() != want) {
        load_errors += "\n  " + c + ": not a matching RoboCache LeRobot plugin";
        continue;
      }
      open_fn = fn;
      break;
    }
  }
  if (!open_fn) {
    return runtime_error(dir, ": cannot load the LeRobot reader plugin (it links the Arrow/Parquet libraries of the "
                              "pyarrow it was built with; after a pyarrow upgrade, reinstall RoboCache):",
                         load_errors);
  }
  Status status;
  open_fn(dir.c_str(), &options, out, &status);
  return status;
}
#endif

}  // namespace

std::map<std::string, bool> dataset_readers() {
  return {
#ifdef ROBOCACHE_WITH_RLDS
      {"rlds", true},
#else
      {"rlds", false},
#endif
#ifdef ROBOCACHE_WITH_CALVIN
      {"calvin", true},
#else
      {"calvin", false},
#endif
#ifdef ROBOCACHE_WITH_HDF5
      {"robomimic", true},
#else
      {"robomimic", false},
#endif
#ifdef ROBOCACHE_WITH_LEROBOT
      {"lerobot", true},
#else
      {"lerobot", false},
#endif
#ifdef ROBOCACHE_WITH_IMAGE
      {"image_decode", true},
#else
      {"image_decode", false},
#endif
#ifdef ROBOCACHE_WITH_VIDEO
      {"video_decode", true},
#else
      {"video_decode", false},
#endif
  };
}

Status open_dataset(const std::string& path_in, const DatasetOptions& options, std::unique_ptr<Dataset>* out) {
  (void)out;  // unused when no reader is built
  const fs::path path(path_in);
  std::error_code ec;
  if (!fs::exists(path, ec)) return io_error(path_in, ": no such file or directory");
  if (options.rate_hz < 0 || options.rate_hz != options.rate_hz)
    return invalid_argument("rate_hz must be >= 0 (0 = step indices), got ", options.rate_hz);
  if (fs::is_directory(path)) {
    fs::path rlds_dir;
    if (fs::exists(path / "dataset_info.json")) {
      rlds_dir = path;
    } else {
      // A TFDS dataset directory holds one directory per version (bridge_dataset/1.0.0).
      std::vector<fs::path> versions;
      for (const auto& e : fs::directory_iterator(path, ec))
        if (e.is_directory() && fs::exists(e.path() / "dataset_info.json")) versions.push_back(e.path());
      if (versions.size() > 1) {
        return invalid_argument(path_in, " holds several TFDS versions (", versions[0].filename().string(), ", ",
                                versions[1].filename().string(), ", ...); open one of them");
      }
      if (versions.size() == 1) rlds_dir = versions[0];
    }
    if (!rlds_dir.empty()) {
#ifdef ROBOCACHE_WITH_RLDS
      return io::open_rlds(rlds_dir.string(), options, out);
#else
      return not_built("RLDS", path_in, "ROBOCACHE_WITH_RLDS", "libprotobuf and nlohmann-json");
#endif
    }
    if (fs::exists(path / "ep_start_end_ids.npy")) {
#ifdef ROBOCACHE_WITH_CALVIN
      return io::open_calvin(path_in, options, out);
#else
      return not_built("CALVIN", path_in, "ROBOCACHE_WITH_CALVIN", "libzip");
#endif
    }
    if (fs::exists(path / "meta" / "info.json")) {
#ifdef ROBOCACHE_WITH_LEROBOT
      return open_lerobot_plugin(path_in, options, out);
#else
      return not_built("LeRobot", path_in, "ROBOCACHE_WITH_LEROBOT", "Arrow/Parquet C++ (from the pyarrow wheel)");
#endif
    }
    return invalid_argument(path_in, ": not a recognised dataset directory (looked for dataset_info.json (RLDS), "
                                     "ep_start_end_ids.npy (CALVIN), meta/info.json (LeRobot))");
  }
  if (is_hdf5(path)) {
#ifdef ROBOCACHE_WITH_HDF5
    return io::open_robomimic(path_in, options, out);
#else
    return not_built("RoboMimic/robosuite HDF5", path_in, "ROBOCACHE_WITH_HDF5", "libhdf5");
#endif
  }
  return invalid_argument(path_in, ": not a recognised dataset file (HDF5 files are read; pass a directory for "
                                   "RLDS or CALVIN)");
}

}  // namespace robocache
