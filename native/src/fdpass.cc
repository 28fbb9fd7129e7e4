// File-descriptor passing over AF_UNIX stream sockets in libvirt's scheme: each fd
// travels in its own sendmsg() with a single 0x00 byte, so the receiver reads exactly
// one byte per fd and can tell a missing or extra fd from a protocol violation.
// Both directions use MSG_DONTWAIT: they run on the event loop thread and must never
// block it, whatever mode the socket is in.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"

namespace virtproxyd {

int SendByteWithFds(int sock, const int* fds, size_t count) {
  char byte = 0;
  iovec iov{};
  iov.iov_base = &byte;
  iov.iov_len = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * count), 0);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* header = CMSG_FIRSTHDR(&msg);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * count);
  std::memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
  ssize_t sent;
  do {
    // MSG_NOSIGNAL: a vanished peer must surface as EPIPE, not as a process signal.
    sent = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  return sent < 0 ? errno : 0;
}

ssize_t RecvWithFds(int sock, void* buf, size_t len, size_t max_fds, std::vector<int>* fds, bool* truncated) {
  iovec iov{};
  iov.iov_base = buf;
  iov.iov_len = len;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * max_fds), 0);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t got;
  do {
    got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  *truncated = got >= 0 && (msg.msg_flags & MSG_CTRUNC) != 0;
  if (got <= 0 || msg.msg_controllen == 0) return got;
  for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
      fds->push_back(fd);
    }
  }
  return got;
}

namespace {

Napi::Value SendFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock, fd;
  if (!ArgFd(info, 0, &sock) || !ArgFd(info, 1, &fd)) return env.Undefined();
  int err = SendByteWithFds(sock, &fd, 1);
  if (err == EAGAIN || err == EWOULDBLOCK) return Napi::Boolean::New(env, false);
  if (err != 0) return ThrowErrno(env, err, "sendmsg");
  return Napi::Boolean::New(env, true);
}

Napi::Value RecvFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock;
  if (!ArgFd(info, 0, &sock)) return env.Undefined();
  char byte;
  // Room for one fd (alignment padding may let the kernel fit a second, which is
  // then caught by the count check below; anything beyond is reported as truncated).
  std::vector<int> received;
  bool truncated = false;
  ssize_t got = RecvWithFds(sock, &byte, 1, 1, &received, &truncated);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    return ThrowErrno(env, errno, "recvmsg");
  }
  if (got == 0) return ThrowCoded(env, "EOF", "recvmsg: end of stream while waiting for a passed fd");
  if (received.size() == 1 && !truncated) return Napi::Number::New(env, received[0]);
  for (int fd : received) close(fd);
  const char* detail = received.empty() ? "carried no fd" : "carried more than one fd";
  return ThrowCoded(env, "EBADMSG", std::string("recvmsg: passed-fd message ") + detail);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  // On Linux the fd is released even when close() reports EINTR, so retrying could
  // close an unrelated fd opened meanwhile by another thread; EINTR counts as done.
  if (close(fd) < 0 && errno != EINTR) return ThrowErrno(env, errno, "close");
  return env.Undefined();
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
    return ThrowErrno(env, errno, "socketpair");
  }
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, fds[0]));
  result.Set(1u, Napi::Number::New(env, fds[1]));
  return result;
}

}  // namespace

void InitFdPass(Napi::Env env, Napi::Object exports) {
  exports.Set("sendFd", Napi::Function::New(env, SendFd, "sendFd"));
  exports.Set("recvFd", Napi::Function::New(env, RecvFd, "recvFd"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair, "socketPair"));
}

}  // namespace virtproxyd
