// Cyrus SASL, server side, the way libvirt's daemon drives it: one library init for the
// application name (which picks /etc/sasl2/<name>.conf: mech_list, sasldb_path, ...), then one
// SaslServer per client connection wrapping a sasl_conn_t: security properties, mechanism list,
// start/step, and after authentication the user name, SSF and the security layer's encode/decode.
// Everything runs on the loop thread; Cyrus is only entered from JS calls.
#include <sasl/sasl.h>

#include <cstring>
#include <string>

#include "addon.h"

namespace virtproxyd {

namespace {

bool g_initialised = false;

// Cyrus result codes are negative for errors; the detail string is per connection.
Napi::Value ThrowSasl(Napi::Env env, int rc, sasl_conn_t* conn, const char* what) {
  std::string detail = conn != nullptr ? sasl_errdetail(conn) : sasl_errstring(rc, nullptr, nullptr);
  Napi::Error error = Napi::Error::New(env, std::string(what) + ": " + std::to_string(rc) + " (" + detail + ")");
  error.Set("code", Napi::String::New(env, "ESASL"));
  error.Set("saslCode", Napi::Number::New(env, rc));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

// saslServerInit(appName): sasl_server_init once per process; later calls with the same name are
// no-ops (Cyrus keeps one global server state).
Napi::Value SaslServerInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string app;
  if (!ArgString(info, 0, &app)) return env.Undefined();
  if (g_initialised) return env.Undefined();
  // Cyrus keeps the pointer: give it storage that lives as long as the process.
  static std::string appName;
  appName = app;
  int rc = sasl_server_init(nullptr, appName.c_str());
  if (rc != SASL_OK) return ThrowSasl(env, rc, nullptr, "failed to initialize SASL library");
  g_initialised = true;
  return env.Undefined();
}

// Buffer or null (null and an empty buffer differ on the wire: libvirt's `nil` flag).
bool ArgOptionalBuffer(const Napi::CallbackInfo& info, size_t index, const char** data, unsigned* len) {
  if (info.Length() <= index || info[index].IsNull() || info[index].IsUndefined()) {
    *data = nullptr;
    *len = 0;
    return true;
  }
  if (!info[index].IsBuffer()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(index + 1) + " must be a Buffer or null")
        .ThrowAsJavaScriptException();
    return false;
  }
  auto buf = info[index].As<Napi::Buffer<char>>();
  *data = buf.Data();
  *len = static_cast<unsigned>(buf.Length());
  return true;
}

class SaslServer : public Napi::ObjectWrap<SaslServer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SaslServer",
                       {InstanceMethod("setExternalSsf", &SaslServer::SetExternalSsf),
                        InstanceMethod("setSecurityProps", &SaslServer::SetSecurityProps),
                        InstanceMethod("listMechanisms", &SaslServer::ListMechanisms),
                        InstanceMethod("start", &SaslServer::Start), InstanceMethod("step", &SaslServer::Step),
                        InstanceMethod("userName", &SaslServer::UserName), InstanceMethod("ssf", &SaslServer::Ssf),
                        InstanceMethod("maxOutput", &SaslServer::MaxOutput),
                        InstanceMethod("encode", &SaslServer::Encode), InstanceMethod("decode", &SaslServer::Decode),
                        InstanceMethod("dispose", &SaslServer::Dispose)});
  }

  // new SaslServer(service, localAddr | null, remoteAddr | null); addresses as "ip;port".
  explicit SaslServer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SaslServer>(info) {
    Napi::Env env = info.Env();
    if (!g_initialised) {
      ThrowCoded(env, "ESASL", "saslServerInit has not been called");
      return;
    }
    if (!ArgString(info, 0, &service_)) return;
    if (info.Length() > 1 && info[1].IsString()) local_ = info[1].As<Napi::String>().Utf8Value();
    if (info.Length() > 2 && info[2].IsString()) remote_ = info[2].As<Napi::String>().Utf8Value();
    int rc = sasl_server_new(service_.c_str(), nullptr, nullptr, local_.empty() ? nullptr : local_.c_str(),
                             remote_.empty() ? nullptr : remote_.c_str(), nullptr, SASL_SUCCESS_DATA, &conn_);
    if (rc != SASL_OK) {
      conn_ = nullptr;
      ThrowSasl(env, rc, nullptr, "Failed to create SASL server context");
    }
  }

  ~SaslServer() override { Release(); }

 private:
  void Release() {
    if (conn_ != nullptr) sasl_dispose(&conn_);
    conn_ = nullptr;
  }

  bool Live(Napi::Env env) {
    if (conn_ != nullptr) return true;
    ThrowCoded(env, "ESASL", "SASL session already disposed");
    return false;
  }

  Napi::Value SetExternalSsf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    sasl_ssf_t ssf = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    int rc = sasl_setprop(conn_, SASL_SSF_EXTERNAL, &ssf);
    if (rc != SASL_OK) return ThrowSasl(env, rc, conn_, "cannot set external SSF");
    return env.Undefined();
  }

  // setSecurityProps(minSsf, maxSsf, allowAnonymous, maxBufSize)
  Napi::Value SetSecurityProps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    sasl_security_properties_t props;
    std::memset(&props, 0, sizeof props);
    props.min_ssf = info[0].As<Napi::Number>().Uint32Value();
    props.max_ssf = info[1].As<Napi::Number>().Uint32Value();
    bool anonymous = info[2].ToBoolean().Value();
    props.security_flags = anonymous ? 0 : (SASL_SEC_NOANONYMOUS | SASL_SEC_NOPLAINTEXT);
    props.maxbufsize = info[3].As<Napi::Number>().Uint32Value();
    int rc = sasl_setprop(conn_, SASL_SEC_PROPS, &props);
    if (rc != SASL_OK) return ThrowSasl(env, rc, conn_, "cannot set security props");
    return env.Undefined();
  }

  Napi::Value ListMechanisms(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    const char* list = nullptr;
    int rc = sasl_listmech(conn_, nullptr, "", ",", "", &list, nullptr, nullptr);
    if (rc != SASL_OK) return ThrowSasl(env, rc, conn_, "cannot list SASL mechanisms");
    return Napi::String::New(env, list != nullptr ? list : "");
  }

  // { done: boolean, data: Buffer | null } for SASL_OK / SASL_CONTINUE; throws otherwise.
  Napi::Value Outcome(Napi::Env env, int rc, const char* out, unsigned outlen, const char* what) {
    if (rc != SASL_OK && rc != SASL_CONTINUE) return ThrowSasl(env, rc, conn_, what);
    Napi::Object result = Napi::Object::New(env);
    result.Set("done", Napi::Boolean::New(env, rc == SASL_OK));
    if (out == nullptr) {
      result.Set("data", env.Null());
    } else {
      result.Set("data", Napi::Buffer<char>::Copy(env, out, outlen));
    }
    return result;
  }

  // start(mech, data | null)
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    std::string mech;
    if (!ArgString(info, 0, &mech)) return env.Undefined();
    const char* in;
    unsigned inlen;
    if (!ArgOptionalBuffer(info, 1, &in, &inlen)) return env.Undefined();
    const char* out = nullptr;
    unsigned outlen = 0;
    int rc = sasl_server_start(conn_, mech.c_str(), in, inlen, &out, &outlen);
    return Outcome(env, rc, out, outlen, "Failed to start SASL negotiation");
  }

  // step(data | null)
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    const char* in;
    unsigned inlen;
    if (!ArgOptionalBuffer(info, 0, &in, &inlen)) return env.Undefined();
    const char* out = nullptr;
    unsigned outlen = 0;
    int rc = sasl_server_step(conn_, in, inlen, &out, &outlen);
    return Outcome(env, rc, out, outlen, "Failed to step SASL negotiation");
  }

  Napi::Value UserName(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    const void* val = nullptr;
    int rc = sasl_getprop(conn_, SASL_USERNAME, &val);
    if (rc != SASL_OK) return ThrowSasl(env, rc, conn_, "cannot query SASL username on connection");
    if (val == nullptr) return env.Null();
    return Napi::String::New(env, static_cast<const char*>(val));
  }

  Napi::Value Ssf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    const void* val = nullptr;
    int rc = sasl_getprop(conn_, SASL_SSF, &val);
    if (rc != SASL_OK) return ThrowSasl(env, rc, conn_, "cannot query SASL ssf on connection");
    return Napi::Number::New(env, *static_cast<const sasl_ssf_t*>(val));
  }

  Napi::Value MaxOutput(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    const void* val = nullptr;
    int rc = sasl_getprop(conn_, SASL_MAXOUTBUF, &val);
    if (rc != SASL_OK) return ThrowSasl(env, rc, conn_, "cannot get security props");
    return Napi::Number::New(env, *static_cast<const unsigned*>(val));
  }

  // encode(data): the caller keeps each input within maxOutput().
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    const char* in;
    unsigned inlen;
    if (!ArgOptionalBuffer(info, 0, &in, &inlen) || in == nullptr) return env.Undefined();
    const char* out = nullptr;
    unsigned outlen = 0;
    int rc = sasl_encode(conn_, in, inlen, &out, &outlen);
    if (rc != SASL_OK) return ThrowSasl(env, rc, conn_, "failed to encode SASL data");
    return Napi::Buffer<char>::Copy(env, out != nullptr ? out : "", outlen);
  }

  // decode(data): whatever whole plaintext the bytes complete (possibly none); Cyrus keeps the
  // rest of a partial packet for the next call.
  Napi::Value Decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    const char* in;
    unsigned inlen;
    if (!ArgOptionalBuffer(info, 0, &in, &inlen) || in == nullptr) return env.Undefined();
    const char* out = nullptr;
    unsigned outlen = 0;
    int rc = sasl_decode(conn_, in, inlen, &out, &outlen);
    if (rc != SASL_OK) return ThrowSasl(env, rc, conn_, "failed to decode SASL data");
    return Napi::Buffer<char>::Copy(env, out != nullptr ? out : "", outlen);
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  sasl_conn_t* conn_ = nullptr;
  std::string service_, local_, remote_;
};

}  // namespace

void InitSasl(Napi::Env env, Napi::Object exports) {
  exports.Set("saslServerInit", Napi::Function::New(env, SaslServerInit, "saslServerInit"));
  exports.Set("SaslServer", SaslServer::Define(env));
}

}  // namespace virtproxyd
