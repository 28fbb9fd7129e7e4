// Helpers used only by the addon's own tests, for things Node cannot set up itself:
// a unix datagram receiver (the systemd side of sd_notify), a pipe, and a message
// carrying several fds at once (which the production API never sends).
// Exported under names starting with "test" so no production code mistakes them.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "addon.h"
#include "unix-address.h"

namespace virtproxyd {

namespace {

Napi::Value TestBindDgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(info, 0, &path)) return env.Undefined();
  sockaddr_un addr;
  socklen_t addrLen;
  int err = MakeUnixAddress(path, &addr, &addrLen);
  if (err != 0) return ThrowErrno(env, err, "bind");
  int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock < 0) return ThrowErrno(env, errno, "socket");
  if (bind(sock, reinterpret_cast<sockaddr*>(&addr), addrLen) < 0) {
    err = errno;
    close(sock);
    return ThrowErrno(env, err, "bind");
  }
  return Napi::Number::New(env, sock);
}

Napi::Value TestRecvDgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock;
  if (!ArgFd(info, 0, &sock)) return env.Undefined();
  std::vector<char> buffer(65536);
  ssize_t got;
  do {
    got = recv(sock, buffer.data(), buffer.size(), MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    return ThrowErrno(env, errno, "recv");
  }
  return Napi::String::New(env, buffer.data(), static_cast<size_t>(got));
}

Napi::Value TestPipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return ThrowErrno(env, errno, "pipe2");
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, fds[0]));
  result.Set(1u, Napi::Number::New(env, fds[1]));
  return result;
}

Napi::Value TestSendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock;
  if (!ArgFd(info, 0, &sock)) return env.Undefined();
  const char* notFds = "argument 2 must be an array of file descriptors";
  if (info.Length() < 2 || !info[1].IsArray()) {
    Napi::TypeError::New(env, notFds).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value item = list.Get(i);
    if (!item.IsNumber()) {
      Napi::TypeError::New(env, notFds).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    fds.push_back(item.As<Napi::Number>().Int32Value());
  }
  int err = SendByteWithFds(sock, fds.data(), fds.size());
  if (err != 0) return ThrowErrno(env, err, "sendmsg");
  return env.Undefined();
}

}  // namespace

void InitTestHelpers(Napi::Env env, Napi::Object exports) {
  exports.Set("testBindDgram", Napi::Function::New(env, TestBindDgram, "testBindDgram"));
  exports.Set("testRecvDgram", Napi::Function::New(env, TestRecvDgram, "testRecvDgram"));
  exports.Set("testPipe", Napi::Function::New(env, TestPipe, "testPipe"));
  exports.Set("testSendFds", Napi::Function::New(env, TestSendFds, "testSendFds"));
}

}  // namespace virtproxyd
