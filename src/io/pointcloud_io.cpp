// Readers for LiDAR .bin and PCD files. Every failure names the file, and the byte offset where it can.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cctype>
#include <cstdio>

#include "io/file.h"
#include "io/lzf.h"
#include "robocache/pointcloud_io.h"

namespace robocache {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct PcdField {
  std::string name;
  int size = 4;
  char type = 'F';
  int64_t count = 1;
  int64_t offset = 0;  // byte offset inside a binary record
};

// One element of a field, converted to float.
float load_element(const unsigned char* p, char type, int size) {
  switch (type) {
    case 'F':
      if (size == 4) {
        float v;
        std::memcpy(&v, p, 4);
        return v;
      } else {
        double v;
        std::memcpy(&v, p, 8);
        return static_cast<float>(v);
      }
    case 'I':
      switch (size) {
        case 1: return static_cast<float>(static_cast<int8_t>(p[0]));
        case 2: { int16_t v; std::memcpy(&v, p, 2); return static_cast<float>(v); }
        case 4: { int32_t v; std::memcpy(&v, p, 4); return static_cast<float>(v); }
        default: { int64_t v; std::memcpy(&v, p, 8); return static_cast<float>(v); }
      }
    default:
      switch (size) {
        case 1: return static_cast<float>(p[0]);
        case 2: { uint16_t v; std::memcpy(&v, p, 2); return static_cast<float>(v); }
        case 4: { uint32_t v; std::memcpy(&v, p, 4); return static_cast<float>(v); }
        default: { uint64_t v; std::memcpy(&v, p, 8); return static_cast<float>(v); }
      }
  }
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    const size_t start = i;
    while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool parse_int(const std::string& s, int64_t* v) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') return false;
  *v = x;
  return true;
}

}  // namespace

Status parse_lidar_bin(std::string_view bytes, const std::string& name, int columns, PointCloudFile* out) {
  if (columns != 0 && columns != 4 && columns != 5) {
    return invalid_argument("columns must be 4 (KITTI), 5 (nuScenes) or 0 (decide from the file), got ", columns);
  }
  const size_t n = bytes.size();
  if (columns == 0) {
    const bool by4 = n % 16 == 0, by5 = n % 20 == 0;
    if (by4 && !by5) {
      columns = 4;
    } else if (by5 && !by4) {
      columns = 5;
    } else if (by4 && by5) {
      // Both widths divide the size: nuScenes' fifth value is the ring index, a small integer.
      columns = 5;
      for (size_t r = 0; r < n / 20; ++r) {
        float v;
        std::memcpy(&v, bytes.data() + r * 20 + 16, 4);
        if (!(v >= 0 && v < 1024 && v == std::floor(v))) {
          columns = 4;
          break;
        }
      }
    }
  }
  if (columns == 0 || n % (4 * static_cast<size_t>(columns)) != 0) {
    return io_error(name, ": file size ", n, " bytes is not a whole number of float32 records of ",
                    columns == 0 ? std::string("4 or 5") : std::to_string(columns),
                    " values (16 or 20 bytes); the file is truncated or not a KITTI / nuScenes .bin");
  }
  out->num_points = static_cast<int64_t>(n / (4 * columns));
  out->width = out->num_points;
  out->height = 1;
  out->fields = {"x", "y", "z", "intensity"};
  if (columns == 5) out->fields.push_back("ring");
  out->values.resize(n / 4);
  if (n > 0) std::memcpy(out->values.data(), bytes.data(), n);
  return Status::ok();
}

Status read_lidar_bin(const std::string& path, int columns, PointCloudFile* out) {
  std::string bytes;
  ROBOCACHE_RETURN_IF_ERROR(io::read_file(path, &bytes));
  return parse_lidar_bin(bytes, path, columns, out);
}

