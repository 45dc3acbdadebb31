// Image decoding for encoded image streams: JPEG through libjpeg-turbo, PNG through libpng's simplified API.
#include "robocache/episode.h"

#include <cstring>
#include <vector>

#include "core/parallel.h"

#ifdef ROBOCACHE_WITH_IMAGE
#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#endif

namespace robocache {

#ifdef ROBOCACHE_WITH_IMAGE
namespace {

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void jpeg_quiet(j_common_ptr, int) {}

// No C++ objects with destructors live between setjmp and longjmp here.
Status decode_jpeg(const uint8_t* data, size_t size, const std::string& what, Array* out) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_quiet;
  err.message[0] = 0;
  Array img;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return io_error(what, ": corrupt JPEG: ", err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components != 1) cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const int64_t h = cinfo.output_height, w = cinfo.output_width, c = cinfo.output_components;
  img = Array::empty(DType::UInt8, {h, w, c});
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img.ptr<uint8_t>() + static_cast<size_t>(cinfo.output_scanline) * w * c;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  *out = std::move(img);
  return Status::ok();
}

Status decode_png(const uint8_t* data, size_t size, const std::string& what, Array* out) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, data, size))
    return io_error(what, ": corrupt PNG: ", image.message);
  // Keep grey as one channel, colour as RGB, and alpha where the file has it.
  const bool color = image.format & PNG_FORMAT_FLAG_COLOR, alpha = image.format & PNG_FORMAT_FLAG_ALPHA;
  image.format = color ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB) : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
  const int64_t c = PNG_IMAGE_PIXEL_CHANNELS(image.format);
  Array img = Array::empty(DType::UInt8, {image.height, image.width, c});
  if (!png_image_finish_read(&image, nullptr, img.data(), 0, nullptr)) {
    const std::string msg = image.message;
    png_image_free(&image);
    return io_error(what, ": corrupt PNG: ", msg);
  }
  *out = std::move(img);
  return Status::ok();
}

}  // namespace
#endif

Status decode_image(const uint8_t* data, size_t size, const std::string& what, Array* out) {
#ifdef ROBOCACHE_WITH_IMAGE
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return decode_jpeg(data, size, what, out);
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 8 && std::equal(png_sig, png_sig + 8, data)) return decode_png(data, size, what, out);
  return io_error(what, ": not a JPEG or PNG image (", size, " bytes, first bytes do not match either signature)");
#else
  (void)data, (void)size, (void)out;
  return runtime_error(what, ": cannot decode: RoboCache was built without image decoding (libjpeg-turbo and "
                             "libpng; CMake option ROBOCACHE_WITH_IMAGE)");
#endif
}

Status decode_images(const EpisodeStream& stream, Array* out) {
  if (stream.kind != StreamKind::Bytes || (stream.encoding != "jpeg" && stream.encoding != "png"))
    return invalid_argument("stream '", stream.name, "' does not hold encoded images (encoding '", stream.encoding, "')");
  const int64_t S = stream.length();
  const int64_t* off = stream.offsets.ptr<int64_t>();
  const uint8_t* data = stream.data.ptr<uint8_t>();
  auto what = [&](int64_t i) { return stream.name + "[" + std::to_string(i) + "]"; };
  if (S == 0) {
    *out = Array::empty(DType::UInt8, {0, 0, 0, 0});
    return Status::ok();
  }
  Array first;
  ROBOCACHE_RETURN_IF_ERROR(decode_image(data + off[0], off[1] - off[0], what(0), &first));
  std::vector<int64_t> shape = first.shape;
  shape.insert(shape.begin(), S);
  Array all = Array::empty(DType::UInt8, shape);
  const size_t frame = first.nbytes();
  std::memcpy(all.data(), first.data(), frame);
  std::vector<Status> status(S);
  core::parallel_for(1, S, 4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      Array img;
      status[i] = decode_image(data + off[i], off[i + 1] - off[i], what(i), &img);
      if (!status[i].is_ok()) continue;
      if (img.shape != first.shape) {
        status[i] = invalid_argument(what(i), " is ", img.shape_str(), " but ", what(0), " is ", first.shape_str(),
                                     "; decode images of different shapes one by one");
        continue;
      }
      std::memcpy(all.ptr<uint8_t>() + i * frame, img.data(), frame);
    }
  });
  for (const Status& s : status) ROBOCACHE_RETURN_IF_ERROR(s);
  *out = std::move(all);
  return Status::ok();
}

}  // namespace robocache
