// Shared declarations for the virtproxyd native addon: every part registers its
// functions through one Init* hook, and all of them report failures the same way.
#pragma once

#include <napi.h>

#include <cstddef>
#include <string>
#include <sys/types.h>
#include <vector>

namespace virtproxyd {

// Each part of the addon adds its functions to the exports object.
void InitPeer(Napi::Env env, Napi::Object exports);
void InitFdPass(Napi::Env env, Napi::Object exports);
void InitNotify(Napi::Env env, Napi::Object exports);
void InitLock(Napi::Env env, Napi::Object exports);
void InitReader(Napi::Env env, Napi::Object exports);
void InitSasl(Napi::Env env, Napi::Object exports);
void InitTestHelpers(Napi::Env env, Napi::Object exports);

// Throws a JS Error shaped like Node's own system errors (code = errno name,
// errno = negative number, syscall) and returns undefined for the caller to return.
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall);

// Throws a JS Error with an arbitrary string code (for conditions errno cannot name).
Napi::Value ThrowCoded(Napi::Env env, const char* code, const std::string& message);

// Reads argument `index` as a non-negative integer file descriptor. On failure a
// TypeError is pending and false is returned.
bool ArgFd(const Napi::CallbackInfo& info, size_t index, int* fd);

// Reads argument `index` as a string. On failure a TypeError is pending and false is returned.
bool ArgString(const Napi::CallbackInfo& info, size_t index, std::string* out);

// Sends one 0x00 data byte with the given fds in a single SCM_RIGHTS control message,
// never blocking. Returns 0 or an errno value.
int SendByteWithFds(int sock, const int* fds, size_t count);

// One non-blocking recvmsg() into buf, collecting every passed fd (close-on-exec) into *fds so
// none can leak. Returns bytes read, 0 at end of stream, or -1 with errno set (EAGAIN included);
// *truncated tells whether the kernel had to drop fds for want of control-buffer room.
ssize_t RecvWithFds(int sock, void* buf, size_t len, size_t max_fds, std::vector<int>* fds, bool* truncated);

}  // namespace virtproxyd
