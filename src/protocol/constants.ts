// Protocol layer: numbers of the libvirt RPC wire protocol (NOTES §1–§3), spelled as in libvirt
// so that a grep finds the same name in C and TypeScript.

export const VIR_NET_MESSAGE_LEN_MAX = 4;
export const VIR_NET_MESSAGE_HEADER_MAX = 24;
export const VIR_NET_MESSAGE_HEADER_XDR_LEN = VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_HEADER_MAX;
export const VIR_NET_MESSAGE_MAX = 33554432;
export const VIR_NET_MESSAGE_PAYLOAD_MAX = VIR_NET_MESSAGE_MAX - VIR_NET_MESSAGE_HEADER_MAX;
export const VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX = 262120;
export const VIR_NET_MESSAGE_STRING_MAX = 4194304;
export const VIR_NET_MESSAGE_NUM_FDS_MAX = 32;
export const REMOTE_STRING_MAX = 4194304;
export const REMOTE_AUTH_TYPE_LIST_MAX = 20;
export const REMOTE_AUTH_SASL_DATA_MAX = 65536;
export const REMOTE_CONNECT_IDENTITY_PARAMS_MAX = 20;

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
export const QEMU_PROGRAM = 0x20008087;
export const QEMU_PROTOCOL_VERSION = 1;
export const LXC_PROGRAM = 0x00068000;
export const LXC_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const ADMIN_PROGRAM = 0x06900690;
export const ADMIN_PROTOCOL_VERSION = 1;

export const KEEPALIVE_PROC_PING = 1;
export const KEEPALIVE_PROC_PONG = 2;

/** Message types (virNetMessageType). */
export const VIR_NET_CALL = 0;
export const VIR_NET_REPLY = 1;
export const VIR_NET_MESSAGE = 2;
export const VIR_NET_STREAM = 3;
export const VIR_NET_CALL_WITH_FDS = 4;
export const VIR_NET_REPLY_WITH_FDS = 5;
export const VIR_NET_STREAM_HOLE = 6;

/** Message statuses (virNetMessageStatus). */
export const VIR_NET_OK = 0;
export const VIR_NET_ERROR = 1;
export const VIR_NET_CONTINUE = 2;

/** Remote procedures the proxy itself must understand (NOTES §3). */
export const REMOTE_PROC_CONNECT_OPEN = 1;
export const REMOTE_PROC_CONNECT_CLOSE = 2;
export const REMOTE_PROC_CONNECT_SUPPORTS_FEATURE = 60;
export const REMOTE_PROC_AUTH_LIST = 66;
export const REMOTE_PROC_AUTH_SASL_INIT = 67;
export const REMOTE_PROC_AUTH_SASL_START = 68;
export const REMOTE_PROC_AUTH_SASL_STEP = 69;
export const REMOTE_PROC_AUTH_POLKIT = 70;
export const REMOTE_PROC_CONNECT_GET_URI = 110;
export const REMOTE_PROC_CONNECT_IS_SECURE = 149;
export const REMOTE_PROC_CONNECT_REGISTER_CLOSE_CALLBACK = 360;
export const REMOTE_PROC_CONNECT_UNREGISTER_CLOSE_CALLBACK = 361;
export const REMOTE_PROC_CONNECT_EVENT_CONNECTION_CLOSED = 362;
export const REMOTE_PROC_CONNECT_SET_IDENTITY = 419;

/** virDrvFeature values the proxy answers itself. */
export const VIR_DRV_FEATURE_FD_PASSING = 8;
export const VIR_DRV_FEATURE_PROGRAM_KEEPALIVE = 10;
export const VIR_DRV_FEATURE_REMOTE_EVENT_CALLBACK = 14;
export const VIR_DRV_FEATURE_REMOTE_CLOSE_CALLBACK = 15;

/** remote_auth_type. */
export const REMOTE_AUTH_NONE = 0;
export const REMOTE_AUTH_SASL = 1;
export const REMOTE_AUTH_POLKIT = 2;

export const VIR_CONNECT_RO = 1;
/** Remote driver's internal open flags sent to backends (remote_sockets.h). */
export const REMOTE_DRIVER_OPEN_RO = 1;
export const REMOTE_DRIVER_OPEN_USER = 2;

/** Reasons carried by CONNECT_EVENT_CONNECTION_CLOSED. */
export const VIR_CONNECT_CLOSE_REASON_ERROR = 0;
export const VIR_CONNECT_CLOSE_REASON_EOF = 1;
export const VIR_CONNECT_CLOSE_REASON_KEEPALIVE = 2;
export const VIR_CONNECT_CLOSE_REASON_CLIENT = 3;

/** Typed parameter types (virTypedParameterType). */
export const VIR_TYPED_PARAM_INT = 1;
export const VIR_TYPED_PARAM_UINT = 2;
export const VIR_TYPED_PARAM_LLONG = 3;
export const VIR_TYPED_PARAM_ULLONG = 4;
export const VIR_TYPED_PARAM_DOUBLE = 5;
export const VIR_TYPED_PARAM_BOOLEAN = 6;
export const VIR_TYPED_PARAM_STRING = 7;

/** virErrorNumber subset. */
export const VIR_ERR_OK = 0;
export const VIR_ERR_INTERNAL_ERROR = 1;
export const VIR_ERR_NO_SUPPORT = 3;
export const VIR_ERR_NO_CONNECT = 5;
export const VIR_ERR_INVALID_ARG = 8;
export const VIR_ERR_OPERATION_FAILED = 9;
export const VIR_ERR_OPERATION_DENIED = 29;
export const VIR_ERR_SYSTEM_ERROR = 38;
export const VIR_ERR_RPC = 39;
export const VIR_ERR_AUTH_FAILED = 45;
export const VIR_ERR_OPERATION_INVALID = 55;
export const VIR_ERR_CONFIG_UNSUPPORTED = 67;
export const VIR_ERR_ARGUMENT_UNSUPPORTED = 74;
export const VIR_ERR_AUTH_CANCELLED = 79;
export const VIR_ERR_AUTH_UNAVAILABLE = 94;
export const VIR_ERR_NO_SERVER = 95;
export const VIR_ERR_NO_CLIENT = 96;

/** virErrorDomain subset. */
export const VIR_FROM_NONE = 0;
export const VIR_FROM_RPC = 7;
export const VIR_FROM_REMOTE = 13;
export const VIR_FROM_DOMAIN = 20;
export const VIR_FROM_POLKIT = 60;
export const VIR_FROM_ADMIN = 62;

export const VIR_ERR_ERROR = 2;

/** Library version we claim to be (virtproxyd --version, CONNECT_GET_LIB_VERSION). */
export const LIBVIRT_VERSION = '11.3.0';
export const LIBVIRT_VERSION_NUMBER = 11003000n;
