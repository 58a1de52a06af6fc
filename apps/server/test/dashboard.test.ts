// The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core): it asks
// for the API token, shows the database as in sync, and charts lag samples.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, startWriter, stopWithin, tempDir, write } from './helpers.js';

/** Chromium to drive: $CHROMIUM_PATH, else Debian's package (`./dev` installs it). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../test-output/dashboard.png', import.meta.url));

let dir: string;
let cleanup: () => void;
let browser: Browser | undefined;
beforeAll(async () => {
  ({ dir, cleanup } = tempDir('lstream-server-dashboard-'));
  // Root (as in CI) cannot use Chromium's sandbox.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
  cleanup();
});

describe('lstream-server dashboard', () => {
  it('asks for the token, then shows the database in sync with a lag chart and its snapshots', async () => {
    const token = 'dash-tok-0b8f5e2a91c7';
    const db = join(dir, 'shop.db');
    const configPath = join(dir, 'dash.yml');
    writeFileSync(
      configPath,
      `addr: "127.0.0.1:0"
server:
  token: ${token}
dbs:
  - name: shop
    path: ${db}
    replicas:
      - url: file://${join(dir, 'shop-replica')}
        snapshot-interval: 3s
`,
    );
    write(db, ['--rows', '20']);
    const server = await startServer(['-config', configPath]);
    const writer = startWriter(db, ['--batch', '2', '--interval-ms', '100']);
    try {
      const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${server.url}/`);
      await page.waitForSelector('#login', { state: 'visible' });
      await page.fill('#token', token);
      await page.click('#login button[type=submit]');

      const row = page.locator('tr[data-db="shop"][data-replica="file"]');
      await row.locator('.state', { hasText: 'in sync' }).waitFor({ timeout: 60_000 });
      expect(await row.getAttribute('data-state')).toBe('in-sync');
      // Locators only: the page's CSP forbids eval, which string predicates would need.
      const line = page.locator('polyline[data-series="shop/file"]');
      for (let n = 0; n < 3; ) {
        n = Number(await line.getAttribute('data-points', { timeout: 60_000 }));
        if (n < 3) await page.waitForTimeout(500);
      }
      const points = (await page.locator('polyline[data-series="shop/file"]').getAttribute('points'))!.trim().split(/\s+/);
      expect(points.length).toBeGreaterThanOrEqual(3);
      await page.locator('#timeline circle[data-snapshot]').nth(1).waitFor({ timeout: 60_000 });
      expect(await page.locator('#errors').textContent()).toContain('none');
      const stored = await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('lstream-server-token'));
      expect(stored).toBe(token);

      mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      await page.close();
    } finally {
      await writer.stop('SIGTERM');
      expect(await stopWithin(server.proc, 10_000)).toBe(0);
    }
  });
});
