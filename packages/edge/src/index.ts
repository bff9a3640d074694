export { startEdgeNode, type EdgeNode, type EdgeNodeOptions, type EdgeContext, type ExtraRoutes } from './node.js';
export { Edge } from './server.js';
export { Hub } from './hub.js';
export { installSafetyNet } from './safety-net.js';
