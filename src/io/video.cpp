// Video frames of episodes (LeRobot's mp4 cameras) through FFmpeg: libavformat demuxes, libavcodec
// decodes (AV1 through libdav1d or libaom, H.264, ...), libswscale converts to RGB.
//
// How a request is served: the episode's part of the file is demuxed once (packets only, nothing decoded)
// into an index of its frames (presentation time, the keyframe to start decoding from); that index is
// cached per (file, episode range). Each requested time maps to the nearest frame (within tolerance), and
// the needed frames are decoded in presentation order: the decoder seeks to a frame's keyframe unless it
// is already fed up to that keyframe and has not yet passed the frame, so a run of nearby requests costs
// one seek, and nothing is decoded from the start of the file per request. Open files + decoders are
// pooled per path, so the next request (of this or another episode in a shared v3.0 file) skips the open.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "robocache/episode.h"

#ifdef ROBOCACHE_WITH_VIDEO
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}
#endif

namespace robocache {

namespace {
namespace fs = std::filesystem;

std::string describe(const EpisodeVideo& v) {
  std::string s = v.name.empty() ? std::string("video") : detail::concat("video '", v.name, "'");
  if (v.episode_index >= 0) s += detail::concat(" of episode ", v.episode_index);
  return s;
}

Status check_exists(const EpisodeVideo& v) {
  std::error_code ec;
  if (!fs::is_regular_file(v.path, ec)) {
    return io_error(describe(v), ": ", v.path, ": video file missing",
                    v.episode_index >= 0 ? " (named by the dataset's metadata)" : "");
  }
  return Status::ok();
}
}  // namespace

Status open_video(const std::string& path, const std::string& name, EpisodeVideo* out) {
  EpisodeVideo v;
  v.name = name;
  v.path = path;
  v.exists = true;
  ROBOCACHE_RETURN_IF_ERROR(check_exists(v));
  *out = std::move(v);
  return Status::ok();
}

#ifndef ROBOCACHE_WITH_VIDEO

namespace {
Status not_built(const EpisodeVideo& v) {
  return runtime_error(describe(v), ": ", v.path, ": RoboCache was built without video decoding (FFmpeg's "
                       "libavformat/libavcodec/libswscale not found at build time; CMake option ROBOCACHE_WITH_VIDEO)");
}
}  // namespace

Status video_frame_timestamps(const EpisodeVideo& video, Array*) {
  ROBOCACHE_RETURN_IF_ERROR(check_exists(video));
  return not_built(video);
}

Status decode_video_frames(const EpisodeVideo& video, const double*, int64_t, double, Array*) {
  ROBOCACHE_RETURN_IF_ERROR(check_exists(video));
  return not_built(video);
}

std::map<std::string, int64_t> video_decoder_counters() { return {}; }

#else  // ROBOCACHE_WITH_VIDEO

namespace {

std::atomic<int64_t> g_opens{0}, g_seeks{0}, g_packets{0}, g_frames{0};

// FFmpeg's own explanation of a failure ("moov atom not found") arrives through its log, not its error
// codes. Unless ROBOCACHE_FFMPEG_LOG is set (FFmpeg then logs to stderr as usual), the library keeps the
// last error line of each thread instead of printing it, and error messages quote it.
thread_local std::string t_ffmpeg_error;

void log_callback(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_ERROR) return;
  char line[512];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
  std::string s = line;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (!s.empty()) t_ffmpeg_error = std::move(s);
}

void quiet_ffmpeg() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("ROBOCACHE_FFMPEG_LOG");
    if (env == nullptr || *env == '\0' || std::strcmp(env, "0") == 0) av_log_set_callback(log_callback);
  });
}

// av_strerror of `code`, plus FFmpeg's last logged error on this thread (then forgotten).
std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof buf);
  std::string s = buf;
  if (!t_ffmpeg_error.empty()) s += " (FFmpeg: " + t_ffmpeg_error + ")";
  t_ffmpeg_error.clear();
  return s;
}

// The file's identity, so a file replaced on disk is not served from a stale index or an open reader.
std::string file_key(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto mtime = fs::last_write_time(path, ec).time_since_epoch().count();
  return detail::concat(path, "|", static_cast<uint64_t>(size), "|", static_cast<int64_t>(mtime));
}

// One packet of the episode's part of the file, in decode order.
struct Packet {
  int64_t pts, dts;
  bool key;
};

