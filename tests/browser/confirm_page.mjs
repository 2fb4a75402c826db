// A person in Debian's Chromium: signs up on the demo page (which sets the signup cookie), opens
// the mailed link in the same browser (ses-local verifies and redirects to the Worker's
// /confirm), and presses the button. Usage: node confirm_page.mjs <worker> <ses-local> <email>.
// Prints one JSON line: whether the page asked, the status the button recorded, the token.
import { launch } from './launch.mjs';

const [worker, ses, email] = process.argv.slice(2);
const browser = await launch();
const result = {};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${worker}/`);
  const answer = page.waitForResponse((r) => r.url().endsWith('/signup'));
  await page.getByLabel('Email address').fill(email);
  await page.getByRole('button', { name: 'Sign up' }).click();
  result.statusToken = (await (await answer).json()).statusToken;
  await page.getByRole('status').filter({ hasText: /inbox|queue/ }).waitFor({ timeout: 20000 });
  // The mail, then its link, in this browser.
  let link;
  for (let i = 0; i < 100 && !link; i++) {
    const outbox = await (await fetch(`${ses}_outbox`, { headers: { accept: 'application/json' } })).json();
    link = outbox.messages.find((m) => m.emailAddress === email)?.verificationLink;
    if (!link) await new Promise((r) => setTimeout(r, 200));
  }
  await page.goto(link);
  result.asked = (await page.getByRole('heading').textContent()).includes("confirm it's you");
  await page.getByRole('button', { name: "Yes, it's me" }).click();
  const confirmed = page.locator('#confirmed');
  await confirmed.waitFor({ timeout: 20000 });
  result.confirmedStatus = await confirmed.getAttribute('data-status');
  result.url = page.url();
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
