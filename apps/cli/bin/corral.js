#!/usr/bin/env -S node --
import '../dist/main.js';
