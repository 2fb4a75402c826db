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
  // A typo of a popular domain: the refusal offers the fix; with JavaScript, one click signs up.
  {
    const context = await browser.newContext({ javaScriptEnabled: true });
    const page = await context.newPage();
    await page.goto(`${worker}/`);
    await page.getByLabel('Email address').fill('browser-typo@hotnail.com');
    await page.getByRole('button', { name: 'Sign up' }).click();
    const status = page.getByRole('status');
    await status.filter({ hasText: 'Did you mean' }).waitFor({ timeout: 20000 });
    const offered = (await status.textContent()).trim();
    await page.getByRole('button', { name: 'Use browser-typo@hotmail.com' }).click();
    await status.filter({ hasText: /inbox|queue/ }).waitFor({ timeout: 20000 });
    result['typo-js'] = {
      offered,
      status: (await status.textContent()).trim(),
      field: await page.getByLabel('Email address').inputValue(),
    };
    await page.screenshot({ path: `${shots}/demo-typo-js.png`, fullPage: true });
    await context.close();
  }
  {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${worker}/`);
    await page.getByLabel('Email address').fill('browser-typo@hotnail.com');
    await page.getByRole('button', { name: 'Sign up' }).click();
    const status = page.getByRole('status');
    await status.filter({ hasText: 'Did you mean' }).waitFor({ timeout: 20000 });
    result['typo-no-js'] = { status: (await status.textContent()).trim(), url: page.url() };
    await page.screenshot({ path: `${shots}/demo-typo-no-js.png`, fullPage: true });
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
