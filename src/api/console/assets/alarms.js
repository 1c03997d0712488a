// Alarms page: the pool's active alarms, most severe and newest first, with filters and
// acknowledgement (who acknowledges is asked once and kept for the session).

import { api, post } from './api.js';
import { ago, clear, debounce, fmtTime, h, sev, SEVERITIES, table } from './dom.js';

const WHO_KEY = 'emspool.ackBy';
const LIMIT = 500;
const f = { severity: '', acknowledged: '', element: '' };

export const ALARM_HEADERS = ['severity', 'element', 'kind', 'instance', 'text', 'first seen', 'last seen', 'count', 'server', 'acknowledged'];

function who() {
  return sessionStorage.getItem(WHO_KEY) || 'console';
}

// Table rows for alarms; `after` runs once an acknowledgement went through.
export function alarmRows(alarms, after) {
  return alarms.map((a) => h('tr', { dataset: { alarm: a.id, key: a.key }, class: a.acked_at ? 'acked' : '' },
    h('td', {}, sev(a.severity)),
    h('td', {}, h('a', { href: `#/element/${encodeURIComponent(a.element)}` }, a.element)),
    h('td', {}, a.kind),
    h('td', {}, a.instance || ''),
    h('td', {}, a.text),
    h('td', { title: fmtTime(a.first_seen) }, ago(a.first_seen)),
    h('td', { title: fmtTime(a.last_seen) }, ago(a.last_seen)),
    h('td', { class: 'num' }, String(a.count)),
    h('td', {}, `server ${a.server}`),
    h('td', { class: 'ack' }, a.acked_at
      ? `by ${a.acked_by || '?'} ${ago(a.acked_at)}`
      : h('button', {
        type: 'button',
        class: 'ack-button',
        onclick: async (ev) => {
          const b = ev.currentTarget;
          b.disabled = true;
          try {
            await post(`/api/v1/alarms/${encodeURIComponent(a.id)}/ack`, { by: who() });
            after();
          } catch (e) {
            b.disabled = false;
            b.replaceWith(h('span', { class: 'error' }, `ack failed: ${e.message}`));
          }
        },
      }, 'acknowledge'))));
}

export function render(main) {
  const severity = h('select', { id: 'al-severity' },
    h('option', { value: '' }, 'any severity'),
    SEVERITIES.map((s) => h('option', { value: s, selected: s === f.severity }, `${s} and worse`)));
  const acked = h('select', { id: 'al-acked' },
    [['', 'acknowledged or not'], ['false', 'not acknowledged'], ['true', 'acknowledged']]
      .map(([v, t]) => h('option', { value: v, selected: v === f.acknowledged }, t)));
  const element = h('input', { type: 'search', id: 'al-element', placeholder: 'element (exact name)', value: f.element });
  const whoInput = h('input', { type: 'text', id: 'ack-by', value: who(), maxlength: '128', title: 'acknowledge as' });
  const note = h('span', { class: 'note', id: 'al-count' });
  const body = h('div', { id: 'al-table' }, 'loading…');
  main.append(h('h1', {}, 'Alarms'),
    h('div', { class: 'filters' }, severity, acked, element,
      h('label', {}, 'acknowledge as ', whoInput), note),
    body);
  severity.addEventListener('change', () => { f.severity = severity.value; load(); });
  acked.addEventListener('change', () => { f.acknowledged = acked.value; load(); });
  element.addEventListener('change', () => { f.element = element.value.trim(); load(); });
  whoInput.addEventListener('change', () => {
    const v = whoInput.value.trim();
    if (v) sessionStorage.setItem(WHO_KEY, v);
  });

  let seq = 0;
  async function load() {
    const mine = ++seq;
    const q = new URLSearchParams({ limit: String(LIMIT) });
    if (f.severity) q.set('severity', f.severity);
    if (f.acknowledged) q.set('acknowledged', f.acknowledged);
    if (f.element) q.set('element', f.element);
    try {
      const a = await api(`/api/v1/alarms?${q}`);
      if (mine !== seq) return; // a newer load is on its way
      note.textContent = `${a.alarms.length} of ${a.total} shown` +
        (a.partial ? ` · partial: server(s) ${a.missing.join(', ')} did not answer` : '');
      clear(body).append(a.alarms.length ? table(ALARM_HEADERS, alarmRows(a.alarms, load)) : h('p', {}, 'no active alarms'));
    } catch (e) {
      clear(body).append(h('p', { class: 'error' }, e.message));
    }
  }
  const soon = debounce(load, 250);
  load();
  return {
    refresh: load,
    onEvent: (e) => { if (e.kind.startsWith('alarm.')) soon(); },
  };
}
