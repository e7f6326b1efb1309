#!/usr/bin/env node
// npm writes no lock entry for an optional platform package it could not download, and then
// `npm ci` refuses the lock ("Missing: @biomejs/cli-darwin-arm64@ from lock file"). The npm
// registry reachable from our machines does not serve some of Biome's non-Linux binaries, so
// after every `npm install` run: node scripts/lockfile-platforms.mjs
// It adds, for each missing optional dependency whose name says its platform, an entry with
// that os/cpu, so npm ci accepts the lock and skips the package on other platforms.
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const packages = lock.packages;
const platform =
  /-(linux|darwin|win32|android|freebsd|openbsd|sunos|aix)-(x64|arm64|arm|ia32|ppc64|s390x|riscv64|loong64)(-(musl|gnu))?$/;
let added = 0;

for (const [path, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `${path ? `${path}/` : ""}node_modules/${name}`;
    const hoisted = `node_modules/${name}`;
    if (packages[key] || packages[hoisted]) continue;
    const match = platform.exec(name);
    if (!match) continue;
    packages[hoisted] = {
      version,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      os: [match[1]],
      cpu: [match[2]],
      ...(match[4] === "musl" ? { libc: ["musl"] } : {}),
    };
    added += 1;
  }
}

lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)),
);
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lockfile-platforms: added ${added} platform entries`);
