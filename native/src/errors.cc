// Error and argument helpers shared by every part of the addon. Errors carry the
// errno name as `code` so TypeScript callers can branch the same way they do on
// Node's own system errors.
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

#include "addon.h"

namespace virtproxyd {

namespace {

// glibc can name every errno; the fallback table covers what these syscalls return
// on other C libraries, so a code is never just a number for the common cases.
std::string ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
#else
  switch (err) {
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EBADMSG: return "EBADMSG";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case EINVAL: return "EINVAL";
    case EMSGSIZE: return "EMSGSIZE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOENT: return "ENOENT";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOTCONN: return "ENOTCONN";
    case ENOTSOCK: return "ENOTSOCK";
    case EPIPE: return "EPIPE";
    case ETOOMANYREFS: return "ETOOMANYREFS";
    default: break;
  }
#endif
  return "E" + std::to_string(err);
}

}  // namespace

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall) {
  std::string message = std::string(syscall) + ": " + std::strerror(err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowCoded(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

bool ArgFd(const Napi::CallbackInfo& info, size_t index, int* fd) {
  Napi::Env env = info.Env();
  if (info.Length() > index && info[index].IsNumber()) {
    double value = info[index].As<Napi::Number>().DoubleValue();
    if (std::isfinite(value) && value >= 0 && value <= 2147483647.0 && std::floor(value) == value) {
      *fd = static_cast<int>(value);
      return true;
    }
  }
  Napi::TypeError error =
      Napi::TypeError::New(env, "argument " + std::to_string(index + 1) + " must be a file descriptor");
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  error.ThrowAsJavaScriptException();
  return false;
}

bool ArgString(const Napi::CallbackInfo& info, size_t index, std::string* out) {
  Napi::Env env = info.Env();
  if (info.Length() > index && info[index].IsString()) {
    *out = info[index].As<Napi::String>().Utf8Value();
    return true;
  }
  Napi::TypeError error =
      Napi::TypeError::New(env, "argument " + std::to_string(index + 1) + " must be a string");
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  error.ThrowAsJavaScriptException();
  return false;
}

}  // namespace virtproxyd