Status parse_pcd(std::string_view bytes, const std::string& name, PointCloudFile* out) {
  std::vector<PcdField> fields;
  std::vector<std::string> sizes, types, counts;
  int64_t width = -1, height = 1, points = -1;
  std::string data_kind;
  size_t pos = 0;
  int line_no = 0;
  while (data_kind.empty()) {
    if (pos >= bytes.size()) return io_error(name, ": PCD header ends without a DATA line (file is ", bytes.size(), " bytes)");
    const size_t eol = bytes.find('\n', pos);
    const size_t line_end = eol == std::string_view::npos ? bytes.size() : eol;
    std::string line(bytes.substr(pos, line_end - pos));
    const size_t line_at = pos;
    pos = eol == std::string_view::npos ? bytes.size() : eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::vector<std::string> tok = split(line);
    if (tok.empty() || tok[0][0] == '#') continue;
    const std::string& key = tok[0];
    const auto bad = [&](const std::string& why) {
      return io_error(name, ": bad PCD header line ", line_no, " (byte ", line_at, "): '", line, "': ", why);
    };
    if (key == "VERSION" || key == "VIEWPOINT") continue;
    if (key == "FIELDS" || key == "COLUMNS") {
      for (size_t i = 1; i < tok.size(); ++i) fields.push_back({tok[i]});
    } else if (key == "SIZE") {
      sizes.assign(tok.begin() + 1, tok.end());
    } else if (key == "TYPE") {
      types.assign(tok.begin() + 1, tok.end());
    } else if (key == "COUNT") {
      counts.assign(tok.begin() + 1, tok.end());
    } else if (key == "WIDTH" || key == "HEIGHT" || key == "POINTS") {
      int64_t v = 0;
      if (tok.size() != 2 || !parse_int(tok[1], &v) || v < 0) return bad("expected one non-negative integer");
      (key == "WIDTH" ? width : key == "HEIGHT" ? height : points) = v;
    } else if (key == "DATA") {
      if (tok.size() != 2 || (tok[1] != "ascii" && tok[1] != "binary" && tok[1] != "binary_compressed")) {
        return bad("DATA must be ascii, binary or binary_compressed");
      }
      data_kind = tok[1];
    } else {
      return bad("unknown header keyword");
    }
  }
  if (fields.empty()) return io_error(name, ": PCD header has no FIELDS");
  if (sizes.size() != fields.size() || types.size() != fields.size() ||
      (!counts.empty() && counts.size() != fields.size())) {
    return io_error(name, ": PCD header has ", fields.size(), " FIELDS but ", sizes.size(), " SIZE, ", types.size(),
                    " TYPE and ", counts.size(), " COUNT entries");
  }
  int64_t record = 0;
  for (size_t f = 0; f < fields.size(); ++f) {
    int64_t size = 0, count = 1;
    const char type = types[f].size() == 1 ? types[f][0] : '?';
    if (!parse_int(sizes[f], &size) || (size != 1 && size != 2 && size != 4 && size != 8) ||
        (type != 'F' && type != 'I' && type != 'U') || (type == 'F' && size != 4 && size != 8) ||
        (!counts.empty() && (!parse_int(counts[f], &count) || count < 1))) {
      return io_error(name, ": PCD field '", fields[f].name, "' has an unsupported SIZE ", sizes[f], " / TYPE ",
                      types[f], (counts.empty() ? std::string() : " / COUNT " + counts[f]));
    }
    fields[f].size = static_cast<int>(size);
    fields[f].type = type;
    fields[f].count = count;
    fields[f].offset = record;
    record += size * count;
  }
  if (width < 0) return io_error(name, ": PCD header has no WIDTH");
  if (points < 0) points = width * height;
  if (points != width * height) {
    return io_error(name, ": PCD header says POINTS ", points, " but WIDTH x HEIGHT = ", width, " x ", height);
  }

  out->fields.clear();
  for (const PcdField& f : fields) {
    if (f.name == "_") continue;
    for (int64_t k = 0; k < f.count; ++k) out->fields.push_back(f.count == 1 ? f.name : f.name + "_" + std::to_string(k));
  }
  const size_t cols = out->fields.size();
  out->num_points = points;
  out->width = width;
  out->height = height;
  out->values.assign(static_cast<size_t>(points) * cols, 0.0f);
  float* dst = out->values.data();

  if (data_kind == "ascii") {
    int64_t columns_in_file = 0;
    for (const PcdField& f : fields) columns_in_file += f.count;
    for (int64_t i = 0; i < points; ++i) {
      // Skip blank lines; each point is one line of whitespace-separated numbers.
      while (pos < bytes.size() && (bytes[pos] == '\n' || bytes[pos] == '\r')) ++pos;
      if (pos >= bytes.size()) {
        return io_error(name, ": ascii data ends after ", i, " of POINTS ", points, " points (truncated file)");
      }
      const size_t line_at = pos;
      const size_t eol = bytes.find('\n', pos);
      std::string line(bytes.substr(pos, (eol == std::string_view::npos ? bytes.size() : eol) - pos));
      pos = eol == std::string_view::npos ? bytes.size() : eol + 1;
      const std::vector<std::string> tok = split(line);
      if (static_cast<int64_t>(tok.size()) != columns_in_file) {
        return io_error(name, ": ascii point ", i, " (byte ", line_at, ") has ", tok.size(), " values, expected ",
                        columns_in_file);
      }
      size_t t = 0, c = 0;
      for (const PcdField& f : fields) {
        for (int64_t k = 0; k < f.count; ++k, ++t) {
          char* end = nullptr;
          const double v = std::strtod(tok[t].c_str(), &end);
          if (end == tok[t].c_str() || *end != '\0') {
            return io_error(name, ": ascii point ", i, " (byte ", line_at, "): '", tok[t], "' is not a number");
          }
          if (f.name == "_") continue;
          if (f.size == 4 && f.type != 'F' && (f.name == "rgb" || f.name == "rgba")) {
            const auto bits = static_cast<uint32_t>(static_cast<int64_t>(v));  // packed colour: keep the bits
            std::memcpy(dst + i * cols + c++, &bits, 4);
          } else {
            dst[i * cols + c++] = static_cast<float>(v);
          }
        }
      }
    }
    return Status::ok();
  }

  const size_t data_at = pos;
  const size_t need = static_cast<size_t>(points) * static_cast<size_t>(record);
  std::string decompressed;
  const unsigned char* data = nullptr;
  bool soa = false;  // binary_compressed stores each field for all points, one field after another
  if (data_kind == "binary") {
    if (bytes.size() - data_at < need) {
      return io_error(name, ": binary data starts at byte ", data_at, " and needs ", need, " bytes (", points,
                      " points x ", record, " bytes) but the file ends at byte ", bytes.size(), " (truncated)");
    }
    data = reinterpret_cast<const unsigned char*>(bytes.data() + data_at);
  } else {
    if (bytes.size() - data_at < 8) {
      return io_error(name, ": binary_compressed data at byte ", data_at, " is missing its 8-byte size header");
    }
    uint32_t csize = 0, usize = 0;
    std::memcpy(&csize, bytes.data() + data_at, 4);
    std::memcpy(&usize, bytes.data() + data_at + 4, 4);
    if (usize != need) {
      return io_error(name, ": binary_compressed header at byte ", data_at, " declares ", usize,
                      " uncompressed bytes but POINTS ", points, " x ", record, " bytes = ", need);
    }
    if (bytes.size() - data_at - 8 < csize) {
      return io_error(name, ": binary_compressed data at byte ", data_at + 8, " declares ", csize,
                      " compressed bytes but the file ends at byte ", bytes.size(), " (truncated)");
    }
    decompressed.resize(need);
    std::string why;
    if (need > 0 && !io::lzf_decompress(reinterpret_cast<const uint8_t*>(bytes.data() + data_at + 8), csize,
                                        reinterpret_cast<uint8_t*>(decompressed.data()), need, &why)) {
      return io_error(name, ": corrupt LZF data (compressed block at byte ", data_at + 8, "): ", why);
    }
    data = reinterpret_cast<const unsigned char*>(decompressed.data());
    soa = true;
  }
  size_t c = 0;
  for (const PcdField& f : fields) {
    if (f.name == "_") continue;
    const int64_t field_bytes = f.size * f.count;
    // Packed colours keep their 32 bits (as PCL stores rgb in a float); view the column as uint32.
    const bool packed_color = f.size == 4 && (f.name == "rgb" || f.name == "rgba");
    for (int64_t k = 0; k < f.count; ++k, ++c) {
      for (int64_t i = 0; i < points; ++i) {
        const unsigned char* p = soa ? data + f.offset * points + i * field_bytes + k * f.size
                                     : data + i * record + f.offset + k * f.size;
        if (packed_color) {
          std::memcpy(dst + i * cols + c, p, 4);
        } else {
          dst[i * cols + c] = load_element(p, f.type, f.size);
        }
      }
    }
  }
  return Status::ok();
}

Status read_pcd(const std::string& path, PointCloudFile* out) {
  std::string bytes;
  ROBOCACHE_RETURN_IF_ERROR(io::read_file(path, &bytes));
  return parse_pcd(bytes, path, out);
}

Status read_point_cloud(const std::string& path, PointCloudFile* out, int bin_columns) {
  if (ends_with(path, ".pcd")) return read_pcd(path, out);
  if (ends_with(path, ".bin")) return read_lidar_bin(path, bin_columns, out);
  return invalid_argument("path must end in .pcd or .bin (KITTI / nuScenes), got '", path, "'");
}

}  // namespace robocache
