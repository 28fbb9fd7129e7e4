// Advisory write lock on a file, as libvirt holds on its PID file: a POSIX record
// lock on byte 0 taken without waiting, so a second daemon on the same paths sees
// the file busy and refuses to start. The lock lasts until the fd is closed.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"

namespace virtproxyd {

namespace {

Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 1;
  int rc;
  do {
    rc = fcntl(fd, F_SETLK, &lock);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return Napi::Boolean::New(env, true);
  // POSIX allows either errno for "another process holds a conflicting lock".
  if (errno == EAGAIN || errno == EACCES) return Napi::Boolean::New(env, false);
  return ThrowErrno(env, errno, "fcntl");
}

}  // namespace

void InitLock(Napi::Env env, Napi::Object exports) {
  exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
}

}  // namespace virtproxyd
