import { startOpenAIEmulator } from './openai-emulator.js';

// `node tools/emulators/dist/openai/main.js`: the OpenAI / Azure OpenAI emulator on OPENAI_EMULATOR_PORT (default 8126).
// Optional: OPENAI_EMULATOR_HOST (default 127.0.0.1; 0.0.0.0 in a container), OPENAI_EMULATOR_API_KEY,
// OPENAI_EMULATOR_AZURE_REGIONS ("deployment=region,…", a region as slug or display name: x-ms-region answers
// the display name, "swedencentral" → "Sweden Central", as Azure does), OPENAI_EMULATOR_FIRST_TOKEN_MS, OPENAI_EMULATOR_TOKEN_MS.
const env = process.env;
const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
const azureRegions = Object.fromEntries(
  (env.OPENAI_EMULATOR_AZURE_REGIONS ?? '')
    .split(',')
    .map((pair) => pair.split('=').map((s) => s.trim()))
    .filter(([deployment, region]) => deployment && region),
);
const emulator = await startOpenAIEmulator({
  port: Number(env.OPENAI_EMULATOR_PORT ?? 8126),
  host: env.OPENAI_EMULATOR_HOST || '127.0.0.1',
  apiKey: env.OPENAI_EMULATOR_API_KEY || undefined,
  azureRegions,
  firstTokenLatencyMs: num(env.OPENAI_EMULATOR_FIRST_TOKEN_MS),
  latencyPerTokenMs: num(env.OPENAI_EMULATOR_TOKEN_MS),
});
console.log(
  JSON.stringify({
    level: 30,
    service: 'openai-emulator',
    msg: `OpenAI emulator listening: OpenAI base URL ${emulator.openaiBaseUrl()} (or ${emulator.url}/<endpoint>/v1), Azure endpoint ${emulator.azureEndpoint()} (development: no prompt leaves this machine)`,
  }),
);
const stop = () => emulator.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
