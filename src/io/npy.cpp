#include "io/npy.h"

#include <cstring>
#include "io/file.h"
#include <iterator>
#include <limits>
#include <vector>

namespace robocache::io {
namespace {

// The value after 'key': in the header dict, as raw text up to its end.
bool find_value(const std::string& header, const std::string& key, size_t* pos) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return false;
  size_t p = header.find(':', k);
  if (p == std::string::npos) return false;
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  *pos = p;
  return p < header.size();
}

struct SrcType {
  int bytes = 0;
  char kind = 0;  // 'f', 'i', 'u', 'b'
};

}  // namespace

Status parse_npy_header(const uint8_t* data, size_t size, const std::string& where, NpyHeader* out) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || std::memcmp(data, magic, 6) != 0) return io_error(where, ": not a .npy array (bad magic bytes at byte offset 0)");
  const int major = data[6];
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = data[8] | (data[9] << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return io_error(where, ": truncated .npy header (", size, " bytes)");
    header_len = data[8] | (data[9] << 8) | (data[10] << 16) | (size_t(data[11]) << 24);
    header_start = 12;
  } else {
    return io_error(where, ": unsupported .npy format version ", major, " (byte offset 6)");
  }
  if (header_len > size - header_start)
    return io_error(where, ": truncated .npy header: it needs ", header_len, " bytes from byte offset ", header_start,
                    ", the array has ", size - header_start);
  const std::string header(reinterpret_cast<const char*>(data + header_start), header_len);
  size_t p = 0;
  // descr
  if (!find_value(header, "descr", &p) || header[p] != '\'')
    return io_error(where, ": .npy header has no 'descr' string: ", header);
  const size_t q = header.find('\'', p + 1);
  if (q == std::string::npos) return io_error(where, ": .npy header has an unterminated 'descr': ", header);
  const std::string descr = header.substr(p + 1, q - p - 1);
  // fortran_order
  if (!find_value(header, "fortran_order", &p)) return io_error(where, ": .npy header has no 'fortran_order': ", header);
  bool fortran = false;
  if (header.compare(p, 4, "True") == 0) fortran = true;
  else if (header.compare(p, 5, "False") != 0) return io_error(where, ": .npy header has a bad 'fortran_order': ", header);
  // shape
  if (!find_value(header, "shape", &p) || header[p] != '(') return io_error(where, ": .npy header has no 'shape' tuple: ", header);
  const size_t close = header.find(')', p);
  if (close == std::string::npos) return io_error(where, ": .npy header has an unterminated 'shape': ", header);
  std::vector<int64_t> shape;
  for (size_t i = p + 1; i < close;) {
    while (i < close && (header[i] == ' ' || header[i] == ',')) ++i;
    if (i >= close) break;
    if (header[i] < '0' || header[i] > '9') return io_error(where, ": .npy header has a bad 'shape': ", header);
    int64_t v = 0;
    while (i < close && header[i] >= '0' && header[i] <= '9') {
      if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) return io_error(where, ": .npy shape overflows: ", header);
      v = v * 10 + (header[i++] - '0');
    }
    shape.push_back(v);
  }
  if (shape.size() > static_cast<size_t>(kMaxDims))
    return io_error(where, ": .npy array has ", shape.size(), " dimensions, at most ", kMaxDims, " are supported");
  // dtype
  if (descr.size() >= 2 && descr[1] == 'O')
    return io_error(where, ": .npy holds Python objects (pickled, dtype '", descr, "'), which are not read");
  if (descr.size() < 3) return io_error(where, ": unsupported .npy dtype '", descr, "'");
  const char order = descr[0];
  const char kind = descr[1];
  int bytes = 0;
  try {
    bytes = std::stoi(descr.substr(2));
  } catch (const std::exception&) {
    return io_error(where, ": unsupported .npy dtype '", descr, "'");
  }
  if (order == '>' && bytes > 1) return io_error(where, ": big-endian .npy dtype '", descr, "' is not supported");
  const bool known = (kind == 'f' && (bytes == 2 || bytes == 4 || bytes == 8)) ||
                     ((kind == 'i' || kind == 'u') && (bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8)) ||
                     (kind == 'b' && bytes == 1);
  if (!known) return io_error(where, ": unsupported .npy dtype '", descr, "'");
  // size
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > std::numeric_limits<int64_t>::max() / 16 / d)
      return io_error(where, ": .npy shape is too large: ", header);
    numel *= d;
  }
  const size_t data_start = header_start + header_len;
  const uint64_t need = static_cast<uint64_t>(numel) * bytes;
  if (size - data_start != need) {
    std::string shape_str = "[";
    for (size_t d = 0; d < shape.size(); ++d) shape_str += (d ? ", " : "") + std::to_string(shape[d]);
    return io_error(where, ": .npy data is ", size - data_start, " bytes from byte offset ", data_start, ", its header (",
                    descr, ", shape ", shape_str, "]) needs ", need);
  }
  out->descr = descr;
  out->kind = kind;
  out->itemsize = bytes;
  out->fortran = fortran;
  out->shape = std::move(shape);
  out->data_offset = data_start;
  out->numel = numel;
  return Status::ok();
}

