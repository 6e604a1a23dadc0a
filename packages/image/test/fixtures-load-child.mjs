// Loads an archive into a store; run by crash.test.ts as a separate process it can kill.
import { ImageStore, loadArchive } from '../dist/index.js';

const [root, archive] = process.argv.slice(2);
const result = await loadArchive(new ImageStore(root), archive);
process.stdout.write(JSON.stringify(result));
