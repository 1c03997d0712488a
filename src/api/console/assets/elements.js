// Elements page: the pool's inventory, searchable and filterable, drawn a page of rows at a
// time so that 10,000 elements stay fast; and one element's page.

import { api } from './api.js';
import { ago, clear, debounce, fmtTime, h, stateBadge, table } from './dom.js';
import { alarmRows, ALARM_HEADERS } from './alarms.js';
import { eventRows, EVENT_HEADERS } from './events.js';

const PAGE = 100;
// Kept across visits, so that coming back from an element finds the list as it was.
const f = { q: '', state: '', owner: '', protocol: '', page: 0 };

export function render(main) {
  let all = [];
  let shown = [];
  const search = h('input', { type: 'search', id: 'el-search', placeholder: 'name, address or sysName', value: f.q });
  const state = select('el-state', ['', 'up', 'down', 'unknown'], f.state, 'any state');
  const owner = select('el-owner', [''], f.owner, 'any owner');
  const protocol = select('el-protocol', ['', 'snmp', 'netconf'], f.protocol, 'any protocol');
  const count = h('span', { id: 'el-count', class: 'note' });
  const prev = h('button', { type: 'button', onclick: () => { f.page--; draw(); } }, '← previous');
  const next = h('button', { type: 'button', onclick: () => { f.page++; draw(); } }, 'next →');
  const body = h('div', { id: 'el-table' }, 'loading…');
  main.append(h('h1', {}, 'Elements'),
    h('div', { class: 'filters' }, search, state, owner, protocol, prev, next, count), body);

  search.addEventListener('input', () => { f.q = search.value; f.page = 0; filter(); });
  for (const [el, key] of [[state, 'state'], [owner, 'owner'], [protocol, 'protocol']]) {
    el.addEventListener('change', () => { f[key] = el.value; f.page = 0; filter(); });
  }

  function filter() {
    const q = f.q.trim().toLowerCase();
    shown = all.filter((e) => (!f.state || e.state === f.state)
      && (!f.owner || String(e.owner ?? '') === f.owner)
      && (!f.protocol || e.protocol === f.protocol)
      && (!q || e.name.toLowerCase().includes(q) || e.address.toLowerCase().includes(q)
        || (e.sys_name || '').toLowerCase().includes(q)));
    draw();
  }

  function draw() {
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    f.page = Math.min(Math.max(0, f.page), pages - 1);
    prev.disabled = f.page === 0;
    next.disabled = f.page >= pages - 1;
    const slice = shown.slice(f.page * PAGE, (f.page + 1) * PAGE);
    count.textContent = `${shown.length} of ${all.length} elements · page ${f.page + 1} of ${pages}`;
    const rows = slice.map((e) => h('tr', { dataset: { element: e.name } },
      h('td', {}, h('a', { href: `#/element/${encodeURIComponent(e.name)}` }, e.name)),
      h('td', {}, e.address),
      h('td', {}, e.protocol),
      h('td', {}, e.owner === undefined ? '—' : `server ${e.owner}`),
      h('td', {}, stateBadge(e.state)),
      h('td', { class: 'num' }, String(e.alarms)),
      h('td', { title: fmtTime(e.last_poll) }, ago(e.last_poll)),
      h('td', { class: 'reason' }, e.reason || '')));
    clear(body).append(table(['name', 'address', 'protocol', 'owner', 'state', 'alarms', 'last poll', 'reason'], rows));
  }

  async function load() {
    try {
      const a = await api('/api/v1/console/elements');
      all = a.elements;
      const owners = [...new Set(all.map((e) => e.owner).filter((o) => o !== undefined))].sort((x, y) => x - y);
      fill(owner, [''].concat(owners.map(String)), f.owner, 'any owner', (o) => `server ${o}`);
      filter();
      if (a.partial) count.append(` · partial: server(s) ${a.missing.join(', ')} did not answer`);
    } catch (e) {
      clear(body).append(h('p', { class: 'error' }, e.message));
    }
  }

  const soon = debounce(load, 3000);
  load();
  return {
    refresh: load,
    onEvent: (e) => { if (e.kind === 'element.state' || e.kind.startsWith('alarm.')) soon(); },
    onPool: soon,
  };
}

