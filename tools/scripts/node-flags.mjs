/**
 * V8 flags every service process runs with: `npm start` and the benchmarks
 * pass them, the Dockerfile sets the same in NODE_OPTIONS. A 32 MiB young
 * generation instead of V8's 16: the short-lived objects of a streamed answer
 * (a chunk per token, and its frames) mostly die before a scavenge instead of
 * being copied and promoted; chat needed ~10 % less CPU per answer at 64
 * streams (2.5 against 2.8 ms, tools/bench/chat-stream.mjs), for a few MiB more
 * memory per process.
 */
export const SERVICE_NODE_FLAGS = ['--max-semi-space-size=32'];
