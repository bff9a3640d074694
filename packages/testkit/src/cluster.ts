import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { parseId } from '@cyclone-sse/common';
import { waitFor } from './wait.js';

export interface Received {
  id: string;
  data: string;
  type: string;
}

/**
 * A real EventSource (the `eventsource` package) that records every event it receives, across
 * its own reconnects (which send Last-Event-ID).
 */
export class RecordingSubscriber {
  readonly es: EventSource;
  readonly received: Received[] = [];
  opens = 0;
  errors = 0;

  constructor(url: string, events: string[] = []) {
    this.es = new EventSource(url);
    const record = (type: string) => (e: { lastEventId: string; data: unknown }) =>
      this.received.push({ id: e.lastEventId, data: String(e.data), type });
    this.es.onmessage = record('message');
    for (const t of ['reset', ...events]) this.es.addEventListener(t, record(t) as unknown as (e: Event) => void);
    this.es.onopen = () => this.opens++;
    this.es.onerror = () => this.errors++;
  }

  get ids(): string[] {
    return this.received.map((r) => r.id);
  }

  has(data: string): boolean {
    return this.received.some((r) => r.data === data);
  }

  async opened(timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.opens > 0, timeoutMs, 'EventSource open');
  }

  close(): void {
    this.es.close();
  }
}

/** The sequence number of an `<epoch>-<seq>` id; a malformed id fails the test (never NaN). */
export function seqOf(id: string): number {
  const cursor = parseId(id);
  assert.ok(cursor, `well-formed id ${JSON.stringify(id)}`);
  return cursor.seq;
}

/** Asserts-free check: strictly increasing seqs (no duplicate, in order). */
export function strictlyIncreasing(ids: string[]): boolean {
  for (let i = 1; i < ids.length; i++) if (seqOf(ids[i]!) <= seqOf(ids[i - 1]!)) return false;
  return true;
}
