// Building an AF_UNIX address from the $NOTIFY_SOCKET spelling, shared by sd_notify
// and the test helper that plays the part of systemd's receiving end.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string>

namespace virtproxyd {

// A leading '@' selects the Linux abstract namespace (the '@' becomes a NUL byte and
// the name is not NUL-terminated); otherwise the path must be absolute. Returns 0 and
// fills addr/len, or an errno value (EINVAL, ENAMETOOLONG).
int MakeUnixAddress(const std::string& path, sockaddr_un* addr, socklen_t* len);

}  // namespace virtproxyd
