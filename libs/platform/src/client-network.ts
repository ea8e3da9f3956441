import ipaddr from 'ipaddr.js';

/**
 * Whom an anonymous request (a sign-in, a rate limit) is counted against: its
 * IPv4 address, or the /64 network of its IPv6 address. One IPv6 subscriber
 * holds a /64 (and often more) and could take a fresh address, and so a fresh
 * count, for every attempt.
 */
export function clientNetwork(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  const address = ipaddr.process(ip); // an IPv4-mapped IPv6 address as the IPv4 one
  if (address.kind() === 'ipv4') return address.toString();
  return `${(address as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16)).join(':')}::/64`;
}
