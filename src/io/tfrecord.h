// TFRecord framing: each record is
//   uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)
// (little-endian). Both CRCs are checked on every record; a mismatch or a short file is an IOError that
// names the file and the record's byte offset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "robocache/status.h"

namespace robocache::io {

struct TFRecordSpan {
  uint64_t offset = 0;  // of the record header in the file
  uint64_t length = 0;  // of the data
};

// Walks the record headers of a file (12 bytes per record, the data is skipped), checking each length
// CRC and that every record ends inside the file.
Status index_tfrecord_file(const std::string& file, bool verify, std::vector<TFRecordSpan>* out);

// Reads one record's data (found by index_tfrecord_file) and checks its data CRC.
Status read_tfrecord(const std::string& file, const TFRecordSpan& span, bool verify, std::string* out);

// Splits an in-memory file into records, checking both CRCs of each (tests and fuzzing).
Status split_tfrecords(const uint8_t* data, size_t size, const std::string& name, bool verify,
                       std::vector<TFRecordSpan>* out);

}  // namespace robocache::io
