import { describe, expect, it } from '@jest/globals';
import { clientNetwork } from './client-network.js';

describe('whom an anonymous request is counted against', () => {
  it('is the IPv4 address, also when it comes IPv4-mapped', () => {
    expect(clientNetwork('203.0.113.7')).toBe('203.0.113.7');
    expect(clientNetwork('::ffff:203.0.113.7')).toBe('203.0.113.7');
  });

  it('is the /64 of an IPv6 address, however it is written: a new address in the same network buys no new bucket', () => {
    const network = clientNetwork('2001:db8:1234:5678::1');
    expect(network).toBe('2001:db8:1234:5678::/64');
    expect(clientNetwork('2001:0db8:1234:5678:abcd:ef01:2345:6789')).toBe(network);
    expect(clientNetwork('2001:DB8:1234:5678:FFFF::')).toBe(network);
    expect(clientNetwork('2001:db8:1234:5679::1')).not.toBe(network);
  });

  it('keeps what is no address as it is', () => {
    expect(clientNetwork('unknown')).toBe('unknown');
  });
});