// One frame (a packet whose decoded picture is shown), in presentation order.
struct Frame {
  int64_t pts;
  double time;      // file seconds
  int64_t key_dts;  // the keyframe packet to start decoding from: its dts and pts
  int64_t key_pts;
};

struct Index {
  AVRational time_base{1, 1};
  int width = 0, height = 0;
  std::vector<Packet> packets;  // decode order, dts ascending
  std::vector<Frame> frames;    // presentation order, the episode's frames only
};

// An open file + decoder. Used by one thread at a time (taken from and given back to the pool).
struct Reader {
  std::string path, key;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* dec = nullptr;
  SwsContext* sws = nullptr;
  AVPacket* pkt = nullptr;
  AVFrame* frame = nullptr;
  int stream = -1;
  AVRational time_base{1, 1};
  // Decoder state: fed continuously since the keyframe at start_dts, up to the packet at last_fed_dts;
  // last_out_pts is the last frame it gave back. Not active after an open, a demux pass or a flush.
  bool active = false;
  bool eof = false;
  int64_t start_dts = 0, last_fed_dts = 0, last_out_pts = 0;

  ~Reader() {
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
  }
};

Status open_reader(const std::string& path, const std::string& key, std::unique_ptr<Reader>* out) {
  quiet_ffmpeg();
  t_ffmpeg_error.clear();
  g_opens++;
  auto r = std::make_unique<Reader>();
  r->path = path;
  r->key = key;
  int rc = avformat_open_input(&r->fmt, path.c_str(), nullptr, nullptr);
  if (rc < 0) return io_error(path, ": cannot open as a video container: ", av_error(rc));
  // mp4/mov headers give the codec parameters; other containers may need a probe (decodes a few frames).
  if (std::strstr(r->fmt->iformat->name, "mp4") == nullptr) {
    rc = avformat_find_stream_info(r->fmt, nullptr);
    if (rc < 0) return io_error(path, ": cannot read the stream parameters: ", av_error(rc));
  }
  const AVCodec* codec = nullptr;
  rc = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (rc < 0) return io_error(path, ": holds no video stream (", av_error(rc), ")");
  r->stream = rc;
  AVStream* st = r->fmt->streams[r->stream];
  r->time_base = st->time_base;
  if (st->codecpar->codec_id == AV_CODEC_ID_AV1) {
    // FFmpeg's own AV1 decoder needs a hardware accelerator; take the software ones by name.
    for (const char* name : {"libdav1d", "libaom-av1"})
      if ((codec = avcodec_find_decoder_by_name(name)) != nullptr) break;
  }
  if (codec == nullptr) codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (codec == nullptr)
    return io_error(path, ": no decoder for codec '", avcodec_get_name(st->codecpar->codec_id),
                    "' in this FFmpeg build");
  r->dec = avcodec_alloc_context3(codec);
  r->pkt = av_packet_alloc();
  r->frame = av_frame_alloc();
  if (!r->dec || !r->pkt || !r->frame) return runtime_error(path, ": out of memory opening the decoder");
  rc = avcodec_parameters_to_context(r->dec, st->codecpar);
  if (rc < 0) return io_error(path, ": bad codec parameters: ", av_error(rc));
  // One thread per decoder and no frame delay: requests decode a few frames each, and parallelism comes
  // from decoding several videos at once (the loader's threads, the pool below).
  r->dec->thread_count = 1;
  r->dec->flags |= AV_CODEC_FLAG_LOW_DELAY;
  r->dec->pkt_timebase = st->time_base;
  rc = avcodec_open2(r->dec, codec, nullptr);
  if (rc < 0) return io_error(path, ": cannot open the ", codec->name, " decoder: ", av_error(rc));
  if (r->dec->width <= 0 || r->dec->height <= 0)
    return io_error(path, ": video stream has no frame size (", r->dec->width, "x", r->dec->height, ")");
  // A file cut short (a copy that stopped midway) whose index survived: the demuxer would just end early.
  const int entries = avformat_index_get_entries_count(st);
  int64_t end = 0;
  for (int i = 0; i < entries; ++i) {
    const AVIndexEntry* e = avformat_index_get_entry(st, i);
    if (e && e->pos >= 0) end = std::max<int64_t>(end, e->pos + e->size);
  }
  const int64_t size = avio_size(r->fmt->pb);
  if (size >= 0 && end > size)
    return io_error(path, ": truncated: the container's index runs to byte ", end, " but the file has ", size, " bytes");
  *out = std::move(r);
  return Status::ok();
}

