import { runConformance } from '../src/conformance/index.js';
import { FuseUnionFs } from '../src/index.js';

runConformance('fuse', () => new FuseUnionFs());
