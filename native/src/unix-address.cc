// AF_UNIX address construction following systemd's reading of $NOTIFY_SOCKET.
#include "unix-address.h"

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace virtproxyd {

int MakeUnixAddress(const std::string& path, sockaddr_un* addr, socklen_t* len) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  const bool abstract = !path.empty() && path[0] == '@';
  if (path.size() < 2 || (!abstract && path[0] != '/')) return EINVAL;
  // A path name needs room for its terminating NUL; an abstract name uses every byte.
  const size_t room = sizeof(addr->sun_path) - (abstract ? 0 : 1);
  if (path.size() > room) return ENAMETOOLONG;
  std::memcpy(addr->sun_path, path.data(), path.size());
  if (abstract) addr->sun_path[0] = '\0';
  // Abstract names are length-delimited, so the length must not include stray NULs.
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return 0;
}

}  // namespace virtproxyd
