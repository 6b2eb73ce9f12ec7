// What a connection waiting for a handshake slot may send, and what keeping it costs: the bytes
// come back in order, a trickle of tiny reads is copied into one buffer and then refused, and
// what no waiting TLS client sends is refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ClientHelloBuffer, MAX_HELLO_BYTES, MAX_HELLO_READS } from '../../../server/client-hello-buffer.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Bytes that start like a TLS handshake record. */
function hello(length: number): Buffer {
  const bytes = randomBytes(length);
  bytes[0] = 0x16;
  return bytes;
}

/** `bytes` cut into `pieces` chunks, each its own allocation (as Node's reads are). */
function cut(bytes: Buffer, pieces: number): Buffer[] {
  const size = Math.ceil(bytes.length / pieces);
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(Buffer.from(bytes.subarray(at, at + size)));
  return out;
}

describe('ClientHelloBuffer', () => {
  it('gives back one chunk as it came', () => {
    const buffer = new ClientHelloBuffer();
    const chunk = hello(517);
    assert.equal(buffer.push(chunk), undefined);
    assert.equal(buffer.take(), chunk);
    assert.equal(buffer.take().length, 0, 'take() forgets');
  });

  it('gives back chunks in order, joined', () => {
    const bytes = hello(1800);
    const buffer = new ClientHelloBuffer();
    for (const chunk of cut(bytes, 7)) assert.equal(buffer.push(chunk), undefined);
    assert.equal(sha(buffer.take()), sha(bytes));
  });

  it('holds one buffer for many small reads, and refuses a trickle', () => {
    const buffer = new ClientHelloBuffer();
    const bytes = hello(MAX_HELLO_READS * 200);
    const chunks = cut(bytes, MAX_HELLO_READS);
    for (const chunk of chunks) assert.equal(buffer.push(chunk), undefined);
    assert.ok(
      buffer.retainedBytes <= MAX_HELLO_BYTES,
      `${String(buffer.retainedBytes)} bytes held for ${String(MAX_HELLO_READS)} reads`,
    );
    assert.equal(buffer.push(Buffer.from([0x01])), 'too many reads');
    assert.equal(sha(buffer.take()), sha(bytes));
  });

  it('takes one TLS record and its header, not a byte more', () => {
    const exact = new ClientHelloBuffer();
    assert.equal(exact.push(hello(MAX_HELLO_BYTES)), undefined);
    const over = new ClientHelloBuffer();
    assert.equal(over.push(hello(MAX_HELLO_BYTES - 10)), undefined);
    assert.equal(over.push(Buffer.alloc(11)), 'too large');
  });

  it('refuses a first byte that does not start a TLS handshake record', () => {
    const buffer = new ClientHelloBuffer();
    assert.equal(buffer.push(Buffer.alloc(0)), undefined, 'an empty read is nothing');
    assert.equal(buffer.push(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 'not TLS');
  });
});
