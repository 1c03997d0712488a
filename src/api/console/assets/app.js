// The console's shell: hash routing, the alarm counts in the header, the connection banner,
// and the live stream dispatched to the page on screen.

import { api, conn, setMembers, startStream } from './api.js';
import { clear, debounce, h, SEVERITIES } from './dom.js';
import * as pool from './pool.js';
import * as elements from './elements.js';
import * as alarms from './alarms.js';
import * as events from './events.js';

const pages = {
  pool: pool.render,
  elements: elements.render,
  element: elements.renderOne,
  alarms: alarms.render,
  events: events.render,
};

const main = document.getElementById('main');
let current = null; // what the page on screen returned: {refresh, onEvent, onPool}

function route() {
  const parts = (location.hash || '#/pool').replace(/^#\/?/, '').split('/');
  const name = pages[parts[0]] ? parts[0] : 'pool';
  const arg = parts.length > 1 ? decodeURIComponent(parts.slice(1).join('/')) : null;
  for (const a of document.querySelectorAll('nav a')) {
    const on = a.dataset.page === name || (name === 'element' && a.dataset.page === 'elements');
    a.classList.toggle('active', on);
  }
  clear(main);
  document.body.dataset.page = name;
  current = pages[name](main, arg) || {};
}

// --- alarm counts, always visible ----------------------------------------------------------

async function refreshCounts() {
  const el = document.getElementById('counts');
  try {
    // `severity` is the least severe level included: per level = difference of the totals.
    const totals = await Promise.all(
      SEVERITIES.map((s) => api(`/api/v1/alarms?severity=${s}&limit=1`).then((a) => a.total || 0)),
    );
    clear(el);
    SEVERITIES.forEach((s, i) => {
      const n = totals[i] - (i ? totals[i - 1] : 0);
      el.append(h('a', { href: `#/alarms`, class: `count sev-${s}`, dataset: { severity: s }, title: s },
        `${s} ${n}`));
    });
  } catch (e) {
    clear(el).append(h('span', { class: 'error' }, `counts: ${e.message}`));
  }
}
const countsSoon = debounce(refreshCounts, 400);

// --- connection state -----------------------------------------------------------------------

function showBanner(text) {
  const b = document.getElementById('banner');
  clear(b).append(h('span', {}, text), ' ',
    h('button', { type: 'button', onclick: () => { b.hidden = true; } }, 'dismiss'));
  b.hidden = false;
}

conn.onSwitch = (deadUrl, deadId, url, id, why) => {
  document.body.dataset.server = url;
  showBanner(`Server ${deadId} (${deadUrl}) stopped answering (${why}); ` +
    `the console now uses server ${id} (${url}).`);
  document.getElementById('banner').dataset.switchedTo = String(id);
};

conn.onStreamState = (live, base) => {
  const el = document.getElementById('conn');
  el.textContent = live ? `live · server ${conn.serverId ?? '?'}` : 'reconnecting…';
  el.classList.toggle('live', live);
  document.body.dataset.live = live ? '1' : '0';
  document.body.dataset.server = base;
};

function onMessage(type, data) {
  if (type === 'hello') {
    conn.serverId = data.server;
    document.body.dataset.serverId = String(data.server);
    document.getElementById('conn').textContent = `live · server ${data.server}`;
    // Whatever changed while the stream was down: reload the page's data.
    countsSoon();
    current?.refresh?.();
  } else if (type === 'pool') {
    setMembers(data);
    current?.onPool?.(data);
  } else if (type === 'event') {
    if (typeof data.kind === 'string' && data.kind.startsWith('alarm.')) countsSoon();
    current?.onEvent?.(data);
  } else if (type === 'lagged') {
    countsSoon();
    current?.refresh?.();
  }
}

async function start() {
  document.body.dataset.server = conn.base;
  window.addEventListener('hashchange', route);
  // The page's own data first: the members (needed only for fail-over) come alongside.
  route();
  try {
    setMembers(await api('/api/v1/pool'));
  } catch (e) {
    showBanner(`Cannot reach the pool: ${e.message}`);
  }
  refreshCounts();
  startStream(onMessage);
}

start();