// Open readers not in use, per file, least recently used first out.
class ReaderPool {
 public:
  static ReaderPool& get() {
    static ReaderPool* pool = new ReaderPool();  // never destroyed: decoders may outlive static teardown
    return *pool;
  }

  Status take(const std::string& path, std::unique_ptr<Reader>* out) {
    const std::string key = file_key(path);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if ((*it)->key == key) {
          *out = std::move(*it);
          idle_.erase(it);
          return Status::ok();
        }
      }
    }
    return open_reader(path, key, out);
  }

  void give_back(std::unique_ptr<Reader> r) {
    std::unique_ptr<Reader> evicted;
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_front(std::move(r));
    if (idle_.size() > kMaxIdle) {
      evicted = std::move(idle_.back());
      idle_.pop_back();
    }
  }

 private:
  static constexpr size_t kMaxIdle = 32;
  std::mutex mutex_;
  std::list<std::unique_ptr<Reader>> idle_;
};

// Returns the reader to the pool when it goes out of scope (also on errors: a reader that failed midway
// is dropped instead, its state unknown).
struct Lease {
  std::unique_ptr<Reader> r;
  bool ok = false;
  ~Lease() {
    if (r && ok) ReaderPool::get().give_back(std::move(r));
  }
};

int64_t to_ticks(double seconds, AVRational tb) {
  return static_cast<int64_t>(std::floor(seconds * tb.den / tb.num));
}

// Demuxes the episode's part of the file into an Index (nothing is decoded).
Status build_index(Reader& r, const EpisodeVideo& v, Index* out) {
  r.active = false;  // the demux pass moves the file position under the decoder
  const AVRational tb = r.time_base;
  const double half_frame = v.fps > 0 ? 0.5 / v.fps : 1e-3;
  const double lo = v.from_timestamp > 0 ? v.from_timestamp - half_frame : -std::numeric_limits<double>::infinity();
  const double hi = v.to_timestamp - half_frame;
  Index idx;
  idx.time_base = tb;
  idx.width = r.dec->width;
  idx.height = r.dec->height;
  // Start at the keyframe before the episode's first frame; go further back until the first packet read
  // is a keyframe (a file's first packet always is).
  for (double back = 0.0;; back = back == 0.0 ? 1.0 : back * 4) {
    const double start = v.from_timestamp - back;
    int rc = av_seek_frame(r.fmt, r.stream, start > 0 ? to_ticks(start, tb) : std::numeric_limits<int64_t>::min() / 2,
                           AVSEEK_FLAG_BACKWARD);
    if (rc < 0) return io_error(v.path, ": cannot seek to ", start, " s: ", av_error(rc));
    idx.packets.clear();
    bool first = true, restart = false;
    while (true) {
      rc = av_read_frame(r.fmt, r.pkt);
      if (rc == AVERROR_EOF) break;
      if (rc < 0) {
        return io_error(v.path, ": read error at byte offset ", static_cast<int64_t>(avio_tell(r.fmt->pb)), ": ",
                        av_error(rc));
      }
      if (r.pkt->stream_index != r.stream) {
        av_packet_unref(r.pkt);
        continue;
      }
      Packet p{r.pkt->pts, r.pkt->dts, (r.pkt->flags & AV_PKT_FLAG_KEY) != 0};
      const bool discard = (r.pkt->flags & AV_PKT_FLAG_DISCARD) != 0;
      const int64_t pos = r.pkt->pos;
      av_packet_unref(r.pkt);
      if (p.pts == AV_NOPTS_VALUE || p.dts == AV_NOPTS_VALUE)
        return io_error(v.path, ": packet at byte offset ", pos, " has no timestamp");
      if (first && !p.key && start > 0) {
        restart = true;
        break;
      }
      first = false;
      if (!idx.packets.empty() && p.dts <= idx.packets.back().dts)
        return io_error(v.path, ": decode timestamps go backwards at byte offset ", pos);
      // Every frame shown before `hi` is decoded before it: once dts passes hi, the episode is complete.
      if (p.dts * av_q2d(tb) >= hi) break;
      idx.packets.push_back(p);
      const double t = p.pts * av_q2d(tb);
      if (!discard && t >= lo && t < hi) idx.frames.push_back(Frame{p.pts, t, 0, 0});
    }
    if (!restart) break;
    if (back > 1e6) return io_error(v.path, ": found no keyframe before ", v.from_timestamp, " s");
  }
  std::sort(idx.frames.begin(), idx.frames.end(), [](const Frame& a, const Frame& b) { return a.pts < b.pts; });
  for (size_t i = 1; i < idx.frames.size(); ++i)
    if (idx.frames[i].pts == idx.frames[i - 1].pts)
      return io_error(v.path, ": two frames with the same presentation time ", idx.frames[i].time, " s");
  // Each frame's keyframe: the last keyframe at or before it in decode order that is not shown after it
  // (an open GOP's leading pictures need the keyframe before).
  std::map<int64_t, size_t> by_pts;
  for (size_t i = 0; i < idx.packets.size(); ++i) by_pts[idx.packets[i].pts] = i;
  for (Frame& f : idx.frames) {
    size_t k = by_pts[f.pts];
    while (k > 0 && !(idx.packets[k].key && idx.packets[k].pts <= f.pts)) --k;
    if (!(idx.packets[k].key && idx.packets[k].pts <= f.pts))
      return io_error(v.path, ": no keyframe before the frame at ", f.time, " s");
    f.key_dts = idx.packets[k].dts;
    f.key_pts = idx.packets[k].pts;
  }
  *out = std::move(idx);
  return Status::ok();
}

