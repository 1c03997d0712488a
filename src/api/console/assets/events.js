// Events page: the pool's event log, newest first, with the API's filters and cursor paging.

import { api } from './api.js';
import { clear, debounce, fmtTime, h, sev, table } from './dom.js';

export const EVENT_HEADERS = ['time', 'server', 'element', 'kind', 'severity', 'text'];

export function eventRows(events) {
  return events.map((e) => h('tr', { dataset: { event: `${e.server}:${e.id}` } },
    h('td', { class: 'time' }, fmtTime(e.ts)),
    h('td', {}, `server ${e.server}`),
    h('td', {}, e.element ? h('a', { href: `#/element/${encodeURIComponent(e.element)}` }, e.element) : ''),
    h('td', {}, e.kind),
    h('td', {}, sev(e.severity)),
    h('td', {}, e.text)));
}

const f = { element: '', kind: '', since: '', until: '', limit: '100' };

export function render(main) {
  const inputs = {
    element: h('input', { type: 'search', id: 'ev-element', placeholder: 'element', value: f.element }),
    kind: h('input', { type: 'search', id: 'ev-kind', placeholder: 'kind, e.g. alarm.*', value: f.kind }),
    since: h('input', { type: 'text', id: 'ev-since', placeholder: 'since: 15m, RFC 3339, ms', value: f.since }),
    until: h('input', { type: 'text', id: 'ev-until', placeholder: 'until', value: f.until }),
    limit: h('select', { id: 'ev-limit' }, ['50', '100', '500', '1000']
      .map((n) => h('option', { value: n, selected: n === f.limit }, `${n} per page`))),
  };
  // Cursors of the pages before this one; the first page has none.
  const cursors = [];
  let next = null;
  const newer = h('button', { type: 'button', id: 'ev-newer', onclick: () => { cursors.pop(); load(); } }, '← newer');
  const older = h('button', { type: 'button', id: 'ev-older', onclick: () => { cursors.push(next); load(); } }, 'older →');
  const newest = h('button', { type: 'button', onclick: () => { cursors.length = 0; load(); } }, 'newest');
  const note = h('span', { class: 'note', id: 'ev-note' });
  const body = h('div', { id: 'ev-table' }, 'loading…');
  main.append(h('h1', {}, 'Events'),
    h('div', { class: 'filters' }, Object.values(inputs), newest, newer, older, note), body);
  for (const [k, el] of Object.entries(inputs)) {
    el.addEventListener('change', () => { f[k] = el.value.trim(); cursors.length = 0; load(); });
  }

  let seq = 0;
  async function load() {
    const mine = ++seq;
    const q = new URLSearchParams({ limit: f.limit });
    for (const k of ['element', 'kind', 'since', 'until']) if (f[k]) q.set(k, f[k]);
    const before = cursors[cursors.length - 1];
    if (before) q.set('before', before);
    try {
      const a = await api(`/api/v1/events?${q}`);
      if (mine !== seq) return;
      next = a.next || null;
      older.disabled = !next;
      newer.disabled = cursors.length === 0;
      note.textContent = `page ${cursors.length + 1}, ${a.events.length} events` +
        (cursors.length === 0 ? ' · live' : '') +
        (a.partial ? ` · partial: server(s) ${a.missing.join(', ')} did not answer` : '');
      clear(body).append(table(EVENT_HEADERS, eventRows(a.events)));
    } catch (e) {
      clear(body).append(h('p', { class: 'error' }, e.message));
    }
  }
  const soon = debounce(load, 1000);
  load();
  return {
    refresh: load,
    // Only the first page moves: older pages stay where the user paged to.
    onEvent: () => { if (cursors.length === 0) soon(); },
  };
}
