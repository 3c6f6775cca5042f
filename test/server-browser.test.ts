/**
 * The web UI in a real browser: Debian's Chromium (headless, never downloaded) driven by
 * playwright-core. Upload a reference image, run `vary` on the tiny model, watch the progress bar,
 * find the result in the gallery, reload and still find it; "use these settings again" refills the
 * form; compare two results; a phone-sized layout. Screenshots go to test-output/.
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { serve, DEFAULT_SERVE, DEFAULT_WEB_ROOT, type Running } from '../src/server/serve.js';
import { REFERENCE_PNG, ROOT, modelsFolder, tmpDir } from './server-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const OUT = path.join(ROOT, 'test-output');
const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium): the web UI is untested`;

let srv: Running, browser: Browser;
before(async () => {
  if (skip) return;
  assert.ok(fs.existsSync(path.join(DEFAULT_WEB_ROOT, 'index.html')), `the web UI is not built in ${DEFAULT_WEB_ROOT}: run npm run build`);
  srv = await serve({ ...DEFAULT_SERVE, models: modelsFolder(), data: tmpDir('ui-data'), port: 0, rateLimit: 100_000 });
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  fs.mkdirSync(OUT, { recursive: true });
});
after(async () => { await browser?.close(); await srv?.close(); });

test('web UI: upload, vary with progress, gallery, reload, use settings again, compare, phone layout', { skip, timeout: 180_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(srv.url);
  await page.waitForSelector('#kinds button[data-kind="vary"][aria-selected="true"]');
  // The form comes from the schemas: the CLI's defaults and help texts.
  assert.equal(await page.inputValue('#job-form [name=lambdaP]'), '1');
  assert.match(await page.getAttribute('[data-field=lambdaP]', 'title') ?? '', /InDetail-IP: weight of the image-prompt attention/);
  await page.selectOption('#job-form [name=method]', 'kv-replace');
  assert.equal(await page.isHidden('[data-field=lambdaP]'), true, 'InDetail-IP parameters hidden for kv-replace');
  assert.equal(await page.isVisible('[data-field=startStep]'), true);
  await page.selectOption('#job-form [name=method]', 'indetail-ip');

  await page.setInputFiles('#job-form input[data-image=image]', REFERENCE_PNG);
  await page.waitForFunction(`/64x64/.test(document.querySelector('[data-field=image] .drop span')?.textContent ?? '')`);
  await page.fill('#job-form [name=prompt]', 'a photograph of a cat');
  await page.fill('#job-form [name=steps]', '40');
  await page.click('#more summary');
  await page.fill('#job-form [name=width]', '32');
  await page.fill('#job-form [name=height]', '32');
  await page.fill('#job-form [name=seed]', '82');
  await page.click('#run');
  // Progress: the bar moves during denoising.
  // (page functions are strings: this package's TypeScript has no DOM types)
  await page.waitForFunction(`(() => { const bar = document.querySelector('#progress-bar'); return bar.dataset.stage === 'denoise' && bar.value > 0 && bar.value < 1; })()`, undefined, { timeout: 60_000 });
  assert.match(await page.textContent('#progress-text') ?? '', /denoise \d+\/40/);
  await page.screenshot({ path: path.join(OUT, 'server-ui-progress.png') });
  const done = page.locator('.card[data-status=succeeded]').first();
  await done.waitFor({ timeout: 120_000 });
  await page.waitForFunction(`(() => { const img = document.querySelector('.card[data-status=succeeded] .pics img'); return !!img && img.complete && img.naturalWidth === 32; })()`);
  assert.match(await done.textContent() ?? '', /vary.*a photograph of a cat.*seed 82/s);
  await page.screenshot({ path: path.join(OUT, 'server-ui.png'), fullPage: true });

  await page.reload();
  await page.locator('.card[data-status=succeeded] .pics img').first().waitFor();
  assert.equal(await page.locator('.card[data-status=succeeded]').count(), 1, 'the result is still in the gallery after a reload');

  // Use these settings again: the form refilled, the same job again gives the same image.
  await page.click('.card[data-status=succeeded] button.again');
  assert.equal(await page.inputValue('#job-form [name=seed]'), '82');
  assert.equal(await page.inputValue('#job-form [name=steps]'), '40');
  await page.fill('#job-form [name=steps]', '4');
  await page.click('#run');
  await page.waitForFunction(`document.querySelectorAll('.card[data-status=succeeded]').length === 2`, undefined, { timeout: 60_000 });

  // Compare the two side by side: the differing parameter is highlighted.
  for (const c of await page.locator('.card input.cmp').all()) await c.check();
  await page.waitForSelector('#compare:not([hidden]) .side img');
  assert.match(await page.textContent('#compare tr.diff') ?? '', /steps/);
  await page.screenshot({ path: path.join(OUT, 'server-ui-compare.png'), fullPage: true });

  // Phone-sized screen: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate<number>(`document.documentElement.scrollWidth - window.innerWidth`);
  assert.ok(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
  await page.screenshot({ path: path.join(OUT, 'server-ui-phone.png'), fullPage: true });
  assert.deepEqual(errors, [], 'no errors in the page');
});
