export * from './sse-client.js';
export * from './http.js';
export * from './redis.js';
export * from './wait.js';
export * from './nginx.js';
export * from './process.js';
export * from './cluster.js';
export * from './rabbit.js';
