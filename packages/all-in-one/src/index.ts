export { startAllInOneNode, publishRoutes } from './node.js';
