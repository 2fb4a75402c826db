// The client's types come from the repository's openapi.yaml, through openapi-typescript, into
// the checked-in src/openapi.ts. This is the one place the generation command is written.
//
//   node scripts/generate-types.mjs           regenerate src/openapi.ts
//   node scripts/generate-types.mjs --check   fail (exit 1) if regenerating would change it
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const client = path.resolve(here, '..');
const spec = path.resolve(client, '../../openapi.yaml');
const checkedIn = path.join(client, 'src/openapi.ts');
const bin = path.join(path.dirname(fileURLToPath(import.meta.resolve('openapi-typescript/package.json'))), 'bin/cli.js');

function generate(output) {
  execFileSync(process.execPath, [bin, spec, '--output', output], { stdio: ['ignore', 'ignore', 'inherit'] });
}

if (process.argv.includes('--check')) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signup-verify-openapi-'));
  try {
    const fresh = path.join(dir, 'openapi.ts');
    generate(fresh);
    const now = fs.readFileSync(fresh, 'utf8');
    const kept = fs.existsSync(checkedIn) ? fs.readFileSync(checkedIn, 'utf8') : '';
    if (now !== kept) {
      const a = kept.split('\n'), b = now.split('\n');
      const line = a.findIndex((l, i) => l !== b[i]);
      console.error(`clients/js/src/openapi.ts is not what openapi.yaml generates (first difference at line ${line + 1}:\n` +
        `  checked in: ${JSON.stringify(a[line])}\n  generated:  ${JSON.stringify(b[line])}).\n` +
        'Run `npm run generate -w clients/js` and commit the result.');
      process.exit(1);
    }
    console.log('clients/js/src/openapi.ts matches openapi.yaml');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
} else {
  generate(checkedIn);
}
