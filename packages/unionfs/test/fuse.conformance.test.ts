import { FuseUnionFs } from '../src/index.js';
import { runConformance } from './conformance/index.js';

runConformance('fuse', () => new FuseUnionFs());
