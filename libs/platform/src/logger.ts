import { pino, type Logger } from 'pino';
import type { LoggerService } from '@nestjs/common';

/** Personal data and secrets never reach the logs. */
export const REDACTED_PATHS = [
  'email', '*.email', '*.*.email',
  'password', '*.password', '*.*.password',
  'firstName', '*.firstName', 'lastName', '*.lastName',
  'token', '*.token', 'refreshToken', '*.refreshToken', 'accessToken', '*.accessToken',
  'key', '*.key', 'ip', '*.ip',
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization',
];

/** `to`: stdout for a running service; stderr for a one-off command, whose stdout is its answer (a CSV piped to a file). */
export function createLogger(service: string, level: string, to: 'stdout' | 'stderr' = 'stdout'): Logger {
  const options = { level, base: { service }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime };
  return to === 'stderr' ? pino(options, pino.destination({ fd: 2, sync: true })) : pino(options);
}

/** Lets Nest's own messages go through pino as JSON. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, context?: string) {
    this.logger.info({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string) {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string) {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string) {
    this.logger.trace({ context }, String(message));
  }
}
