/** Why a stream ended: the one list both the type and the metric's series are made from. */
export const CLOSE_REASONS = ['client', 'slow', 'shutdown', 'error', 'limit', 'token', 'lifetime'] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

/** Why a stream was refused when it opened (it then also counts as closed: 'limit' or 'shutdown'). */
export const REFUSAL_REASONS = ['max_connections', 'per_ip', 'draining'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
