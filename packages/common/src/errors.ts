/**
 * The error catalogue. Every error a client can see has a stable `code`; HTTP answers carry
 * `{ statusCode, code, error, message }`.
 */
export const ERROR_CODES = {
  INVALID_CHANNEL: 400,
  INVALID_PARAMETER: 400,
  INVALID_BODY: 400,
  MISSING_MESSAGE: 400,
  MISSING_CHANNEL: 400,
  INVALID_EVENT: 400,
  INVALID_ID: 400,
  INVALID_FRAMING: 400,
  /** Data containing a line separator some SSE clients split on (VT, FF, FS/GS/RS, U+0085, U+2028, U+2029). */
  INVALID_DATA: 400,
  /** An event name the hub sends itself (`reset`, `token-expired`, `cyclone-*`). */
  RESERVED_EVENT: 400,
  /** A publish naming more channels than --max-channels-per-publish. */
  TOO_MANY_CHANNELS: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  PAYLOAD_TOO_LARGE: 413,
  /** A request whose frames × channels exceed --max-publish-fanout-bytes. */
  FANOUT_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  BROKER_UNAVAILABLE: 503,
  /** --redis-wait-replicas: the replicas did not acknowledge the publish within --redis-wait-timeout. */
  REPLICATION_TIMEOUT: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

const REASONS: Record<number, string> = {
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function reasonPhrase(statusCode: number): string {
  return REASONS[statusCode] ?? 'Error';
}

export class HubError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HubError';
    this.code = code;
    this.statusCode = ERROR_CODES[code];
  }

  toJSON(): ErrorBody {
    return {
      statusCode: this.statusCode,
      code: this.code,
      error: reasonPhrase(this.statusCode),
      message: this.message,
    };
  }
}

export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
}

export function isHubError(err: unknown): err is HubError {
  return err instanceof HubError;
}

/** Turns any thrown value into a HubError; unknown errors become INTERNAL (message not leaked). */
export function toHubError(err: unknown): HubError {
  if (isHubError(err)) return err;
  return new HubError('INTERNAL', 'internal server error', { cause: err });
}

/**
 * Why a process refused to start (never an HTTP answer): the `code` of a {@link StartupError},
 * shown in the `start_failed` log line and on stderr.
 */
export const STARTUP_ERROR_CODES = [
  /** A required option is missing or a file it names cannot be read (--redis-url, --use-ssl). */
  'CONFIG_INVALID',
  /** A port could not be bound (in use, not permitted). */
  'LISTEN_FAILED',
  /** No native uWebSockets.js binary loads on this Node.js/platform. */
  'NATIVE_UWS_MISSING',
] as const;
export type StartupErrorCode = (typeof STARTUP_ERROR_CODES)[number];

export class StartupError extends Error {
  readonly code: StartupErrorCode;

  constructor(code: StartupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
    this.code = code;
  }
}
