// Compile + instantiate time of a wasm module in Node's V8 (the engine workerd
// embeds): a proxy for what a cold isolate pays for the gateway's module.
// Imports are stubs (instantiation calls none of them). Prints the median of 5.
import { readFileSync } from "node:fs";

const bytes = readFileSync(process.argv[2]);
const times = { compile: [], instantiate: [] };
for (let i = 0; i < 5; i++) {
  let t = performance.now();
  const module = new WebAssembly.Module(bytes);
  times.compile.push(performance.now() - t);
  const imports = {};
  for (const { module: m, name, kind } of WebAssembly.Module.imports(module)) {
    imports[m] ??= {};
    imports[m][name] = kind === "function" ? () => { throw new Error("stub"); } : undefined;
  }
  t = performance.now();
  new WebAssembly.Instance(module, imports);
  times.instantiate.push(performance.now() - t);
}
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${median(times.compile).toFixed(1)} ms compile + ${median(times.instantiate).toFixed(2)} ms instantiate`);
