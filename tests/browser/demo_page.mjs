// Drives Debian's Chromium (never a downloaded browser) through the demo page, with and without
// JavaScript. Usage: node demo_page.mjs <worker-url> <screenshot-dir>. Prints one JSON line.
import { launch } from './launch.mjs';

const [worker, shots] = process.argv.slice(2);
const browser = await launch();
const result = {};
try {
  for (const [name, javaScriptEnabled, email] of [
    ['js', true, 'browser-js@example.com'],
    ['no-js', false, 'browser-nojs@example.com'],
  ]) {
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    await page.goto(`${worker}/`);
    await page.getByLabel('Email address').fill(email);
    await page.getByRole('button', { name: 'Sign up' }).click();
    const status = page.getByRole('status');
    await status.filter({ hasText: /inbox|queue/ }).waitFor({ timeout: 20000 });
    result[name] = { email, status: (await status.textContent()).trim(), url: page.url() };
    await page.screenshot({ path: `${shots}/demo-${name}.png`, fullPage: true });
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
