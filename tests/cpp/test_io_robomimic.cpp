// RoboMimic sequence windows through the C++ API, on the real robosuite Lift demo (raw layout: no
// num_samples, no obs), checked against the episode reader's arrays with a plain loop.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "robocache/episode.h"
#include "robocache/robomimic.h"

namespace {

using namespace robocache;
namespace fs = std::filesystem;

const fs::path kLift = fs::path(ROBOCACHE_SHARED_DATA) / "robosuite" / "lift" / "demo.hdf5";

TEST(IoRobomimicWindows, RawRobosuiteLiftMatchesEpisodeRows) {
  if (!dataset_readers()["robomimic"]) GTEST_SKIP() << "HDF5 reader not built";
  if (!fs::exists(kLift)) GTEST_SKIP() << kLift << " not present";
  std::unique_ptr<Dataset> ds;
  ASSERT_TRUE(open_dataset(kLift.string(), {}, &ds).is_ok());
  Episode ep;
  ASSERT_TRUE(ds->read_episode(0, &ep).is_ok());
  const EpisodeStream* states = ep.find("states");
  ASSERT_NE(states, nullptr);
  const int64_t L = states->length(), D = states->data.shape[1];

  RobomimicWindowOptions o;
  o.dataset_keys = {"states", "actions"};
  o.load_next_obs = false;
  o.get_pad_mask = true;
  for (const auto& [fs_, seq, pad] : {std::tuple<int64_t, int64_t, bool>{3, 2, true}, {4, 5, false}}) {
    o.frame_stack = fs_;
    o.seq_length = seq;
    o.pad_frame_stack = o.pad_seq_length = pad;
    std::unique_ptr<RobomimicWindows> w;
    const Status s = open_robomimic_windows(kLift.string(), o, &w);
    ASSERT_TRUE(s.is_ok()) << s.message();
    const int64_t T = fs_ - 1 + seq;
    ASSERT_EQ(w->window_length(), T);
    ASSERT_EQ(w->size(), pad ? L : L - T + 1);
    ASSERT_EQ(w->demos(), std::vector<std::string>{"demo_1"});
    for (int64_t i : {int64_t{0}, int64_t{1}, L / 2, w->size() - 1}) {
      int64_t demo = -1, anchor = -1;
      ASSERT_TRUE(w->locate(i, &demo, &anchor).is_ok());
      EXPECT_EQ(demo, 0);
      EXPECT_EQ(anchor, pad ? i : i + fs_ - 1);
      std::vector<WindowItem> items;
      ASSERT_TRUE(w->read(i, &items).is_ok());
      ASSERT_EQ(items.size(), 4u);  // states, actions, pad_mask, obs/pad_mask
      EXPECT_EQ(items[0].name, "states");
      EXPECT_EQ(items[2].name, "pad_mask");
      EXPECT_EQ(items[3].name, "obs/pad_mask");
      ASSERT_EQ(items[0].data.shape, (std::vector<int64_t>{T, D}));
      for (int64_t r = 0; r < T; ++r) {
        const int64_t row = anchor - (fs_ - 1) + r;
        const int64_t src = std::min(std::max<int64_t>(row, 0), L - 1);
        EXPECT_EQ(std::memcmp(items[0].data.ptr<double>() + r * D, states->data.ptr<double>() + src * D, D * 8), 0)
            << "window " << i << " row " << r;
        EXPECT_EQ(items[2].data.ptr<uint8_t>()[r], row >= 0 && row < L) << "window " << i << " row " << r;
      }
    }
    const int64_t idx[3] = {w->size() - 1, 0, 7};
    std::vector<WindowItem> batch, one;
    ASSERT_TRUE(w->read_batch(idx, 3, &batch).is_ok());
    ASSERT_EQ(batch[1].data.shape, (std::vector<int64_t>{3, T, 7}));
    ASSERT_TRUE(w->read(7, &one).is_ok());
    EXPECT_EQ(std::memcmp(batch[1].data.ptr<double>() + 2 * T * 7, one[1].data.ptr<double>(), T * 7 * 8), 0);
    const Status bad = w->read(w->size(), &one);
    EXPECT_EQ(bad.code(), StatusCode::InvalidArgument);
    EXPECT_NE(bad.message().find("index must be in [0, "), std::string::npos) << bad.message();
  }
}

TEST(IoRobomimicWindows, MissingKeyNamesFileAndKey) {
  if (!dataset_readers()["robomimic"]) GTEST_SKIP() << "HDF5 reader not built";
  if (!fs::exists(kLift)) GTEST_SKIP() << kLift << " not present";
  RobomimicWindowOptions o;
  o.obs_keys = {"robot0_eef_pos"};
  o.dataset_keys = {"actions"};
  std::unique_ptr<RobomimicWindows> w;
  const Status s = open_robomimic_windows(kLift.string(), o, &w);
  EXPECT_EQ(s.code(), StatusCode::IOError);
  EXPECT_NE(s.message().find("demo.hdf5: no dataset 'data/demo_1/obs/robot0_eef_pos' (obs_keys names "
                             "'robot0_eef_pos'; there is no group data/demo_1/obs)"),
            std::string::npos)
      << s.message();
  o.frame_stack = 0;
  EXPECT_EQ(open_robomimic_windows(kLift.string(), o, &w).code(), StatusCode::InvalidArgument);
}

}  // namespace
