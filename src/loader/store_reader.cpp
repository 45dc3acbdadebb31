#include "loader/store_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/json_file.h"
#include "io/npy.h"

namespace robocache::loader {

Status MappedFile::open(const std::string& path, std::unique_ptr<MappedFile>* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path, ": cannot open file: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error(path, ": cannot stat file: ", std::strerror(err));
  }
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return io_error(path, ": cannot memory-map ", f->size_, " bytes: ", std::strerror(err));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid
  *out = std::move(f);
  return Status::ok();
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::advise_random() const {
  if (data_ != nullptr) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_RANDOM);
}

void MappedFile::evict() const {
  if (data_ != nullptr) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_DONTNEED);
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fdatasync(fd);  // only clean pages leave the page cache
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

namespace {

using nlohmann::json;

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// manifest.json's dtype string ("<f4", "|i1") -> kind and size.
Status parse_dtype(const std::string& dtype, const std::string& where, ScalarType* out) {
  if (dtype.size() < 3) return io_error(where, ": manifest.json has an unsupported dtype '", dtype, "'");
  out->kind = dtype[1];
  try {
    out->bytes = std::stoi(dtype.substr(2));
  } catch (const std::exception&) {
    return io_error(where, ": manifest.json has an unsupported dtype '", dtype, "'");
  }
  const bool ok = (out->kind == 'f' && (out->bytes == 2 || out->bytes == 4 || out->bytes == 8)) ||
                  ((out->kind == 'i' || out->kind == 'u') &&
                   (out->bytes == 1 || out->bytes == 2 || out->bytes == 4 || out->bytes == 8)) ||
                  (out->kind == 'b' && out->bytes == 1);
  if (!ok || (dtype[0] == '>' && out->bytes > 1))
    return io_error(where, ": manifest.json has an unsupported dtype '", dtype, "'");
  return Status::ok();
}

// A json value of the wanted type, or an error naming the key.
template <class T>
Status get(const json& obj, const char* key, const std::string& where, T* out) {
  if (!obj.is_object() || !obj.contains(key))
    return io_error(where, ": manifest.json has no '", key, "'");
  try {
    *out = obj.at(key).get<T>();
  } catch (const json::exception& e) {
    return io_error(where, ": manifest.json key '", key, "' has the wrong type (", e.what(), ")");
  }
  return Status::ok();
}

// Checks that the offsets off[0..n] start at 0, never decrease and end at `end`.
Status check_offsets(const int64_t* off, int64_t n, int64_t end, const std::string& file, const char* what,
                     size_t data_offset) {
  if (off[0] != 0) return io_error(file, ": ", what, "[0] = ", off[0], ", expected 0 (corrupt offsets)");
  for (int64_t i = 1; i <= n; ++i) {
    if (off[i] < off[i - 1])
      return io_error(file, ": ", what, "[", i, "] = ", off[i], " < ", what, "[", i - 1, "] = ", off[i - 1],
                      " (corrupt offsets at byte offset ", data_offset + 8 * static_cast<size_t>(i), ")");
  }
  if (off[n] != end)
    return io_error(file, ": ", what, "[", n, "] = ", off[n], " but the data it indexes has ", end, " rows");
  return Status::ok();
}

}  // namespace

