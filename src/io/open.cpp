// open_dataset: recognises the format of a path and hands it to its reader. A reader that was not built
// (its library was missing at build time) is an error here, never a silent skip.
#include <filesystem>
#include <fstream>

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
  std::ifstream in(file, std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::equal(sig, sig + 8, head);
}

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
  };
}

Status open_dataset(const std::string& path_in, const DatasetOptions& options, std::unique_ptr<Dataset>* out) {
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
      return io::open_lerobot(path_in, options, out);
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
