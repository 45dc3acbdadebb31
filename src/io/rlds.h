// RLDS pieces below the Dataset, for tests and fuzzing: features.json -> schema, one record -> Episode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "robocache/episode.h"

namespace robocache::io {

struct RldsSchema;  // the features of a TFDS features.json, flattened ("steps/observation/image_0", ...)

Status parse_rlds_features(const std::string& json_text, const std::string& file,
                           std::shared_ptr<const RldsSchema>* out);

// Decodes one tf.train.Example (a TFRecord's data) into an episode; `where` names it in errors.
Status decode_rlds_record(const RldsSchema& schema, const uint8_t* data, size_t size, const std::string& where,
                          double rate_hz, Episode* out);

}  // namespace robocache::io
