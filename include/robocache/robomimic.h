// Training windows over a RoboMimic HDF5 dataset: sample i is what robomimic's
// robomimic.utils.dataset.SequenceDataset (robomimic 0.3) returns for index i, with the same sample count,
// the same index -> (demo, index_in_demo) mapping, the same filter-key selection and the same padding.
//
// Layout read: data/demo_N/{obs/<key>, next_obs/<key>, actions, rewards, dones, states, ...} with the
// attribute data/demo_N@num_samples (the demo's length), and mask/<filter key> (a list of demo names).
// The raw robosuite demo layout (data/demo_N/{states, actions}, no num_samples) works too: the length is
// then the row count that every requested dataset must share.
//
// Semantics (robomimic 0.3's SequenceDataset; every key, obs and dataset keys alike, gets the same window):
//  - demos are data/demo_* (or the names in mask/<filter_by_attribute>), sorted by their number N;
//  - a demo of length L gives L windows, minus frame_stack - 1 without pad_frame_stack, minus
//    seq_length - 1 without pad_seq_length, and at least 1 with pad_seq_length;
//  - window j of a demo is anchored at index_in_demo = j (+ frame_stack - 1 without pad_frame_stack) and
//    covers rows [index_in_demo - (frame_stack - 1), index_in_demo + seq_length): T = frame_stack - 1 +
//    seq_length rows; rows before 0 repeat row 0, rows past L - 1 repeat row L - 1;
//  - pad_mask [T, 1] (bool) is true on real rows; goal_mode "last" gives goal_obs/<key> = next_obs row
//    L - 1 (L - seq_length without pad_seq_length), without the time axis.
// Values keep the file's dtype (as robomimic gives them without hdf5_cache_mode; robomimic's caches turn
// dataset keys into float32), except that int8/int16/uint16 widen to int32 and uint32 to int64, the
// episode model's dtypes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "robocache/episode.h"
#include "robocache/status.h"

namespace robocache {

struct RobomimicWindowOptions {
  std::vector<std::string> obs_keys;      // under data/demo_N/obs/ (and next_obs/): "robot0_eef_pos", ...
  std::vector<std::string> dataset_keys;  // under data/demo_N/: "actions", "rewards", "dones", "states"
  int64_t frame_stack = 1;                // >= 1
  int64_t seq_length = 1;                 // >= 1
  bool pad_frame_stack = true;
  bool pad_seq_length = true;
  bool get_pad_mask = false;
  bool load_next_obs = true;
  std::string goal_mode;            // "" (no goal) or "last"
  std::string filter_by_attribute;  // "" = every demo, else the demos listed in mask/<filter_by_attribute>
  bool cache = false;               // read every requested dataset of the selected demos into memory at open
};

// One part of a window. Names: "<dataset key>", "pad_mask", "obs/<key>", "obs/pad_mask", "next_obs/<key>",
// "next_obs/pad_mask", "goal_obs/<key>", "goal_obs/pad_mask" (pad masks only with get_pad_mask), in
// that order: dataset keys, then obs, next_obs, goal_obs, each with its keys in the order asked for.
struct WindowItem {
  std::string name;
  Array data;  // [T, ...] (goal_obs: [...]); read_batch: [B, T, ...]
};

class RobomimicWindows {
 public:
  virtual ~RobomimicWindows() = default;
  virtual std::string path() const = 0;
  virtual int64_t size() const = 0;                         // the number of windows (robomimic's len)
  virtual const std::vector<std::string>& demos() const = 0;  // selected demos, in index order
  virtual int64_t demo_length(int64_t demo) const = 0;      // L of demos()[demo]
  virtual int64_t window_length() const = 0;                // T = frame_stack - 1 + seq_length
  // Window `index` -> position of its demo in demos() and its anchor row index_in_demo.
  virtual Status locate(int64_t index, int64_t* demo, int64_t* index_in_demo) const = 0;
  // Window `index`; safe from several threads at once (file reads take the HDF5 lock, cached reads do not).
  virtual Status read(int64_t index, std::vector<WindowItem>* out) const = 0;
  // Windows `indices[0..n)` stacked on a new first axis; every demo involved must give each key the same
  // dtype and row shape.
  virtual Status read_batch(const int64_t* indices, int64_t n, std::vector<WindowItem>* out) const = 0;
};

// Opens `path` and checks up front that every selected demo has every requested key with num_samples rows
// (errors name the file and the HDF5 key), and that each demo is long enough for the window settings.
Status open_robomimic_windows(const std::string& path, const RobomimicWindowOptions& options,
                              std::unique_ptr<RobomimicWindows>* out);

}  // namespace robocache