Status parse_npy(const uint8_t* data, size_t size, const std::string& where, Array* out) {
  NpyHeader h;
  ROBOCACHE_RETURN_IF_ERROR(parse_npy_header(data, size, where, &h));
  SrcType src;
  src.kind = h.kind;
  src.bytes = h.itemsize;
  const std::string& descr = h.descr;
  const std::vector<int64_t>& shape = h.shape;
  const bool fortran = h.fortran;
  const int64_t numel = h.numel;
  const uint64_t need = static_cast<uint64_t>(numel) * src.bytes;
  DType dtype;
  if (src.kind == 'f' && src.bytes == 2) dtype = DType::Float16;
  else if (src.kind == 'f' && src.bytes == 4) dtype = DType::Float32;
  else if (src.kind == 'f' && src.bytes == 8) dtype = DType::Float64;
  else if (src.kind == 'i' && src.bytes == 8) dtype = DType::Int64;
  else if (src.kind == 'i' && src.bytes <= 4 && (src.bytes == 1 || src.bytes == 2 || src.bytes == 4)) dtype = DType::Int32;
  else if (src.kind == 'u' && src.bytes == 1) dtype = DType::UInt8;
  else if (src.kind == 'u' && src.bytes == 2) dtype = DType::Int32;
  else if (src.kind == 'u' && src.bytes == 4) dtype = DType::Int64;
  else if (src.kind == 'b' && src.bytes == 1) dtype = DType::Bool;
  else return io_error(where, ": unsupported .npy dtype '", descr, "'");
  const size_t data_start = h.data_offset;
  Array a = Array::empty(dtype, shape);
  const uint8_t* s = data + data_start;
  const size_t dsize = dtype_size(dtype);
  // C-order destination index -> source element (Fortran order reverses the strides).
  std::vector<int64_t> src_stride(shape.size(), 1);
  if (fortran) {
    for (size_t d = 1; d < shape.size(); ++d) src_stride[d] = src_stride[d - 1] * shape[d - 1];
  } else {
    for (size_t d = shape.size(); d-- > 1;) src_stride[d - 1] = src_stride[d] * shape[d];
  }
  const bool same = static_cast<size_t>(src.bytes) == dsize && (!fortran || shape.size() <= 1);
  if (same) {
    if (need) std::memcpy(a.data(), s, need);
  } else {
    uint8_t* dst = a.ptr<uint8_t>();
    std::vector<int64_t> idx(shape.size(), 0);
    for (int64_t i = 0; i < numel; ++i) {
      int64_t off = 0;
      for (size_t d = 0; d < shape.size(); ++d) off += idx[d] * src_stride[d];
      const uint8_t* e = s + off * src.bytes;
      if (static_cast<size_t>(src.bytes) == dsize) {
        std::memcpy(dst + i * dsize, e, dsize);
      } else {
        int64_t v = 0;
        if (src.kind == 'i' && src.bytes == 1) v = static_cast<int8_t>(*e);
        else if (src.kind == 'i' && src.bytes == 2) { int16_t x; std::memcpy(&x, e, 2); v = x; }
        else if (src.kind == 'u' && src.bytes == 2) { uint16_t x; std::memcpy(&x, e, 2); v = x; }
        else if (src.kind == 'u' && src.bytes == 4) { uint32_t x; std::memcpy(&x, e, 4); v = x; }
        if (dsize == 4) { const int32_t x = static_cast<int32_t>(v); std::memcpy(dst + i * 4, &x, 4); }
        else std::memcpy(dst + i * 8, &v, 8);
      }
      for (size_t d = shape.size(); d-- > 0;) {
        if (++idx[d] < shape[d]) break;
        idx[d] = 0;
      }
    }
  }
  *out = std::move(a);
  return Status::ok();
}

Status read_npy_file(const std::string& file, Array* out) {
  std::string raw;
  ROBOCACHE_RETURN_IF_ERROR(read_file(file, &raw));
  return parse_npy(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), file, out);
}

}  // namespace robocache::io
