import { runConformance } from '../src/conformance/index.js';
import { OverlayUnionFs } from '../src/index.js';

runConformance('overlay', () => new OverlayUnionFs());
// The same backend through classic mount(2), the path taken on kernels without lowerdir+.
runConformance('overlay (mount(2) method)', () => new OverlayUnionFs({ method: 'mount' }));
