/** Small fetch helpers for tests. */
export interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

export async function httpRequest(url: string, init: RequestInit = {}): Promise<JsonResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export function publishJson(base: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return httpRequest(`${base}/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

export function publishForm(base: string, fields: [string, string][], headers: Record<string, string> = {}): Promise<JsonResponse> {
  return httpRequest(`${base}/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
}

/** Parses Prometheus text exposition into `name{labels}` → value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