class IndexCache {
 public:
  static IndexCache& get() {
    static IndexCache* cache = new IndexCache();
    return *cache;
  }

  // The index of `v`'s episode range, built with `r` on a miss.
  Status find(const EpisodeVideo& v, Reader& r, std::shared_ptr<const Index>* out) {
    const std::string key = detail::concat(r.key, "|", v.from_timestamp, "|", v.to_timestamp, "|", v.fps);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        *out = it->second;
        return Status::ok();
      }
    }
    auto idx = std::make_shared<Index>();
    ROBOCACHE_RETURN_IF_ERROR(build_index(r, v, idx.get()));
    std::lock_guard<std::mutex> lock(mutex_);
    if (map_.size() >= kMax) map_.clear();  // a few KB each; a full cache simply starts over
    map_[key] = idx;
    *out = idx;
    return Status::ok();
  }

 private:
  static constexpr size_t kMax = 4096;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Index>> map_;
};

Status take_reader_and_index(const EpisodeVideo& v, Lease* lease, std::shared_ptr<const Index>* idx) {
  ROBOCACHE_RETURN_IF_ERROR(check_exists(v));
  Status s = ReaderPool::get().take(v.path, &lease->r);
  if (!s.is_ok()) return io_error(describe(v), ": ", s.message());
  s = IndexCache::get().find(v, *lease->r, idx);
  if (!s.is_ok()) return io_error(describe(v), ": ", s.message());
  return Status::ok();
}

// Converts the decoder's current frame to RGB24 into dst [H, W, 3].
Status frame_to_rgb(Reader& r, const Index& idx, const EpisodeVideo& v, uint8_t* dst) {
  AVFrame* f = r.frame;
  if (f->width != idx.width || f->height != idx.height) {
    return io_error(describe(v), ": ", v.path, ": frame at ", f->pts * av_q2d(idx.time_base), " s is ", f->width, "x",
                    f->height, ", the stream is ", idx.width, "x", idx.height);
  }
  r.sws = sws_getCachedContext(r.sws, f->width, f->height, static_cast<AVPixelFormat>(f->format), f->width, f->height,
                               AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr);
  if (!r.sws) {
    return io_error(describe(v), ": ", v.path, ": cannot convert pixel format ",
                    av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format)), " to RGB");
  }
  // The frame's own YUV matrix and range (BT.601 limited range when unspecified, as FFmpeg assumes).
  const int cs = f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : static_cast<int>(f->colorspace);
  const int full = f->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
  sws_setColorspaceDetails(r.sws, sws_getCoefficients(cs), full, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                           1 << 16, 1 << 16);
  uint8_t* planes[4] = {dst, nullptr, nullptr, nullptr};
  int strides[4] = {3 * f->width, 0, 0, 0};
  const int rows = sws_scale(r.sws, f->data, f->linesize, 0, f->height, planes, strides);
  if (rows != f->height) return io_error(describe(v), ": ", v.path, ": RGB conversion failed");
  return Status::ok();
}

