// Debian's Chromium, headless, with the flags it needs as root and offline (see PEERS.md).
import { chromium } from 'playwright-core';
import fs from 'node:fs';

export const CHROMIUM = process.env.EMSPOOL_CHROMIUM || '/usr/bin/chromium';

export async function launch() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run tests/install-peers.sh`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
}

// Fails the run with a message; the caller prints it.
export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

export function artifacts() {
  const dir = process.env.EMSPOOL_ARTIFACTS || 'artifacts';
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function getJson(url, token) {
  const r = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
  return r.json();
}
