#!/usr/bin/env -S node --single-threaded-gc
// One GC thread per isolate: on a 2-core machine V8's parallel GC helpers compete with the
// campaign's workers (measured: +6% execs/s on 1 worker, +12% on 2). `npm start` and
// bench/fuzz.ts pass the same flag.
import { main } from './main.js';

Promise.resolve(main(process.argv.slice(2))).then((code) => {
  process.exitCode = code;
});
