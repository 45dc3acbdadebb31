#ifdef ROBOCACHE_WITH_HDF5
#include "io/hdf5_util.h"

#include <cstring>

#include "io/lzf.h"

namespace robocache::io {

std::recursive_mutex& hdf5_lock() {
  static std::recursive_mutex m;
  return m;
}

// The innermost message on HDF5's error stack, for our error text.
std::string hdf5_message() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD,
           [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
             auto* s = static_cast<std::string*>(out);
             if (s->empty() && e->desc) *s = e->desc;
             return 0;
           },
           &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg.empty() ? "HDF5 error" : msg;
}

// Names of a group's members, in name order (H5Gget_info / H5Lget_name_by_idx: the same in HDF5 1.10 to 1.14).
std::vector<std::string> child_names(hid_t group) {
  std::vector<std::string> names;
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) continue;
    std::string name(static_cast<size_t>(n), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    names.push_back(std::move(name));
  }
  return names;
}

namespace {
bool is_type(hid_t parent, const std::string& name, H5I_type_t type) {
  if (H5Lexists(parent, name.c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  const hid_t obj = H5Oopen(parent, name.c_str(), H5P_DEFAULT);
  if (obj < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  const bool match = H5Iget_type(obj) == type;
  H5Oclose(obj);
  return match;
}
}  // namespace

bool is_group(hid_t parent, const std::string& name) { return is_type(parent, name, H5I_GROUP); }
bool is_dataset(hid_t parent, const std::string& name) { return is_type(parent, name, H5I_DATASET); }

// A string attribute (fixed or variable length), or "" when absent / not a string.
std::string string_attr(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return "";
  Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!a.ok()) return "";
  Handle ft(H5Aget_type(a.id), H5Tclose);
  if (H5Tget_class(ft.id) != H5T_STRING) return "";
  Handle space(H5Aget_space(a.id), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.id) != 1) return "";
  if (H5Tis_variable_str(ft.id) > 0) {
    Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mt.id, H5T_VARIABLE);
    H5Tset_cset(mt.id, H5Tget_cset(ft.id));
    char* s = nullptr;
    if (H5Aread(a.id, mt.id, &s) < 0 || !s) return "";
    std::string out(s);
    H5free_memory(s);
    return out;
  }
  const size_t n = H5Tget_size(ft.id);
  std::string out(n, '\0');
  if (H5Aread(a.id, ft.id, out.data()) < 0) return "";
  out.resize(std::strlen(out.c_str()));
  return out;
}

// Every attribute of an object as text: strings as they are, numbers in their shortest exact form.
void attrs_as_text(hid_t obj, const std::string& prefix, std::map<std::string, std::string>* out) {
  std::pair<std::string, std::map<std::string, std::string>*> ctx(prefix, out);
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t o, const char* name, const H5A_info_t*, void* data) -> herr_t {
                auto* ctx = static_cast<std::pair<std::string, std::map<std::string, std::string>*>*>(data);
                std::string text = string_attr(o, name);
                if (text.empty()) {
                  Handle a(H5Aopen(o, name, H5P_DEFAULT), H5Aclose);
                  Handle space(H5Aget_space(a.id), H5Sclose);
                  Handle ft(H5Aget_type(a.id), H5Tclose);
                  const hssize_t n = H5Sget_simple_extent_npoints(space.id);
                  const H5T_class_t cls = H5Tget_class(ft.id);
                  if (n >= 1 && n <= 64 && (cls == H5T_INTEGER || cls == H5T_FLOAT)) {
                    std::vector<double> v(n);
                    if (H5Aread(a.id, H5T_NATIVE_DOUBLE, v.data()) >= 0) {
                      for (hssize_t i = 0; i < n; ++i) text += detail::concat(i ? ", " : "", v[i]);
                    }
                  }
                }
                (*ctx->second)[ctx->first + name] = text;
                return 0;
              },
              &ctx);
}

