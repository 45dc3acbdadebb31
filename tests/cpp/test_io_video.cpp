// The C++ video API on the real AV1 camera of the G1 LeRobot dataset: frame timestamps, frames at
// requested times, tolerance and missing-file errors. (Pixel values are checked against PyAV in
// tests/python/test_datasets_video.py.)
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "robocache/episode.h"

namespace {

using namespace robocache;

const std::string kVideo = std::string(ROBOCACHE_SHARED_DATA) +
                           "/lerobot/g1_v21/videos/chunk-000/observation.images.cam_high/episode_000001.mp4";

bool video_built() { return dataset_readers()["video_decode"]; }

TEST(IoVideo, TimestampsAndFramesOfTheRealAv1Video) {
  if (!video_built()) GTEST_SKIP() << "built without video decoding";
  if (!std::filesystem::exists(kVideo)) GTEST_SKIP() << kVideo << " not present";
  EpisodeVideo v;
  ASSERT_TRUE(open_video(kVideo, "cam_high", &v).is_ok());
  Array ts;
  Status s = video_frame_timestamps(v, &ts);
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_EQ(ts.shape_str(), "[393]");
  for (int64_t i = 0; i < 393; ++i) EXPECT_NEAR(ts.ptr<double>()[i], i / 30.0, 1e-9) << i;
  const double t[3] = {1.0, 0.0, 1.0 + 4e-5};
  Array frames;
  s = decode_video_frames(v, t, 3, 1e-4, &frames);
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_EQ(frames.shape_str(), "[3, 480, 640, 3]");
  const size_t n = 480 * 640 * 3;
  const uint8_t* p = frames.ptr<uint8_t>();
  EXPECT_EQ(std::memcmp(p, p + 2 * n, n), 0);  // the same frame, asked twice
  EXPECT_NE(std::memcmp(p, p + n, n), 0);
  Array none;
  ASSERT_TRUE(decode_video_frames(v, t, 0, 1e-4, &none).is_ok());
  EXPECT_EQ(none.shape_str(), "[0, 480, 640, 3]");
}

TEST(IoVideo, Errors) {
  if (!video_built()) GTEST_SKIP() << "built without video decoding";
  if (!std::filesystem::exists(kVideo)) GTEST_SKIP() << kVideo << " not present";
  EpisodeVideo v;
  ASSERT_TRUE(open_video(kVideo, "cam_high", &v).is_ok());
  Array out;
  const double late = 20.5;
  Status s = decode_video_frames(v, &late, 1, 1e-4, &out);
  EXPECT_EQ(s.code(), StatusCode::IOError);
  EXPECT_NE(s.message().find("video 'cam_high': " + kVideo + ": no frame within tolerance_s=0.0001 of t=20.5 s"),
            std::string::npos) << s.message();
  const double zero = 0.0;
  s = decode_video_frames(v, &zero, 1, -1.0, &out);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  // a video named by a dataset but not on disk: the key, the episode and the path
  EpisodeVideo missing = v;
  missing.path = kVideo + ".missing.mp4";
  missing.episode_index = 7;
  s = decode_video_frames(missing, &zero, 1, 1e-4, &out);
  EXPECT_EQ(s.code(), StatusCode::IOError);
  EXPECT_EQ(s.message(), "video 'cam_high' of episode 7: " + missing.path +
                             ": video file missing (named by the dataset's metadata)");
  EXPECT_FALSE(open_video(missing.path, "", &v).is_ok());
}

}  // namespace
