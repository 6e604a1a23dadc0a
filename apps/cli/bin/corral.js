#!/usr/bin/env -S node --
// Kept for scripts that name it: the command is bin/corral.cjs (it runs the bundle).
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./corral.cjs');