Status StoreReader::open(const std::string& path, const std::vector<std::string>& names,
                         std::unique_ptr<StoreReader>* out) {
  std::unique_ptr<StoreReader> r(new StoreReader());
  r->path_ = path;
  const std::string mf = path + "/manifest.json";
  json manifest;
  ROBOCACHE_RETURN_IF_ERROR(io::read_json_file(mf, &manifest));
  const std::string where_store = "store " + path;
  std::string format;
  int64_t version = 0;
  ROBOCACHE_RETURN_IF_ERROR(get(manifest, "format", mf, &format));
  ROBOCACHE_RETURN_IF_ERROR(get(manifest, "version", mf, &version));
  if (format != "robocache-store" || version != 1)
    return io_error(mf, ": format '", format, "' version ", version, ", expected 'robocache-store' version 1");
  ROBOCACHE_RETURN_IF_ERROR(get(manifest, "num_episodes", mf, &r->num_episodes_));
  if (r->num_episodes_ < 0) return io_error(mf, ": num_episodes = ", r->num_episodes_);
  if (!manifest.contains("streams") || !manifest["streams"].is_array())
    return io_error(mf, ": manifest.json has no 'streams' list");
  const json& files = manifest.contains("files") ? manifest["files"] : json::object();

  std::vector<const json*> chosen;
  if (names.empty()) {
    for (const json& s : manifest["streams"]) chosen.push_back(&s);
  } else {
    for (const std::string& n : names) {
      const json* found = nullptr;
      std::string have;
      for (const json& s : manifest["streams"]) {
        std::string name;
        ROBOCACHE_RETURN_IF_ERROR(get(s, "name", mf, &name));
        if (name == n) found = &s;
        have += (have.empty() ? "" : ", ") + ("'" + name + "'");
      }
      if (found == nullptr)
        return invalid_argument("streams: no stream '", n, "' in store ", path, "; it has ", have);
      chosen.push_back(found);
    }
  }

  for (const json* sp : chosen) {
    const json& s = *sp;
    StoreStream st;
    std::string kind, dtype, unit, dir;
    ROBOCACHE_RETURN_IF_ERROR(get(s, "name", mf, &st.name));
    ROBOCACHE_RETURN_IF_ERROR(get(s, "kind", mf, &kind));
    ROBOCACHE_RETURN_IF_ERROR(get(s, "dtype", mf, &dtype));
    ROBOCACHE_RETURN_IF_ERROR(get(s, "shape", mf, &st.shape));
    ROBOCACHE_RETURN_IF_ERROR(get(s, "encoding", mf, &st.encoding));
    ROBOCACHE_RETURN_IF_ERROR(get(s, "time_unit", mf, &unit));
    ROBOCACHE_RETURN_IF_ERROR(get(s, "dir", mf, &dir));
    st.where = "stream '" + st.name + "' (" + dir + ") of store " + path;
    if (kind == "tensor") st.kind = StoreKind::Tensor;
    else if (kind == "bytes") st.kind = StoreKind::Bytes;
    else if (kind == "pointcloud") st.kind = StoreKind::PointCloud;
    else return io_error(mf, ": ", st.where, " has an unknown kind '", kind, "'");
    if (unit != "s" && unit != "ns") return io_error(mf, ": ", st.where, " has an unknown time_unit '", unit, "'");
    st.ns = unit == "ns";
    ROBOCACHE_RETURN_IF_ERROR(parse_dtype(dtype, mf + ": " + st.where, &st.type));
    st.width = 1;
    for (int64_t d : st.shape) {
      if (d < 0) return io_error(mf, ": ", st.where, " has a negative shape ", shape_str(st.shape));
      st.width *= d;
    }

    // Maps one column, checks its size against the manifest and its header against `want_kind/bytes`.
    auto column = [&](const char* file, char want_kind, int want_bytes, io::NpyHeader* h,
                      const uint8_t** data) -> Status {
      const std::string rel = dir + "/" + file;
      const std::string full = path + "/" + rel;
      std::unique_ptr<MappedFile> m;
      ROBOCACHE_RETURN_IF_ERROR(MappedFile::open(full, &m));
      if (files.is_object() && files.contains(rel) && files[rel].contains("bytes")) {
        const int64_t want = files[rel]["bytes"].get<int64_t>();
        if (static_cast<int64_t>(m->size()) != want)
          return io_error(full, ": ", m->size(), " bytes, manifest.json says ", want, " (truncated or modified)");
      }
      ROBOCACHE_RETURN_IF_ERROR(io::parse_npy_header(m->data(), m->size(), full, h));
      if (h->kind != want_kind || h->itemsize != want_bytes)
        return io_error(full, ": holds dtype '", h->descr, "', ", st.where, " needs '", want_kind, want_bytes, "'");
      if (h->fortran && h->shape.size() > 1) return io_error(full, ": Fortran-order arrays are not read in place");
      *data = m->data() + h->data_offset;
      m->advise_random();
      r->files_.push_back(std::move(m));
      return Status::ok();
    };

    io::NpyHeader th, eh, dh, ih;
    ROBOCACHE_RETURN_IF_ERROR(column("timestamps.npy", st.ns ? 'i' : 'f', 8, &th,
                                     reinterpret_cast<const uint8_t**>(&st.timestamps)));
    if (th.shape.size() != 1)
      return io_error(path, "/", dir, "/timestamps.npy: shape ", shape_str(th.shape), ", expected one dimension");
    st.num_samples = th.shape[0];
    const uint8_t* ep = nullptr;
    ROBOCACHE_RETURN_IF_ERROR(column("episodes.npy", 'i', 8, &eh, &ep));
    st.episodes = reinterpret_cast<const int64_t*>(ep);
    const std::string ep_file = path + "/" + dir + "/episodes.npy";
    if (eh.shape != std::vector<int64_t>{r->num_episodes_ + 1})
      return io_error(ep_file, ": shape ", shape_str(eh.shape), ", expected [", r->num_episodes_ + 1,
                      "] (num_episodes + 1)");
    ROBOCACHE_RETURN_IF_ERROR(check_offsets(st.episodes, r->num_episodes_, st.num_samples, ep_file, "episodes",
                                            eh.data_offset));

    const std::string data_file = path + "/" + dir + "/data.npy";
    if (st.kind == StoreKind::Tensor) {
      ROBOCACHE_RETURN_IF_ERROR(column("data.npy", st.type.kind, st.type.bytes, &dh, &st.data));
      std::vector<int64_t> want = {st.num_samples};
      want.insert(want.end(), st.shape.begin(), st.shape.end());
      if (dh.shape != want)
        return io_error(data_file, ": shape ", shape_str(dh.shape), ", ", st.where, " needs ", shape_str(want));
      st.data_rows = st.num_samples;
    } else {
      const bool bytes = st.kind == StoreKind::Bytes;
      ROBOCACHE_RETURN_IF_ERROR(column("data.npy", bytes ? 'u' : st.type.kind, bytes ? 1 : st.type.bytes, &dh, &st.data));
      const std::vector<int64_t> want_tail = bytes ? std::vector<int64_t>{} : st.shape;
      if (dh.shape.empty() || std::vector<int64_t>(dh.shape.begin() + 1, dh.shape.end()) != want_tail)
        return io_error(data_file, ": shape ", shape_str(dh.shape), ", ", st.where, " needs [N] + ", shape_str(want_tail));
      st.data_rows = dh.shape[0];
      const uint8_t* items = nullptr;
      ROBOCACHE_RETURN_IF_ERROR(column("items.npy", 'i', 8, &ih, &items));
      st.items = reinterpret_cast<const int64_t*>(items);
      const std::string items_file = path + "/" + dir + "/items.npy";
      if (ih.shape != std::vector<int64_t>{st.num_samples + 1})
        return io_error(items_file, ": shape ", shape_str(ih.shape), ", expected [", st.num_samples + 1, "]");
      ROBOCACHE_RETURN_IF_ERROR(check_offsets(st.items, st.num_samples, st.data_rows, items_file, "items", ih.data_offset));
    }
    r->streams_.push_back(std::move(st));
  }
  *out = std::move(r);
  return Status::ok();
}

}  // namespace robocache::loader
