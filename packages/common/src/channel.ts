import { HubError } from './errors.js';

// C0 controls, DEL and C1 controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Throws INVALID_CHANNEL unless `name` is 1..maxBytes bytes of UTF-8 without control characters. */
export function validateChannel(name: string, maxBytes = 255): string {
  if (name.length === 0) throw new HubError('INVALID_CHANNEL', 'channel name must not be empty');
  if (CONTROL.test(name)) throw new HubError('INVALID_CHANNEL', 'channel name must not contain control characters');
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > maxBytes) {
    throw new HubError('INVALID_CHANNEL', `channel name is ${bytes} bytes; the limit is ${maxBytes}`);
  }
  if (name.includes('\uFFFD')) throw new HubError('INVALID_CHANNEL', 'channel name must be valid UTF-8');
  return name;
}
