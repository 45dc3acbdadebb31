// The readers behind open_dataset (src/io/open.cpp). Each is compiled only when its libraries were found
// (CMake options ROBOCACHE_WITH_RLDS, _CALVIN, _HDF5, _LEROBOT, _IMAGE); open.cpp reports a reader that was not built.
#pragma once

#include <memory>
#include <string>

#include "robocache/episode.h"

namespace robocache::io {

// `dir` holds dataset_info.json and features.json (a TFDS version directory such as bridge_dataset/1.0.0).
Status open_rlds(const std::string& dir, const DatasetOptions& options, std::unique_ptr<Dataset>* out);
// `dir` holds ep_start_end_ids.npy and episode_XXXXXXX.npz files (a CALVIN split: training/, validation/).
Status open_calvin(const std::string& dir, const DatasetOptions& options, std::unique_ptr<Dataset>* out);
// `file` is a RoboMimic or robosuite HDF5 file with a `data` group of demo_N groups.
Status open_robomimic(const std::string& file, const DatasetOptions& options, std::unique_ptr<Dataset>* out);

// `dir` holds meta/info.json: LeRobot v2.x (meta/episodes.jsonl, one parquet per episode) or v3.0
// (meta/episodes/*/*.parquet, data and video files shared by many episodes).
Status open_lerobot(const std::string& dir, const DatasetOptions& options, std::unique_ptr<Dataset>* out);

}  // namespace robocache::io