// Decodes forward until the frame with presentation time `pts` comes out (seeking first when needed),
// and leaves it in r.frame.
Status decode_to(Reader& r, const Index& idx, const EpisodeVideo& v, const Frame& target) {
  const auto err = [&](const auto&... args) { return io_error(describe(v), ": ", v.path, ": ", args...); };
  // Continue without a seek when the decoder started at or before the target's keyframe, has not passed
  // the target, and has no packet left to read before that keyframe (so a seek would save nothing).
  bool resume = r.active && r.last_out_pts < target.pts && r.start_dts <= target.key_dts;
  if (resume) {
    auto next = std::upper_bound(idx.packets.begin(), idx.packets.end(), r.last_fed_dts,
                                 [](int64_t d, const Packet& p) { return d < p.dts; });
    resume = next == idx.packets.end() || target.key_dts <= next->dts;
  }
  if (!resume) {
    // Seek so that the next packet read is the target's keyframe (or a keyframe before it). Demuxers seek
    // by presentation time (mp4) or decode time; the keyframe's pts is at or after its dts and before the
    // next keyframe's dts, so it lands on the keyframe either way; if not, the file's start always works.
    avcodec_flush_buffers(r.dec);
    r.active = false;
    r.eof = false;
    r.last_out_pts = std::numeric_limits<int64_t>::min();
    bool landed = false;
    for (const int64_t ts : {target.key_pts, target.key_dts, std::numeric_limits<int64_t>::min() / 2}) {
      int rc = av_seek_frame(r.fmt, r.stream, ts, AVSEEK_FLAG_BACKWARD);
      if (rc < 0) continue;
      g_seeks++;
      while ((rc = av_read_frame(r.fmt, r.pkt)) >= 0 && r.pkt->stream_index != r.stream) av_packet_unref(r.pkt);
      if (rc < 0) continue;
      if (r.pkt->dts <= target.key_dts && (r.pkt->flags & AV_PKT_FLAG_KEY)) {
        landed = true;  // r.pkt is fed below
        break;
      }
      av_packet_unref(r.pkt);
    }
    if (!landed) return err("cannot seek to the keyframe before the frame at ", target.time, " s");
    r.active = true;
    r.start_dts = r.pkt->dts;
    r.last_fed_dts = r.pkt->dts;
    const int64_t pos = r.pkt->pos;
    int rc = avcodec_send_packet(r.dec, r.pkt);
    g_packets++;
    av_packet_unref(r.pkt);
    if (rc < 0) return err("cannot decode the keyframe at byte offset ", pos, ": ", av_error(rc));
  }
  while (true) {
    int rc = avcodec_receive_frame(r.dec, r.frame);
    if (rc == 0) {
      const int64_t pts = r.frame->pts != AV_NOPTS_VALUE ? r.frame->pts : r.frame->best_effort_timestamp;
      r.last_out_pts = pts;
      g_frames++;
      if (pts == target.pts) {
        if (r.frame->decode_error_flags != 0 || (r.frame->flags & AV_FRAME_FLAG_CORRUPT) != 0)
          return err("the frame at ", target.time, " s decoded with errors (corrupt video data)");
        return Status::ok();
      }
      if (pts > target.pts)
        return err("the decoder skipped the frame at ", target.time, " s (next frame out at ", pts * av_q2d(idx.time_base), " s)");
      av_frame_unref(r.frame);
      continue;
    }
    if (rc == AVERROR_EOF) {
      r.active = false;
      return err("the decoder ended before the frame at ", target.time, " s (truncated or corrupt video)");
    }
    if (rc != AVERROR(EAGAIN)) return err("decoding failed before the frame at ", target.time, " s: ", av_error(rc));
    if (r.eof) return err("the decoder wants data after the end of the file");
    // Feed the next packet of the stream.
    while (true) {
      rc = av_read_frame(r.fmt, r.pkt);
      if (rc == AVERROR_EOF) {
        r.eof = true;
        rc = avcodec_send_packet(r.dec, nullptr);  // drain
        if (rc < 0 && rc != AVERROR_EOF) return err("flushing the decoder failed: ", av_error(rc));
        break;
      }
      if (rc < 0) {
        return err("read error at byte offset ", static_cast<int64_t>(avio_tell(r.fmt->pb)), " before the frame at ",
                   target.time, " s: ", av_error(rc));
      }
      if (r.pkt->stream_index != r.stream) {
        av_packet_unref(r.pkt);
        continue;
      }
      r.last_fed_dts = r.pkt->dts;
      const int64_t pos = r.pkt->pos;
      rc = avcodec_send_packet(r.dec, r.pkt);
      g_packets++;
      av_packet_unref(r.pkt);
      if (rc < 0)  // never EAGAIN: the decoder had no output pending
        return err("cannot decode the packet at byte offset ", pos, " (before the frame at ", target.time, " s): ", av_error(rc));
      break;
    }
  }
}

}  // namespace

