// Parses Terraform files with HashiCorp's HCL parser (@cdktf/hcl2json, the Go
// parser compiled to WebAssembly) and lists every reference in every
// expression, with the JSON path of the attribute it sits in.
//
// usage: node hcl_refs.js DIR...
// prints: {"DIR": {"files": {"main.tf": <hcl as JSON>}, "errors": {...},
//          "refs": [{"file": "main.tf", "ref": "var.name", "path": [...]}]}}
"use strict";
const fs = require("fs");
const path = require("path");
const { parse, getReferencesInExpression } = require("@cdktf/hcl2json");

async function collect(file, value, where, out) {
  if (typeof value === "string") {
    if (value.includes("${")) {
      for (const r of await getReferencesInExpression(file, value)) {
        out.push({ file, ref: r.value, path: where });
      }
    }
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) await collect(file, value[i], where.concat([i]), out);
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) await collect(file, v, where.concat([k]), out);
  }
}

async function main() {
  const result = {};
  for (const dir of process.argv.slice(2)) {
    const entry = { files: {}, errors: {}, refs: [] };
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".tf")).sort()) {
      const text = fs.readFileSync(path.join(dir, name), "utf8");
      try {
        entry.files[name] = await parse(name, text);
      } catch (e) {
        entry.errors[name] = String(e && e.message ? e.message : e);
        continue;
      }
      await collect(name, entry.files[name], [], entry.refs);
    }
    result[dir] = entry;
  }
  process.stdout.write(JSON.stringify(result));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
