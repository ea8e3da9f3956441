/**
 * V8 flags every service process runs with: `npm start` and the benchmarks
 * pass them, the Dockerfile sets the same in NODE_OPTIONS. A 32 MiB young
 * generation instead of V8's 16: the short-lived objects of a streamed answer
 * (a chunk per token, and its frames) mostly die before a scavenge instead of
 * being copied and promoted. In four interleaved runs of
 * tools/bench/chat-stream.mjs at 64 streams, chat's CPU per answer, taken
 * relative to the emulator's in the same run (the machine's speed drifts),
 * was 4–7 % lower with it; a few MiB more memory per process.
 */
export const SERVICE_NODE_FLAGS = ['--max-semi-space-size=32'];
