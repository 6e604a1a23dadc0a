export * from './errors.js';
export { type ApplyResult, applyLayer, cleanLayerPath, parsePaxRecords } from './layer/apply.js';
export { type Compression, Decompress, detectCompression } from './layer/compress.js';
export { diffLayer, exportRootfs, type PackOptions } from './layer/pack.js';
export * from './store/index.js';
