// A reader for AF_UNIX stream sockets that keeps passed file descriptors. Node's own socket
// reading uses plain read(), which makes the kernel discard any SCM_RIGHTS riding on the bytes;
// this reader polls a duplicate of the socket's fd on Node's event loop and uses recvmsg(), handing
// JS each chunk together with the fds that arrived with it. Writing stays with the net.Socket.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"

namespace virtproxyd {

namespace {

constexpr size_t kReadSize = 262144;
// Reads per wake-up while the socket keeps filling the buffer (libuv's own stream reading loops too).
constexpr int kReadsPerWake = 8;
constexpr size_t kMaxFds = 64;
// One read buffer for the whole addon: reads happen on the loop thread only and each chunk is
// copied into its own JS Buffer before the next read.
unsigned char g_buf[kReadSize];

class FdReader : public Napi::ObjectWrap<FdReader> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdReader",
                       {InstanceMethod("start", &FdReader::Start), InstanceMethod("stop", &FdReader::Stop),
                        InstanceMethod("close", &FdReader::Close)});
  }

  // new FdReader(fd, onChunk(chunk: Buffer | null, fds: number[] | null, errno: number))
  // chunk null with errno 0 means end of stream.
  explicit FdReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdReader>(info) {
    Napi::Env env = info.Env();
    int fd;
    if (!ArgFd(info, 0, &fd)) return;
    if (info.Length() < 2 || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "onChunk must be a function").ThrowAsJavaScriptException();
      return;
    }
    fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0) {
      ThrowErrno(env, errno, "fcntl");
      return;
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      close(fd_);
      fd_ = -1;
      ThrowCoded(env, "EPOLL", "uv_poll_init failed");
      return;
    }
    poll_->data = this;
  }

  ~FdReader() override { Shutdown(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr && !active_) {
      if (!ref_) {
        Ref();  // keep the JS object alive while the loop may call into it
        ref_ = true;
      }
      uv_poll_start(poll_, UV_READABLE | UV_DISCONNECT, OnPoll);
      active_ = true;
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr && active_) {
      uv_poll_stop(poll_);
      active_ = false;
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void Shutdown() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      active_ = false;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
    if (ref_) {
      ref_ = false;
      Unref();
    }
    // The callback's closure usually reaches this reader's own JS object (through the socket's
    // owner), so a strong reference kept here would hold both alive forever: drop it once closed.
    // A call in progress keeps its function alive through its own handle.
    callback_.Reset();
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<FdReader*>(handle->data);
    if (self == nullptr || self->fd_ < 0) return;
    for (int i = 0; i < kReadsPerWake; i++) {
      if (!self->ReadOnce(status) || !self->active_ || self->fd_ < 0) break;
    }
  }

  // One recvmsg; true when it filled the buffer without fds, i.e. more is likely waiting.
  bool ReadOnce(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      Deliver(env, env.Null(), env.Null(), -status);
      return false;
    }
    std::vector<int> received;
    bool truncated = false;
    ssize_t got = RecvWithFds(fd_, g_buf, kReadSize, kMaxFds, &received, &truncated);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      Deliver(env, env.Null(), env.Null(), errno);
      return false;
    }
    if (got == 0) {
      Stopped();
      Deliver(env, env.Null(), env.Null(), 0);
      return false;
    }
    Napi::Value fds = env.Null();
    if (!received.empty()) {
      Napi::Array arr = Napi::Array::New(env, received.size());
      for (size_t i = 0; i < received.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, received[i]));
      fds = arr;
    }
    Deliver(env, Napi::Buffer<unsigned char>::Copy(env, g_buf, static_cast<size_t>(got)), fds, 0);
    return fds.IsNull() && static_cast<size_t>(got) == kReadSize;
  }

  void Stopped() {
    if (poll_ != nullptr && active_) {
      uv_poll_stop(poll_);
      active_ = false;
    }
  }

  void Deliver(Napi::Env env, Napi::Value chunk, Napi::Value fds, int err) {
    if (chunk.IsNull()) Stopped();
    if (callback_.IsEmpty()) return;
    callback_.MakeCallback(Value(), {chunk, fds, Napi::Number::New(env, err)});
  }

  Napi::FunctionReference callback_;
  uv_poll_t* poll_ = nullptr;
  int fd_ = -1;
  bool active_ = false;
  bool ref_ = false;
};

// trySend(fd, buffer): bytes written now (0 when the socket is full); throws on other errors.
// Lets the hot path hand a frame straight to the kernel when Node has nothing queued.
Napi::Value TrySend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsBuffer()) {
    Napi::TypeError::New(env, "buffer expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto buf = info[1].As<Napi::Buffer<unsigned char>>();
  ssize_t n;
  do {
    n = send(fd, buf.Data(), buf.Length(), MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, 0);
    return ThrowErrno(env, errno, "send");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace

void InitReader(Napi::Env env, Napi::Object exports) {
  exports.Set("FdReader", FdReader::Define(env));
  exports.Set("trySend", Napi::Function::New(env, TrySend, "trySend"));
}

}  // namespace virtproxyd
