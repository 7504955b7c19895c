#!/usr/bin/env node
// CommonJS, like dist/entry.cjs: see src/entry.ts.
require('../dist/entry.cjs');
