export { OVERLAY_FEATURES, type OverlayMethod, type OverlayOptions, OverlayUnionFs } from './overlay.js';
