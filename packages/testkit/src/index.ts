export * from './sse-client.js';
export * from './http.js';
