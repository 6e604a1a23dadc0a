export * from './errors.js';
export * from './store/index.js';
export { applyLayer, cleanLayerPath, parsePaxRecords, type ApplyResult } from './layer/apply.js';
export { Decompress, detectCompression, type Compression } from './layer/compress.js';
