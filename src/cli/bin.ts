#!/usr/bin/env node
import { main } from './main.js';

Promise.resolve(main(process.argv.slice(2))).then((code) => {
  process.exitCode = code;
});
