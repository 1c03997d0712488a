// Drives the emspool web console in headless Chromium against a real pool started by
// tests/it/console.rs. Environment:
//   EMSPOOL_URLS        the members' URLs, by id order (comma separated)
//   EMSPOOL_PAGE_ID     the member whose URL the page opens (it gets killed mid-test)
//   EMSPOOL_TOKEN_URL   a server with [api] token set, and EMSPOOL_TOKEN its token
//   EMSPOOL_ARTIFACTS   where the screenshots go
// Protocol with the Rust side: this script prints `KILL <id>` and waits for a line on stdin
// once the server is dead. The last line is `RESULT {json}`; the exit code says pass/fail.
import readline from 'node:readline';
import { artifacts, check, getJson, launch } from './chromium.mjs';

const urls = (process.env.EMSPOOL_URLS || '').split(',').filter(Boolean);
const pageId = Number(process.env.EMSPOOL_PAGE_ID || urls.length);
const pageUrl = urls[pageId - 1];
const dir = artifacts();
const result = { steps: [] };
const t0 = Date.now();
const step = (name, extra = {}) => {
  result.steps.push({ name, at_ms: Date.now() - t0, ...extra });
  console.log(`step ${name} (+${Date.now() - t0} ms) ${JSON.stringify(extra)}`);
};

const lines = readline.createInterface({ input: process.stdin });
const incoming = [];
let waiter = null;
lines.on('line', (l) => { if (waiter) { const w = waiter; waiter = null; w(l); } else incoming.push(l); });
function nextLine(timeoutMs) {
  if (incoming.length) return Promise.resolve(incoming.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no answer from the test on stdin')), timeoutMs);
    waiter = (l) => { clearTimeout(t); resolve(l); };
  });
}

async function tokenPrompt(browser) {
  const url = process.env.EMSPOOL_TOKEN_URL;
  const good = process.env.EMSPOOL_TOKEN;
  if (!url || !good) return;
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const seen = [];
  page.on('request', (r) => seen.push(r.url()));
  await page.goto(url);
  await page.waitForSelector('#login:not([hidden])', { timeout: 10000 });
  check(await page.locator('#login-error').isHidden(), 'no error before any token was given');
  await page.screenshot({ path: `${dir}/token-prompt.png` });
  await page.fill('#token', 'not-the-token');
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#login-error:not([hidden])', { timeout: 10000 });
  const err = await page.textContent('#login-error');
  check(/wrong token/i.test(err), `error says the token is wrong: ${err}`);
  check(await page.locator('#login').isVisible(), 'asked again after a wrong token');
  await page.screenshot({ path: `${dir}/token-refused.png` });
  step('wrong token refused');
  await page.fill('#token', good);
  await page.click('#login button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#members tbody tr').length === 1, null, { timeout: 10000 });
  check(await page.locator('#login').isHidden(), 'form gone after the right token');
  const stored = await page.evaluate(() => [sessionStorage.getItem('emspool.token'), JSON.stringify(localStorage)]);
  check(stored[0] === good, 'token kept in sessionStorage');
  check(!stored[1].includes(good), 'token not in localStorage');
  check(!seen.some((u) => u.includes(good) || u.includes('not-the-token')), 'token never in a URL');
  step('right token accepted');
  await ctx.close();
}