std::map<std::string, int64_t> video_decoder_counters() {
  return {{"opens", g_opens.load()}, {"seeks", g_seeks.load()}, {"packets_decoded", g_packets.load()},
          {"frames_decoded", g_frames.load()}};
}

Status video_frame_timestamps(const EpisodeVideo& video, Array* out) {
  Lease lease;
  std::shared_ptr<const Index> idx;
  ROBOCACHE_RETURN_IF_ERROR(take_reader_and_index(video, &lease, &idx));
  lease.ok = true;
  Array a = Array::empty(DType::Float64, {static_cast<int64_t>(idx->frames.size())});
  for (size_t i = 0; i < idx->frames.size(); ++i) a.ptr<double>()[i] = idx->frames[i].time - video.from_timestamp;
  *out = std::move(a);
  return Status::ok();
}

Status decode_video_frames(const EpisodeVideo& video, const double* t, int64_t n, double tolerance_s, Array* out) {
  if (n < 0) return invalid_argument("number of timestamps must be >= 0, got ", n);
  if (!(tolerance_s >= 0) || !std::isfinite(tolerance_s))
    return invalid_argument("tolerance_s must be a finite number >= 0, got ", tolerance_s);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(t[i])) return invalid_argument("timestamps[", i, "] must be finite, got ", t[i]);
  Lease lease;
  std::shared_ptr<const Index> idx;
  ROBOCACHE_RETURN_IF_ERROR(take_reader_and_index(video, &lease, &idx));
  const auto& frames = idx->frames;
  // Nearest frame of each request, checked against the tolerance before anything is decoded.
  std::vector<std::pair<size_t, int64_t>> want(n);  // (frame, request)
  for (int64_t i = 0; i < n; ++i) {
    const double ft = video.from_timestamp + t[i];
    auto it = std::lower_bound(frames.begin(), frames.end(), ft, [](const Frame& f, double x) { return f.time < x; });
    size_t best = frames.size();
    if (it != frames.end()) best = it - frames.begin();
    if (it != frames.begin() && (best == frames.size() || ft - (it - 1)->time <= it->time - ft)) best = it - frames.begin() - 1;
    if (best == frames.size() || std::fabs(frames[best].time - ft) > tolerance_s) {
      std::string nearest = best == frames.size()
                                ? std::string("the episode has no frames in this file")
                                : detail::concat("nearest frame at ", frames[best].time - video.from_timestamp, " s");
      std::string range = frames.empty() ? std::string()
                                         : detail::concat("; ", frames.size(), " frames from ", frames.front().time - video.from_timestamp,
                                                          " to ", frames.back().time - video.from_timestamp, " s");
      return io_error(describe(video), ": ", video.path, ": no frame within tolerance_s=", tolerance_s, " of t=", t[i],
                      " s (", nearest, range, ")");
    }
    want[i] = {best, i};
  }
  std::sort(want.begin(), want.end());
  Array a = Array::empty(DType::UInt8, {n, idx->height, idx->width, 3});
  const size_t frame_bytes = static_cast<size_t>(idx->height) * idx->width * 3;
  uint8_t* base = a.ptr<uint8_t>();
  Reader& r = *lease.r;
  for (size_t k = 0; k < want.size();) {
    const size_t f = want[k].first;
    Status s = decode_to(r, *idx, video, frames[f]);
    if (s.is_ok()) s = frame_to_rgb(r, *idx, video, base + want[k].second * frame_bytes);
    av_frame_unref(r.frame);
    if (!s.is_ok()) return s;  // the lease drops the reader: its state is unknown
    size_t j = k + 1;
    for (; j < want.size() && want[j].first == f; ++j)
      std::memcpy(base + want[j].second * frame_bytes, base + want[k].second * frame_bytes, frame_bytes);
    k = j;
  }
  lease.ok = true;
  *out = std::move(a);
  return Status::ok();
}

#endif  // ROBOCACHE_WITH_VIDEO

}  // namespace robocache
