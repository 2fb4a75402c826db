// Debian's Chromium (never a downloaded browser), as every browser test launches it:
// CHROMIUM_PATH, else the first `chromium` or `chromium-browser` on PATH.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      const candidate = path.join(dir, name);
      if (fs.existsSync(candidate)) return candidate;
    }
  }
  throw new Error('no Chromium: set CHROMIUM_PATH or put chromium on PATH (make test installs Debian\'s)');
}

export function launch() {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
