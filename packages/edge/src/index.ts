export { startEdgeNode, createBroker, type EdgeNode } from './node.js';
export { Edge } from './server.js';
export { Hub } from './hub.js';
