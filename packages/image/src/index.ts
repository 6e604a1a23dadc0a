// tar-stream's reader and writer, for the engine's container archives (docker cp).
export { extract as tarExtract, type Header as TarHeader, pack as tarPack } from 'tar-stream';
export { type LoadedImage, type LoadResult, loadArchive } from './archive/load.js';
export { saveArchive } from './archive/save.js';
export { type CommitOptions, commit, type ImportOptions, importRootfs, storeLayerTar } from './build.js';
export { BUSYBOX_IMAGE, busyboxLayerTar, DEFAULT_BUSYBOX, ensureBusyboxImage } from './busybox.js';
export * from './errors.js';
export { type ApplyResult, applyLayer, cleanLayerPath, parsePaxRecords } from './layer/apply.js';
export { type Compression, Decompress, detectCompression } from './layer/compress.js';
export { diffLayer, exportRootfs, type PackOptions } from './layer/pack.js';
export * from './registry/index.js';
export * from './store/index.js';
