// A thread of the union server.
import { serveThread } from '../server.js';
import { UnionFileSystem, type UnionShared } from './fs.js';

serveThread((data) => new UnionFileSystem(data as UnionShared));
