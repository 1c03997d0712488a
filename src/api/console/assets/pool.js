// Pool page: the members, and the picture of the claims (each server with the elements it
// manages, coloured by state), from live memory or from the database.

import { api } from './api.js';
import { clear, debounce, h, table } from './dom.js';

let source = 'live'; // kept across visits

export function render(main) {
  const members = h('div', { id: 'members' }, 'loading…');
  const picture = h('div', { id: 'picture' });
  const note = h('span', { class: 'note' });
  const toggle = ['live', 'db'].map((s) => h('button', {
    type: 'button',
    class: s === source ? 'on' : '',
    dataset: { source: s },
    onclick: () => {
      source = s;
      for (const b of toggle) b.classList.toggle('on', b.dataset.source === s);
      loadView();
    },
  }, s === 'live' ? 'Live (memory)' : 'Database'));

  main.append(
    h('h1', {}, 'Pool'),
    members,
    h('h2', {}, 'Elements by server ', h('span', { class: 'toggle' }, toggle), ' ', note),
    h('p', { class: 'legend' },
      h('span', { class: 'cell state-up' }), ' up ',
      h('span', { class: 'cell state-down' }), ' down ',
      h('span', { class: 'cell state-unknown' }), ' unknown ',
      h('span', { class: 'cell state-up alarmed' }), ' with active alarms'),
    picture,
  );
  picture.addEventListener('click', (ev) => {
    const name = ev.target?.dataset?.name;
    if (name) location.hash = `#/element/${encodeURIComponent(name)}`;
  });

  // The CLI's form of a term: EPOCH.OWNER (claim round, server that won it).
  function termText(t) {
    return `${Math.floor(t / 4294967296)}.${t % 4294967296}`;
  }

  function drawMembers(p) {
    const total = p.members.reduce((n, m) => n + (m.elements || 0), 0);
    const rows = p.members.map((m) => {
      const share = total ? Math.round((100 * m.elements) / total) : 0;
      return h('tr', { class: m.alive ? '' : 'dead', dataset: { member: m.id } },
        h('td', {}, `server ${m.id}`),
        h('td', {}, m.url),
        h('td', { class: m.alive ? 'ok' : 'bad' }, m.alive ? 'alive' : 'dead'),
        h('td', {}, m.master ? h('strong', { class: 'master' }, 'master') : ''),
        h('td', { class: 'num' }, termText(p.term)),
        h('td', { class: 'num' }, String(m.elements)),
        h('td', {}, h('span', { class: 'bar' }, h('span', { style: { width: `${share}%` } })), ` ${share}%`));
    });
    const master = p.members.find((m) => m.master);
    clear(members).append(
      h('p', {}, `${p.members.length} servers; master: `,
        h('strong', { id: 'master' }, master ? `server ${master.id}` : 'none'),
        `; term ${termText(p.term)}; quorum ${p.quorum ? 'yes' : 'no'}; answered by server ${p.server}`),
      table(['server', 'url', 'alive', 'role', 'term', 'elements', 'load'], rows),
    );
  }

  async function loadMembers() {
    try {
      drawMembers(await api('/api/v1/pool'));
    } catch (e) {
      clear(members).append(h('p', { class: 'error' }, e.message));
    }
  }

  async function loadView() {
    try {
      const v = await api(source === 'db' ? '/api/v1/view?source=db' : '/api/v1/view');
      note.textContent = v.partial ? `partial: server(s) ${v.missing.join(', ')} did not answer` : '';
      const boxes = v.servers.map((s) => box(`server ${s.id}`, s, s.elements));
      if (v.unassigned.length) boxes.push(box('unassigned', null, v.unassigned));
      clear(picture).append(...boxes);
    } catch (e) {
      clear(picture).append(h('p', { class: 'error' }, e.message));
    }
  }

  function box(title, s, els) {
    const cells = els.map((e) => h('span', {
      class: `cell state-${e.state}${e.alarms ? ' alarmed' : ''}`,
      title: `${e.name}: ${e.state}, ${e.alarms} active alarm(s)`,
      dataset: { name: e.name },
    }));
    const down = els.filter((e) => e.state === 'down').length;
    return h('section', { class: `server${s && !s.alive ? ' dead' : ''}`, dataset: { server: s ? s.id : 'none' } },
      h('h3', {}, title, s?.master ? ' (master)' : '', s && !s.alive ? ' — dead' : '',
        h('span', { class: 'note' }, ` ${els.length} elements, ${down} down`)),
      h('div', { class: 'cells' }, cells));
  }

  const viewSoon = debounce(loadView, 1000);
  loadMembers();
  loadView();
  return {
    refresh: () => { loadMembers(); loadView(); },
    onPool: (p) => { drawMembers(p); viewSoon(); },
    onEvent: (e) => {
      if (e.kind === 'element.state' || e.kind.startsWith('alarm.')) viewSoon();
    },
  };
}