function select(id, values, current, anyLabel) {
  const el = h('select', { id });
  fill(el, values, current, anyLabel, (v) => v);
  return el;
}

function fill(el, values, current, anyLabel, label) {
  clear(el).append(...values.map((v) => h('option', { value: v, selected: v === current }, v ? label(v) : anyLabel)));
}

const STATUS = { 1: 'up', 2: 'down', 3: 'testing', 4: 'unknown', 5: 'dormant', 6: 'notPresent', 7: 'lowerLayerDown' };

export function renderOne(main, name) {
  const head = h('div', {}, 'loading…');
  const ifs = h('div');
  const al = h('div');
  const ev = h('div');
  main.append(h('p', {}, h('a', { href: '#/elements' }, '← all elements')),
    h('h1', {}, name || ''), head,
    h('h2', {}, 'Active alarms'), al,
    h('h2', {}, 'Interfaces'), ifs,
    h('h2', {}, 'Recent events'), ev);
  const enc = encodeURIComponent(name || '');

  async function load() {
    try {
      const [v, a, e] = await Promise.all([
        api(`/api/v1/elements/${enc}`),
        api(`/api/v1/alarms?element=${enc}`),
        api(`/api/v1/events?element=${enc}&limit=50`),
      ]);
      const s = v.status || {};
      const kv = [
        ['address', v.address], ['protocol', v.protocol], ['credential profile', v.credential],
        ['owner', v.owner === undefined ? 'none' : `server ${v.owner}`],
        ['state', stateBadge(s.state)], ['reason', s.reason || ''],
        ['last poll', s.last_poll ? `${fmtTime(s.last_poll)} (${ago(s.last_poll)})` : 'never'],
        ['poll took', s.last_duration_ms === undefined ? '' : `${s.last_duration_ms} ms`],
        ['poll interval', v.interval || 'pool default'],
        ['pinned to', v.pin === undefined ? '' : `server ${v.pin}`],
        ['sysName', s.sys_name || ''], ['sysDescr', s.sys_descr || ''],
        ['uptime', s.sys_uptime === undefined ? '' : `${Math.floor(s.sys_uptime / 100)} s`],
      ];
      clear(head).append(h('dl', { class: 'kv', id: 'element-info' },
        kv.map(([k, val]) => [h('dt', {}, k), h('dd', {}, val ?? '')])));
      const irows = (s.interfaces || []).map((i) => h('tr', {},
        h('td', { class: 'num' }, String(i.index)), h('td', {}, i.descr), h('td', {}, i.name || ''),
        h('td', {}, STATUS[i.admin_status] || String(i.admin_status)),
        h('td', { class: i.oper_status === 1 ? 'ok' : (i.admin_status === 1 ? 'bad' : '') },
          STATUS[i.oper_status] || String(i.oper_status)),
        h('td', { class: 'num' }, i.in_octets ?? ''), h('td', { class: 'num' }, i.out_octets ?? '')));
      clear(ifs).append(table(['ifIndex', 'descr', 'name', 'admin', 'oper', 'in octets', 'out octets'], irows));
      clear(al).append(a.alarms.length ? table(ALARM_HEADERS, alarmRows(a.alarms, load)) : h('p', {}, 'none'));
      clear(ev).append(table(EVENT_HEADERS, eventRows(e.events)));
    } catch (err) {
      clear(head).append(h('p', { class: 'error' }, err.message));
    }
  }
  const soon = debounce(load, 1000);
  load();
  return { refresh: load, onEvent: (e) => { if (e.element === name) soon(); } };
}
