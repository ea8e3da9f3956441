import { startBrevoEmulator } from './brevo-emulator.js';

// `node tools/emulators/dist/brevo/main.js`: the Brevo emulator on BREVO_EMULATOR_PORT (default 8125),
// BREVO_EMULATOR_HOST (default 127.0.0.1; 0.0.0.0 in a container).
const emulator = await startBrevoEmulator({ port: Number(process.env.BREVO_EMULATOR_PORT ?? 8125), host: process.env.BREVO_EMULATOR_HOST || '127.0.0.1' });
console.log(JSON.stringify({ level: 30, service: 'brevo-emulator', msg: `Brevo emulator listening on ${emulator.apiUrl} (development: no mail leaves this machine)` }));
const stop = () => emulator.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
