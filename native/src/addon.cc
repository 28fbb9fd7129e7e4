// Entry point of the virtproxyd native addon: the few things Node cannot do itself
// (peer credentials, fd passing, sd_notify, PID-file locking). Each part lives in its
// own file and is registered here, so another part (e.g. sasl.cc) is one more Init call.
#include "addon.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  virtproxyd::InitPeer(env, exports);
  virtproxyd::InitFdPass(env, exports);
  virtproxyd::InitNotify(env, exports);
  virtproxyd::InitLock(env, exports);
  virtproxyd::InitReader(env, exports);
  virtproxyd::InitSasl(env, exports);
  virtproxyd::InitTestHelpers(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(virtproxyd_native, Init)
