// Backend choice: the usable backend with the fewest open connections, ties at random; with
// ClientIP affinity a client keeps its node while that node is usable and the client returns
// within the timeout.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BackendPicker } from '../../../ccm-integration/ccm/cloud/konnectivity/load-balancer/backend-picker.js';

class FakeBackend {
  open = 0;
  healthy = true;
  constructor(readonly node: string) {}
  usable(): boolean {
    return this.healthy;
  }
}

function setup(affinityMs?: number, random = () => 0) {
  let now = 0;
  const picker = new BackendPicker<FakeBackend>(random, () => now);
  const a = new FakeBackend('node-a');
  const b = new FakeBackend('node-b');
  const c = new FakeBackend('node-c');
  picker.update([a, b, c], affinityMs);
  return { picker, a, b, c, advance: (ms: number) => (now += ms) };
}

describe('load balancer backend picker', () => {
  it('picks the backend with the fewest open connections', () => {
    const { picker, a, b, c } = setup();
    a.open = 2;
    b.open = 0;
    c.open = 1;
    assert.equal(picker.pick('192.0.2.1'), b);
  });

  it('breaks ties at random', () => {
    let draw = 0.99;
    const { picker, c } = setup(undefined, () => draw);
    assert.equal(picker.pick('192.0.2.1'), c);
    draw = 0;
    assert.equal(picker.pick('192.0.2.1')?.node, 'node-a');
  });

  it('skips unhealthy backends and those excluded after a failed dial; none left: undefined', () => {
    const { picker, a, b, c } = setup();
    a.healthy = false;
    assert.equal(picker.pick('192.0.2.1', new Set([b])), c);
    c.healthy = false;
    assert.equal(picker.pick('192.0.2.1', new Set([b])), undefined);
  });

  it('keeps a client on its node with ClientIP affinity, whatever the load', () => {
    const { picker, a, b } = setup(10_000);
    const first = picker.pick('192.0.2.1');
    assert.equal(first, a);
    a.open = 50;
    assert.equal(picker.pick('192.0.2.1'), a);
    assert.equal(picker.pick('192.0.2.2'), b, 'another client gets the least loaded');
  });

  it('moves a client whose node became unhealthy, and forgets it after the timeout', () => {
    const { picker, a, b, advance } = setup(10_000);
    assert.equal(picker.pick('192.0.2.1'), a);
    a.healthy = false;
    assert.equal(picker.pick('192.0.2.1'), b);
    a.healthy = true;
    a.open = 0;
    b.open = 5;
    assert.equal(picker.pick('192.0.2.1'), b, 'stays on its new node');
    advance(10_001);
    assert.equal(picker.pick('192.0.2.1'), a, 'timed out: least loaded again');
  });

  it('drops affinity when the Service drops it', () => {
    const { picker, a, b } = setup(10_000);
    assert.equal(picker.pick('192.0.2.1'), a);
    a.open = 3;
    picker.update([a, b], undefined);
    assert.equal(picker.pick('192.0.2.1'), b);
  });
});
