// sd_notify(3) without libsystemd: one datagram to the socket named by $NOTIFY_SOCKET.
// The caller reads the environment variable; this only speaks the socket part.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "addon.h"
#include "unix-address.h"

namespace virtproxyd {

namespace {

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path, message;
  if (!ArgString(info, 0, &path) || !ArgString(info, 1, &message)) return env.Undefined();
  sockaddr_un addr;
  socklen_t addrLen;
  int err = MakeUnixAddress(path, &addr, &addrLen);
  if (err != 0) return ThrowErrno(env, err, "sd_notify");
  int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return ThrowErrno(env, errno, "socket");
  ssize_t sent;
  do {
    // Blocking on purpose, as libsystemd does: the manager drains its queue quickly,
    // and a dropped READY=1 would make systemd time the service out.
    sent = sendto(sock, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
                  addrLen);
  } while (sent < 0 && errno == EINTR);
  err = sent < 0 ? errno : 0;
  close(sock);
  if (err != 0) return ThrowErrno(env, err, "sendto");
  return env.Undefined();
}

}  // namespace

void InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
}

}  // namespace virtproxyd
