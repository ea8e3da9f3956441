/** RFC 9457 problem details: how every error crosses NATS and leaves the gateway. */
export interface FieldError {
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
  /** Seconds, for 429 answers. */
  retryAfter?: number;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export const problemTitle = (status: number): string => TITLES[status] ?? 'Error';

export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Problem).status === 'number' &&
    typeof (value as Problem).title === 'string'
  );
}

/** A domain error that knows its HTTP meaning; services throw it, the RPC filter sends it. */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    detail: string,
    readonly extra: Partial<Pick<Problem, 'errors' | 'retryAfter' | 'type'>> = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
  }

  toProblem(): Problem {
    return {
      type: this.extra.type ?? 'about:blank',
      title: problemTitle(this.status),
      status: this.status,
      detail: this.message,
      ...(this.extra.errors ? { errors: this.extra.errors } : {}),
      ...(this.extra.retryAfter ? { retryAfter: this.extra.retryAfter } : {}),
    };
  }
}

/**
 * An account (or workspace) holds as many of something as it may: a 409
 * naming the limit. Limits sit far above any real use and bound what a
 * script could pile up (rows, mails, work per request).
 */
export const limitReached = (detail: string) => new ProblemError(409, detail, { type: 'https://ally.eu/problems/limit-reached' });
