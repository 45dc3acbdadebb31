// Point-cloud files: KITTI / nuScenes LiDAR .bin and PCL's PCD (ascii, binary, binary_compressed).
// Readers fill host memory; they never touch ops or devices.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "robocache/status.h"

namespace robocache {

struct PointCloudFile {
  std::vector<float> values;        // [num_points, fields.size()] row-major, every field as float32
  std::vector<std::string> fields;  // column names; a PCD field with COUNT k > 1 gives name_0 .. name_{k-1}
  int64_t num_points = 0;
  int64_t width = 0;   // organized PCD clouds: points are rows of `width`, `height` rows (NaN holes kept)
  int64_t height = 1;
};

// KITTI (x, y, z, intensity) or nuScenes (x, y, z, intensity, ring) float32 records. columns = 4 or 5, or
// 0 to decide from the file: a size that only one record width divides decides; when both divide, the
// file is 5-wide if every fifth value is a small non-negative integer (nuScenes' ring index).
Status read_lidar_bin(const std::string& path, int columns, PointCloudFile* out);
Status parse_lidar_bin(std::string_view bytes, const std::string& name, int columns, PointCloudFile* out);

// PCD v0.5-v0.7: DATA ascii, binary or binary_compressed (LZF). Fields named "_" (padding) are skipped.
// F / I / U fields of 1, 2, 4 or 8 bytes become float32 values, except 4-byte `rgb` / `rgba` fields, whose
// 32 bits are copied unchanged (packed colours; view the column as uint32 to unpack).
Status read_pcd(const std::string& path, PointCloudFile* out);
Status parse_pcd(std::string_view bytes, const std::string& name, PointCloudFile* out);

// By extension: ".pcd" -> read_pcd, ".bin" -> read_lidar_bin(columns); anything else is an error.
Status read_point_cloud(const std::string& path, PointCloudFile* out, int bin_columns = 0);

}  // namespace robocache
