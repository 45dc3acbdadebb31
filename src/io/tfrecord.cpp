#include "io/tfrecord.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/crc32c.h"

namespace robocache::io {
namespace {

constexpr uint64_t kHeader = 12, kFooter = 4;

uint64_t load_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint32_t load_u32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Checks the 12-byte header at `offset` of a file of `file_size` bytes; fills the span.
Status check_header(const uint8_t* h, uint64_t offset, uint64_t file_size, const std::string& name, bool verify,
                    TFRecordSpan* span) {
  const uint64_t length = load_u64(h);
  if (verify) {
    const uint32_t stored = load_u32(h + 8), computed = masked_crc32c(h, 8);
    if (stored != computed) {
      return io_error(name, ": corrupt TFRecord length at byte offset ", offset, " (masked CRC32C stored ",
                      hex(stored), ", computed ", hex(computed), ")");
    }
  }
  const uint64_t room = file_size - offset - kHeader;
  if (length > room || room - length < kFooter) {
    return io_error(name, ": truncated TFRecord at byte offset ", offset, ": the record needs ",
                    length + kHeader + kFooter, " bytes but the file ends after ", file_size - offset);
  }
  span->offset = offset;
  span->length = length;
  return Status::ok();
}

Status check_data(const uint8_t* data, const uint8_t* footer, const TFRecordSpan& span, const std::string& name) {
  const uint32_t stored = load_u32(footer), computed = masked_crc32c(data, span.length);
  if (stored != computed) {
    return io_error(name, ": corrupt TFRecord data in the record at byte offset ", span.offset, " (", span.length,
                    " bytes; masked CRC32C stored ", hex(stored), ", computed ", hex(computed), ")");
  }
  return Status::ok();
}

Status truncated_header(const std::string& name, uint64_t offset, uint64_t file_size) {
  return io_error(name, ": truncated TFRecord at byte offset ", offset, ": ", file_size - offset,
                  " bytes left, a record header needs 12");
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status open_file(const std::string& file, Fd* fd, uint64_t* size) {
  fd->fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd->fd < 0) return io_error(file, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd->fd, &st) != 0) return io_error(file, ": cannot stat: ", std::strerror(errno));
  *size = static_cast<uint64_t>(st.st_size);
  return Status::ok();
}

Status pread_all(const Fd& fd, void* dst, uint64_t n, uint64_t offset, const std::string& file) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd.fd, p, n, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return io_error(file, ": read error at byte offset ", offset, ": ", std::strerror(errno));
    }
    if (got == 0) return io_error(file, ": unexpected end of file at byte offset ", offset);
    p += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return Status::ok();
}

}  // namespace

Status index_tfrecord_file(const std::string& file, bool verify, std::vector<TFRecordSpan>* out) {
  out->clear();
  Fd fd;
  uint64_t size = 0;
  ROBOCACHE_RETURN_IF_ERROR(open_file(file, &fd, &size));
  uint64_t offset = 0;
  uint8_t h[kHeader];
  while (offset < size) {
    if (size - offset < kHeader) return truncated_header(file, offset, size);
    ROBOCACHE_RETURN_IF_ERROR(pread_all(fd, h, kHeader, offset, file));
    TFRecordSpan span;
    ROBOCACHE_RETURN_IF_ERROR(check_header(h, offset, size, file, verify, &span));
    out->push_back(span);
    offset += kHeader + span.length + kFooter;
  }
  return Status::ok();
}

Status read_tfrecord(const std::string& file, const TFRecordSpan& span, bool verify, std::string* out) {
  Fd fd;
  uint64_t size = 0;
  ROBOCACHE_RETURN_IF_ERROR(open_file(file, &fd, &size));
  if (span.offset + kHeader + span.length + kFooter > size) {
    return io_error(file, ": truncated TFRecord at byte offset ", span.offset, ": the file shrank to ", size,
                    " bytes since it was indexed");
  }
  out->resize(span.length + kFooter);
  ROBOCACHE_RETURN_IF_ERROR(pread_all(fd, out->data(), span.length + kFooter, span.offset + kHeader, file));
  const auto* p = reinterpret_cast<const uint8_t*>(out->data());
  if (verify) ROBOCACHE_RETURN_IF_ERROR(check_data(p, p + span.length, span, file));
  out->resize(span.length);
  return Status::ok();
}

Status split_tfrecords(const uint8_t* data, size_t size, const std::string& name, bool verify,
                       std::vector<TFRecordSpan>* out) {
  out->clear();
  uint64_t offset = 0;
  while (offset < size) {
    if (size - offset < kHeader) return truncated_header(name, offset, size);
    TFRecordSpan span;
    ROBOCACHE_RETURN_IF_ERROR(check_header(data + offset, offset, size, name, verify, &span));
    const uint8_t* d = data + offset + kHeader;
    if (verify) ROBOCACHE_RETURN_IF_ERROR(check_data(d, d + span.length, span, name));
    out->push_back(span);
    offset += kHeader + span.length + kFooter;
  }
  return Status::ok();
}

}  // namespace robocache::io
