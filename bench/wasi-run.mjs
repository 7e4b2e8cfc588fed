// Runs a wasm32-wasip1 command module under node (a development aid for timing the engine
// as wasm, e.g. engine/examples/mix.rs): node bench/wasi-run.mjs FILE.wasm [ARGS...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: process.env, preopens: {} });
const mod = await WebAssembly.compile(await readFile(file));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
wasi.start(inst);
