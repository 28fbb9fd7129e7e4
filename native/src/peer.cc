// Peer identity of a connected AF_UNIX socket, as libvirt collects it for each client:
// SO_PEERCRED for uid/gid/pid and SO_PEERSEC for the security (SELinux) label.
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <string>
#include <vector>

#include "addon.h"

namespace virtproxyd {

namespace {

Napi::Value GetPeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return ThrowErrno(env, errno, "getsockopt");
  Napi::Object result = Napi::Object::New(env);
  result.Set("uid", Napi::Number::New(env, static_cast<double>(cred.uid)));
  result.Set("gid", Napi::Number::New(env, static_cast<double>(cred.gid)));
  result.Set("pid", Napi::Number::New(env, static_cast<double>(cred.pid)));
  return result;
}

Napi::Value GetPeerSecContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  // Labels are short; the kernel reports the real size through ERANGE when not.
  std::vector<char> buffer(256);
  for (int attempt = 0; attempt < 4; attempt++) {
    socklen_t len = static_cast<socklen_t>(buffer.size());
    if (getsockopt(fd, SOL_SOCKET, SO_PEERSEC, buffer.data(), &len) == 0) {
      size_t size = len;
      // The kernel usually includes the terminating NUL in the length; drop it.
      while (size > 0 && buffer[size - 1] == '\0') size--;
      return Napi::String::New(env, buffer.data(), size);
    }
    int err = errno;
    // These mean "no security module labels sockets here", which libvirt treats as
    // "no context" rather than a failure.
    if (err == ENOPROTOOPT || err == ENOSYS || err == EINVAL) return env.Null();
    if (err != ERANGE) return ThrowErrno(env, err, "getsockopt");
    buffer.resize(len > buffer.size() ? len : buffer.size() * 2);
  }
  return ThrowErrno(env, ERANGE, "getsockopt");
}

}  // namespace

void InitPeer(Napi::Env env, Napi::Object exports) {
  exports.Set("getPeerCred", Napi::Function::New(env, GetPeerCred, "getPeerCred"));
  exports.Set("getPeerSecContext", Napi::Function::New(env, GetPeerSecContext, "getPeerSecContext"));
}

}  // namespace virtproxyd
