// The episode store read from C++: manifest.json (nlohmann::json) and every column of the selected streams
// memory-mapped in place. Layout: python/robocache/store.py. Every column's .npy header is checked against
// the manifest, and the offset columns (episodes.npy, items.npy) are checked to be in range and
// non-decreasing, so the pipeline can index them without further checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "robocache/loader.h"
#include "robocache/status.h"

namespace robocache::loader {

// A read-only memory map of a whole file; unmapped when destroyed.
class MappedFile {
 public:
  static Status open(const std::string& path, std::unique_ptr<MappedFile>* out);
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Tells the kernel the pages will be read at random (windows), not in sequence.
  void advise_random() const;
  // Drops this mapping's pages from the process and then, written back first, from the page cache: the next
  // read comes from the disk (for cold-read benchmarks). Safe while the pipeline reads: pages fault back in.
  void evict() const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

enum class StoreKind { Tensor, Bytes, PointCloud };

// One selected stream. Pointers point into the memory maps, which the StoreReader keeps.
struct StoreStream {
  std::string name;
  StoreKind kind = StoreKind::Tensor;
  std::string encoding;              // bytes streams: "jpeg", "png", "utf-8", ...
  ScalarType type;                   // element type of data.npy
  std::vector<int64_t> shape;        // per sample (tensor) or per point (point cloud: [3 + C])
  int64_t width = 1;                 // elements per sample (tensor) or per point (point cloud)
  bool ns = false;                   // timestamps int64 nanoseconds (else float64 seconds)
  int64_t num_samples = 0;
  const uint8_t* data = nullptr;     // tensor [num_samples, *shape]; bytes uint8 [N]; point cloud [P, width]
  int64_t data_rows = 0;             // num_samples, bytes, or points
  const void* timestamps = nullptr;  // [num_samples]
  const int64_t* episodes = nullptr; // [num_episodes + 1]
  const int64_t* items = nullptr;    // bytes / point cloud: [num_samples + 1] offsets into data
  std::string where;                 // "stream 'x' (streams/003) of store /path", for messages
};

class StoreReader {
 public:
  // Opens `names` of the store at `path` (every stream when empty).
  static Status open(const std::string& path, const std::vector<std::string>& names,
                     std::unique_ptr<StoreReader>* out);
  const std::string& path() const { return path_; }
  int64_t num_episodes() const { return num_episodes_; }
  const std::vector<StoreStream>& streams() const { return streams_; }
  void evict() const {
    for (const auto& f : files_) f->evict();
  }

 private:
  std::string path_;
  int64_t num_episodes_ = 0;
  std::vector<StoreStream> streams_;
  std::vector<std::unique_ptr<MappedFile>> files_;
};

}  // namespace robocache::loader
