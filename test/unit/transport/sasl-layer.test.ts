// Frames through a security layer: split to the negotiated maximum, each piece encoded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type net from 'node:net';
import { SecurityLayerWriter, type SecurityLayer } from '../../../src/transport/sasl-layer.js';

test('frames are cut to maxOutput before encoding, in order', () => {
  const written: Buffer[] = [];
  const socket = {
    write: (b: Buffer) => (written.push(b), true),
    destroy: () => undefined,
  } as unknown as net.Socket;
  const layer: SecurityLayer = {
    maxOutput: 4,
    encode: (b) => Buffer.concat([Buffer.from([b.length]), b]),
    decode: (b) => b,
    dispose: () => undefined,
  };
  const w = new SecurityLayerWriter(socket, layer);
  assert.equal(w.write(Buffer.from('abcdefghij')), true);
  assert.deepEqual(
    written.map((b) => b.toString('latin1')),
    ['\x04abcd', '\x04efgh', '\x02ij'],
  );
});

test('an encode failure closes the connection rather than sending clear text', () => {
  let destroyed: Error | undefined;
  const socket = { write: () => true, destroy: (e?: Error) => (destroyed = e) } as unknown as net.Socket;
  const w = new SecurityLayerWriter(socket, {
    maxOutput: 0,
    encode: () => {
      throw new Error('boom');
    },
    decode: (b) => b,
    dispose: () => undefined,
  });
  assert.equal(w.write(Buffer.from('x')), false);
  assert.equal(destroyed?.message, 'boom');
});