async function main() {
  check(urls.length === 3 && pageUrl, 'EMSPOOL_URLS names 3 members');
  const browser = await launch();
  try {
    await tokenPrompt(browser);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    // Pool page: three servers and the master.
    const resp = await page.goto(pageUrl);
    const hdr = resp.headers();
    check(/frame-ancestors 'none'/.test(hdr['content-security-policy'] || ''), 'CSP forbids framing');
    check(!/unsafe-inline/.test(hdr['content-security-policy'] || ''), 'CSP has no unsafe-inline');
    check(hdr['x-frame-options'] === 'DENY', 'X-Frame-Options DENY');
    check(hdr['x-content-type-options'] === 'nosniff', 'nosniff');
    check(hdr['referrer-policy'] === 'no-referrer', 'no referrer');
    await page.evaluate(() => { window.__noReload = 'still the same page'; });
    await page.waitForFunction(() => document.querySelectorAll('#members tbody tr').length === 3
      && document.querySelector('#master')?.textContent === 'server 3'
      && document.querySelectorAll('#picture .cell').length === 9
      && document.body.dataset.live === '1', null, { timeout: 20000 });
    await page.screenshot({ path: `${dir}/pool.png`, fullPage: true });
    step('pool page shows 3 servers and master 3');

    // Elements list and one element.
    await page.evaluate(() => { location.hash = '#/elements'; });
    await page.waitForFunction(() => document.querySelectorAll('#el-table tbody tr').length === 9, null, { timeout: 10000 });
    await page.fill('#el-search', 'ne00');
    await page.waitForFunction(() => /of 9 elements/.test(document.querySelector('#el-count')?.textContent || ''));
    await page.screenshot({ path: `${dir}/elements.png`, fullPage: true });
    await page.click('#el-table tbody tr:first-child a');
    await page.waitForFunction(() => document.querySelectorAll('#main table').length >= 3
      && /GigabitEthernet/.test(document.querySelector('#main').textContent), null, { timeout: 10000 });
    await page.screenshot({ path: `${dir}/element.png`, fullPage: true });
    step('elements list and element page');

    // Alarms: a flap alarm raised by the simulator appears without reload.
    await page.evaluate(() => { location.hash = '#/alarms'; });
    await page.waitForFunction(() => document.querySelectorAll('#al-table tbody tr').length > 0, null, { timeout: 10000 });
    const before = await page.evaluate(() => [...document.querySelectorAll('#al-table tbody tr')].map((r) => r.dataset.alarm));
    const flapRow = await page.waitForFunction((old) => {
      const r = [...document.querySelectorAll('#al-table tbody tr')]
        .find((x) => /^LinkDown:.*:1$/.test(x.dataset.key) && !old.includes(x.dataset.alarm));
      return r ? { id: r.dataset.alarm, key: r.dataset.key, seen: Date.now() } : null;
    }, before, { timeout: 45000, polling: 50 });
    const flap = await flapRow.jsonValue();
    const api = await getJson(`${urls[0]}/api/v1/alarms?limit=100000`);
    const raised = api.alarms.find((a) => String(a.id) === flap.id);
    check(raised, `alarm ${flap.key} is active in the API`);
    const latency = flap.seen - raised.first_seen;
    check(await page.evaluate(() => window.__noReload) === 'still the same page', 'no reload happened');
    step('flap alarm appeared live', { key: flap.key, raised_to_visible_ms: latency });
    result.alarm_latency_ms = latency;
    check(latency <= 2000, `alarm visible within 2 s of being raised (took ${latency} ms)`);

    // Acknowledge one in the page; another member's API shows it acknowledged.
    await page.fill('#ack-by', 'console-test');
    await page.dispatchEvent('#ack-by', 'change');
    const target = await page.evaluate(() => {
      const r = [...document.querySelectorAll('#al-table tbody tr')]
        .find((x) => /^LinkDown:.*:23$/.test(x.dataset.key) && x.querySelector('.ack-button'));
      return r ? r.dataset.alarm : null;
    });
    check(target, 'an unacknowledged LinkDown on ifIndex 23 to acknowledge');
    await page.click(`#al-table tr[data-alarm="${target}"] .ack-button`);
    await page.waitForFunction((id) => /by console-test/.test(
      document.querySelector(`#al-table tr[data-alarm="${id}"] td.ack`)?.textContent || ''), target, { timeout: 10000 });
    const other = urls.find((_, i) => i + 1 !== pageId);
    const acked = (await getJson(`${other}/api/v1/alarms?limit=100000`)).alarms.find((a) => String(a.id) === target);
    check(acked && acked.acked_by === 'console-test', `alarm ${target} acknowledged by console-test through ${other}`);
    result.acked_alarm = Number(target);
    await page.screenshot({ path: `${dir}/alarms.png`, fullPage: true });
    step('acknowledged in the page, seen acknowledged through another member', { alarm: target, via: other });

    // Events: first page and one older page by cursor.
    await page.evaluate(() => { location.hash = '#/events'; });
    await page.waitForFunction(() => document.querySelectorAll('#ev-table tbody tr').length > 0, null, { timeout: 10000 });
    await page.selectOption('#ev-limit', '50');
    await page.waitForFunction(() => document.querySelectorAll('#ev-table tbody tr').length === 50, null, { timeout: 10000 });
    await page.screenshot({ path: `${dir}/events.png` });
    const firstTop = await page.evaluate(() => document.querySelector('#ev-table tbody tr').dataset.event);
    await page.click('#ev-older');
    await page.waitForFunction(() => /^page 2/.test(document.querySelector('#ev-note')?.textContent || ''), null, { timeout: 10000 });
    const secondTop = await page.evaluate(() => document.querySelector('#ev-table tbody tr')?.dataset.event);
    check(secondTop && secondTop !== firstTop, 'the older page starts elsewhere');
    step('events paged by cursor');

    // Fail-over: the page's server dies; the page moves to another member by itself.
    await page.evaluate(() => { location.hash = '#/pool'; });
    await page.waitForFunction(() => document.querySelectorAll('#members tbody tr').length === 3, null, { timeout: 10000 });
    console.log(`KILL ${pageId}`);
    const ack = await nextLine(30000);
    check(ack.startsWith('OK'), `server ${pageId} killed (${ack})`);
    const killedAt = Date.now();
    await page.waitForFunction((dead) => !document.getElementById('banner').hidden
      && document.body.dataset.server !== dead && document.body.dataset.live === '1', pageUrl, { timeout: 20000 });
    const banner = await page.textContent('#banner');
    check(new RegExp(`Server ${pageId} .*stopped answering`).test(banner), `banner says so: ${banner}`);
    const now = await page.evaluate(() => document.body.dataset.server);
    check(urls.includes(now) && now !== pageUrl, `now on another member: ${now}`);
    step('switched member', { to: now, after_ms: Date.now() - killedAt });
    await page.waitForFunction((dead) => {
      const row = document.querySelector(`#members tr[data-member="${dead}"]`);
      return row && /dead/.test(row.textContent) && document.querySelector('#master')?.textContent !== `server ${dead}`;
    }, pageId, { timeout: 20000 });
    await page.screenshot({ path: `${dir}/failover.png`, fullPage: true });
    await page.evaluate(() => { location.hash = '#/alarms'; });
    await page.waitForFunction(() => document.querySelectorAll('#al-table tbody tr').length > 0, null, { timeout: 15000 });
    // An acknowledgement now crosses origins (the page came from the dead server): CORS
    // preflight, then the POST, answered by the member the console moved to.
    const second = await page.evaluate(() => {
      const r = [...document.querySelectorAll('#al-table tbody tr')].find((x) => x.querySelector('.ack-button'));
      return r ? r.dataset.alarm : null;
    });
    check(second, 'an unacknowledged alarm after the fail-over');
    await page.click(`#al-table tr[data-alarm="${second}"] .ack-button`);
    await page.waitForFunction((id) => /by console-test/.test(
      document.querySelector(`#al-table tr[data-alarm="${id}"] td.ack`)?.textContent || ''), second, { timeout: 10000 });
    check(await page.evaluate(() => window.__noReload) === 'still the same page', 'no reload through the fail-over');
    step('page keeps working on another member', { banner });
    // Requests to the dead server fail by design; anything else logged is a defect.
    const unexpected = errors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED|Failed to fetch/.test(e));
    check(unexpected.length === 0, `no script errors: ${unexpected.join(' | ')}`);
    await ctx.close();
    result.ok = true;
  } finally {
    await browser.close();
  }
}

main().then(() => {
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}, (e) => {
  result.ok = false;
  result.error = String(e && e.stack || e);
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(1);
});
