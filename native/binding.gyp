# Build description for the one native addon (see src/addon.cc for the list of parts).
# The non-exception flavour of node-addon-api is used: errors are thrown as JS values.
{
  "targets": [
    {
      "target_name": "virtproxyd_native",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/unix-address.cc",
        "src/peer.cc",
        "src/fdpass.cc",
        "src/notify.cc",
        "src/lock.cc",
        "src/reader.cc",
        "src/sasl.cc",
        "src/test-helpers.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api"
      ],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "libraries": ["-lsasl2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
