// libhdf5 helpers shared by the RoboMimic / robosuite episode reader (hdf5.cpp) and the RoboMimic sequence
// windows (robomimic_windows.cpp). Debian's libhdf5 is not built thread-safe: every HDF5 call runs under
// hdf5_lock().
#pragma once
#ifdef ROBOCACHE_WITH_HDF5

#include <hdf5.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "robocache/status.h"
#include "robocache/tensor.h"

namespace robocache::io {

std::recursive_mutex& hdf5_lock();

// Registers the decoders for filters that h5py writes but libhdf5 lacks (LZF); once, before the first read.
void register_filters();

// Closes an HDF5 handle with the matching H5*close on scope exit.
struct Handle {
  hid_t id = H5I_INVALID_HID;
  herr_t (*close)(hid_t) = nullptr;
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id >= 0 && close) close(id);
  }
  bool ok() const { return id >= 0; }
};

// The innermost message on HDF5's error stack (and clears the stack), for our error text.
std::string hdf5_message();

// Names of a group's members, in name order.
std::vector<std::string> child_names(hid_t group);

// Whether `name` under `parent` exists and is a group (or a dataset).
bool is_group(hid_t parent, const std::string& name);
bool is_dataset(hid_t parent, const std::string& name);

// A string attribute (fixed or variable length), or "" when absent / not a string.
std::string string_attr(hid_t obj, const char* name);

// Every attribute of an object as text: strings as they are, numbers in their shortest exact form.
void attrs_as_text(hid_t obj, const std::string& prefix, std::map<std::string, std::string>* out);

struct Mapped {
  DType dtype;
  hid_t mem_type;  // what H5Dread converts into
  bool raw_bool = false;
};

// The HDF5 file type onto the episode model's dtypes; narrower integers widen losslessly (HDF5 converts).
bool map_type(hid_t ft, Mapped* out);

// "demo_12" -> 12; false for any other name.
bool demo_number(const std::string& name, int64_t* n);

// Reads a 1-d string dataset (RoboMimic's mask/<filter key>: the demo names).
Status read_string_list(hid_t file, const std::string& key, const std::string& path, std::vector<std::string>* out);

}  // namespace robocache::io

#endif  // ROBOCACHE_WITH_HDF5
