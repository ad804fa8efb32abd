// Cold compile and instantiate time of the release wasm in Chromium's V8 (the
// engine workerd embeds; Node 20's V8 cannot compile the module: wasm
// exception handling, `try_table`). Debian's chromium (scripts/setup.sh
// --browser), driven by playwright-core; CHROMIUM=<path> overrides it.
//   node bench/instantiate.mjs build/index_bg.wasm [runs]
// Each run compiles bytes V8 has not seen (a custom section with a nonce is
// appended, so its module cache cannot answer) with WebAssembly.compile, then
// instantiates it with stub imports made from WebAssembly.Module.imports()
// (instantiation calls none of them), timed with performance.now(). Prints one
// JSON line: {browser, runs, compile: [ms…], instantiate: [ms…]}.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const wasm = readFileSync(process.argv[2]);
const runs = Number(process.argv[3] ?? 7);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  const times = await page.evaluate(
    async ({ base64, runs }) => {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      // A custom section (id 0) named "bench-nonce-<i>", appended.
      const withNonce = (i) => {
        const name = new TextEncoder().encode(`bench-nonce-${i}-${Math.random()}`);
        const out = new Uint8Array(bytes.length + 3 + name.length);
        out.set(bytes);
        out.set([0, name.length + 1, name.length], bytes.length);
        out.set(name, bytes.length + 3);
        return out;
      };
      const stub = (kind) => {
        switch (kind) {
          case "function":
            return () => {
              throw new Error("stub");
            };
          case "memory":
            return new WebAssembly.Memory({ initial: 1 });
          case "table":
            return new WebAssembly.Table({ initial: 0, element: "externref" });
          case "tag":
            // wasm-bindgen imports the JS exception tag.
            return WebAssembly.JSTag ?? new WebAssembly.Tag({ parameters: ["externref"] });
          case "global":
            return new WebAssembly.Global({ value: "i32", mutable: true }, 0);
          default:
            return undefined;
        }
      };
      const compile = [];
      const instantiate = [];
      for (let i = 0; i < runs; i++) {
        const input = withNonce(i);
        let t = performance.now();
        const module = await WebAssembly.compile(input);
        compile.push(performance.now() - t);
        const imports = {};
        for (const { module: m, name, kind } of WebAssembly.Module.imports(module)) {
          imports[m] ??= {};
          imports[m][name] = stub(kind);
        }
        t = performance.now();
        await WebAssembly.instantiate(module, imports);
        instantiate.push(performance.now() - t);
      }
      return { compile, instantiate };
    },
    { base64: wasm.toString("base64"), runs },
  );
  console.log(JSON.stringify({ browser: `Chromium ${browser.version()}`, runs, ...times }));
} finally {
  await browser.close();
}
