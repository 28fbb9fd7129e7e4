// End-to-end: file-descriptor passing through the proxy (NOTES §1.8) with real APIs on a real QEMU
// guest (TCG, VNC on loopback). python3-libvirt calls virDomainOpenGraphicsFD, whose reply carries
// an fd from libvirtd (REPLY_WITH_FDS, backend → proxy → client), and virDomainOpenGraphics with one
// end of a socketpair (CALL_WITH_FDS, client → proxy → backend). Both fds must end up speaking RFB
// with QEMU's VNC server. Over TCP the same APIs must fail the way libvirt makes them fail.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { guestName, tinyGuestXml } from './guest.js';
import { python, startProxy, virsh, type Proxy } from './harness.js';
import { freePort, waitForPort } from './net-util.js';

/** Starts a transient guest, runs both APIs, destroys it; prints one JSON object. */
const PY_GRAPHICS = `
import json, os, select, socket, stat, sys, libvirt
uri, xml = sys.argv[1], sys.argv[2]
def banner(fd):
    # QEMU's VNC server speaks first: "RFB 003.008\\n".
    ready, _, _ = select.select([fd], [], [], 20)
    return os.read(fd, 12).decode("latin1") if ready else None
out = {}
conn = libvirt.open(uri)
dom = conn.createXML(xml, 0)
try:
    fd = dom.openGraphicsFD(0, 0)
    out["fd_is_socket"] = stat.S_ISSOCK(os.fstat(fd).st_mode)
    out["fd_banner"] = banner(fd)
    os.close(fd)
    mine, theirs = socket.socketpair()
    dom.openGraphics(0, theirs.fileno(), 0)
    theirs.close()
    out["pair_banner"] = banner(mine.fileno())
    mine.close()
finally:
    dom.destroy()
conn.close()
print(json.dumps(out))
`;

/** Over TCP: what each fd API raises (libvirt's client refuses before sending anything). */
const PY_TCP = `
import json, sys, socket, libvirt
conn = libvirt.open(sys.argv[1])
out = {}
dom = conn.createXML(sys.argv[2], 0)
def attempt(fn):
    try:
        fn()
        return {"ok": True}
    except libvirt.libvirtError as e:
        return {"code": e.get_error_code(), "domain": e.get_error_domain(), "message": e.get_error_message()}
try:
    out["open_graphics_fd"] = attempt(lambda: dom.openGraphicsFD(0, 0))
    a, b = socket.socketpair()
    out["open_graphics"] = attempt(lambda: dom.openGraphics(0, b.fileno(), 0))
    out["still_usable"] = conn.getHostname() != ""
finally:
    dom.destroy()
conn.close()
print(json.dumps(out))
`;

let proxy: Proxy;
let tcpPort: number;

before(async () => {
  tcpPort = await freePort();
  proxy = await startProxy({
    conf: { listen_tcp: 1, listen_addr: '127.0.0.1', tcp_port: String(tcpPort), auth_tcp: 'none' },
  });
  await waitForPort(tcpPort);
});

after(async () => {
  // A guest left by a failed run would keep its name taken; destroy it directly.
  for (const tag of ['fdunix', 'fdtcp']) {
    await virsh(proxy.uri('qemu:///system'), 'destroy', guestName(tag)).catch(() => undefined);
  }
});

describe('fd passing on the unix socket', () => {
  it('openGraphicsFD returns an fd that speaks RFB; openGraphics hands our socket to QEMU', async () => {
    const r = await python(PY_GRAPHICS, [proxy.uri('qemu:///system'), tinyGuestXml(guestName('fdunix'))]);
    assert.equal(r.code, 0, `python client failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout) as {
      fd_is_socket: boolean;
      fd_banner: string | null;
      pair_banner: string | null;
    };
    assert.equal(out.fd_is_socket, true, 'the fd that came back through the proxy is a socket');
    assert.match(out.fd_banner ?? '', /^RFB 003\.00\d\n$/, 'fd from REPLY_WITH_FDS speaks RFB');
    assert.match(out.pair_banner ?? '', /^RFB 003\.00\d\n$/, 'fd sent with CALL_WITH_FDS reached QEMU');
  });
});

describe('fd passing over TCP', () => {
  it("both fd APIs fail with libvirt's error and the connection stays usable", async () => {
    const uri = `qemu+tcp://127.0.0.1:${tcpPort}/system`;
    const r = await python(PY_TCP, [uri, tinyGuestXml(guestName('fdtcp'))]);
    assert.equal(r.code, 0, `python client failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout) as Record<
      string,
      { code?: number; message?: string; ok?: boolean } | boolean
    >;
    for (const api of ['open_graphics_fd', 'open_graphics']) {
      const e = out[api] as { code?: number; message?: string; ok?: boolean };
      assert.notEqual(e.ok, true, `${api} must not succeed over TCP`);
      // VIR_ERR_ARGUMENT_UNSUPPORTED, raised by libvirt's client once the proxy says the
      // connection cannot pass fds (CONNECT_SUPPORTS_FEATURE(FD_PASSING) = 0).
      assert.equal(e.code, 74, `${api}: ${JSON.stringify(e)}`);
      assert.match(e.message ?? '', /fd passing is not supported by this connection/);
    }
    assert.equal(out['still_usable'], true);
  });

  it('a raw CALL_WITH_FDS over TCP closes the connection without a reply, as libvirt does', async () => {
    const sock = connect({ host: '127.0.0.1', port: tcpPort });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const received: Buffer[] = [];
    sock.on('data', (d: Buffer) => received.push(d));
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    // remote program, v1, DOMAIN_OPEN_GRAPHICS (249), CALL_WITH_FDS (4), serial 1, OK, 1 fd; then
    // the one dummy byte a sender puts on the wire for that fd.
    const frame = Buffer.alloc(32);
    [32, 0x20008086, 1, 249, 4, 1, 0, 1].forEach((w, i) => frame.writeUInt32BE(w, i * 4));
    sock.write(Buffer.concat([frame, Buffer.alloc(1)]));
    const timeout = new Promise<string>((r) => setTimeout(() => r('timeout'), 5000).unref());
    assert.notEqual(await Promise.race([closed.then(() => 'closed'), timeout]), 'timeout');
    assert.equal(Buffer.concat(received).length, 0, 'no reply before the close');
  });
});
