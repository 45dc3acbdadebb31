#pragma once

#include "robocache/build_info.h"
#include "robocache/device_memory.h"
#include "robocache/loader.h"
#include "robocache/ops.h"
#include "robocache/pointcloud_io.h"
#include "robocache/status.h"
#include "robocache/tensor.h"
#include "robocache/voxelize.h"