// The HDF5 file type onto the episode model's dtypes; narrower integers widen losslessly (HDF5 converts).
bool map_type(hid_t ft, Mapped* out) {
  const H5T_class_t cls = H5Tget_class(ft);
  const size_t size = H5Tget_size(ft);
  if (cls == H5T_FLOAT) {
    if (size == 4) *out = {DType::Float32, H5T_NATIVE_FLOAT};
    else if (size == 8) *out = {DType::Float64, H5T_NATIVE_DOUBLE};
    else return false;
    return true;
  }
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(ft) == H5T_SGN_2;
    if (!is_signed && size == 1) *out = {DType::UInt8, H5T_NATIVE_UINT8};
    else if (size == 8 && is_signed) *out = {DType::Int64, H5T_NATIVE_INT64};
    else if (size <= 2 || (size == 4 && is_signed)) *out = {DType::Int32, H5T_NATIVE_INT32};
    else if (size == 4) *out = {DType::Int64, H5T_NATIVE_INT64};
    else return false;  // uint64 does not fit int64
    return true;
  }
  if (cls == H5T_ENUM && size == 1) {  // h5py's bool: an int8 enum {FALSE, TRUE}
    *out = {DType::Bool, H5T_NATIVE_UINT8, true};
    return true;
  }
  return false;
}


bool demo_number(const std::string& name, int64_t* n) {
  if (name.rfind("demo_", 0) != 0 || name.size() == 5 || name.size() > 20) return false;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + (name[i] - '0');
  }
  *n = v;
  return true;
}

// Reads a 1-d string dataset (RoboMimic's mask/<filter key>: the demo names).
Status read_string_list(hid_t file, const std::string& key, const std::string& path, std::vector<std::string>* out) {
  Handle d(H5Dopen2(file, key.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) return io_error(path, ": cannot open dataset '", key, "': ", hdf5_message());
  Handle ft(H5Dget_type(d.id), H5Tclose);
  Handle space(H5Dget_space(d.id), H5Sclose);
  if (H5Tget_class(ft.id) != H5T_STRING || H5Sget_simple_extent_ndims(space.id) != 1)
    return io_error(path, ": '", key, "' must be a 1-d array of demo names (strings)");
  const hssize_t n = H5Sget_simple_extent_npoints(space.id);
  out->clear();
  if (H5Tis_variable_str(ft.id) > 0) {
    std::vector<char*> v(n);
    Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mt.id, H5T_VARIABLE);
    H5Tset_cset(mt.id, H5Tget_cset(ft.id));
    if (n && H5Dread(d.id, mt.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
      return io_error(path, ": cannot read '", key, "': ", hdf5_message());
    for (char* s : v) out->push_back(s ? s : "");
    if (n) H5Dvlen_reclaim(mt.id, space.id, H5P_DEFAULT, v.data());
  } else {
    const size_t w = H5Tget_size(ft.id);
    std::vector<char> buf(n * w + 1, '\0');
    if (n && H5Dread(d.id, ft.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      return io_error(path, ": cannot read '", key, "': ", hdf5_message());
    for (hssize_t i = 0; i < n; ++i) out->push_back(std::string(buf.data() + i * w, strnlen(buf.data() + i * w, w)));
  }
  return Status::ok();
}

namespace {

// h5py's LZF filter (id 32000, h5py/lzf/lzf_filter.c): each chunk is one raw LZF stream; cd_values[2] is
// the chunk's uncompressed size in bytes. h5py registers it only inside its own copy of libhdf5, so files
// written with compression="lzf" need it here too. Decoding only: RoboCache never writes HDF5.
constexpr H5Z_filter_t kLzfFilter = 32000;

size_t lzf_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes, size_t* buf_size,
                  void** buf) {
  if (!(flags & H5Z_FLAG_REVERSE)) return 0;  // compression is not offered
  if (cd_nelmts < 3 || cd_values[2] == 0) return 0;
  const size_t out_size = cd_values[2];
  void* out = H5allocate_memory(out_size, false);
  if (!out) return 0;
  std::string error;
  if (!lzf_decompress(static_cast<const uint8_t*>(*buf), nbytes, static_cast<uint8_t*>(out), out_size, &error)) {
    H5free_memory(out);
    return 0;
  }
  H5free_memory(*buf);
  *buf = out;
  *buf_size = out_size;
  return out_size;
}

}  // namespace

void register_filters() {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  static bool done = false;
  if (done) return;
  done = true;
  if (H5Zfilter_avail(kLzfFilter) > 0) return;  // a plugin of the system's HDF5 has it already
  H5Eclear2(H5E_DEFAULT);
  static const H5Z_class2_t lzf = {H5Z_CLASS_T_VERS, kLzfFilter, 0, 1, "lzf (RoboCache, decode only)",
                                   nullptr, nullptr, lzf_filter};
  H5Zregister(&lzf);
  H5Eclear2(H5E_DEFAULT);
}

}  // namespace robocache::io
#endif  // ROBOCACHE_WITH_HDF5
