// Run a smoke in MicroPython's WebAssembly port: node run.mjs MICROPYTHON_MJS LIB SMOKE_PY
// Every file under LIB (the installed .mpy files) is copied into the port's filesystem at
// /lib, which is then its only sys.path entry after the port's frozen modules (as on a
// board); exit status is the smoke's.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [mjs, lib, smoke] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(mjs).href);
const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function copyTree(from, to) {
  mp.FS.mkdir(to);
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    if (entry.isDirectory()) copyTree(source, to + "/" + entry.name);
    else mp.FS.writeFile(to + "/" + entry.name, fs.readFileSync(source));
  }
}
copyTree(lib, "/lib");

const code = fs.readFileSync(smoke, "utf8");
const wrapped = [
  "import sys",
  "sys.path[:] = ['.frozen', '/lib']",
  "_gradient_exit = 0",
  "try:",
  "    exec(" + JSON.stringify(code) + ", {'__name__': '__main__'})",
  "except SystemExit as e:",
  "    _gradient_exit = e.args[0] if e.args else 0",
].join("\n");
try {
  mp.runPython(wrapped);
} catch (error) {
  process.stderr.write(String(error && error.message ? error.message : error) + "\n");
  process.exit(1);
}
const status = mp.globals.get("_gradient_exit");
if (typeof status === "string") {
  process.stderr.write(status + "\n");
  process.exit(1);
}
process.exit(status ? Number(status) : 0);
