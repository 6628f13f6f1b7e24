// "Your environments", on the spawn form and the home page: the kernels a JupyterLab will offer
// (the site's and the user's own), each environment with its size and their total, fetched after
// the page is shown (GET api/aifactory/environments/USER, hub/environments.py). view() holds the
// logic without the page; show() draws it, every value as text. A classic script whose text both
// pages carry: one global, aifwEnvironments; under node (labextension/test/), a CommonJS module.
const aifwEnvironments = (() => {
  'use strict';

  const CREATE = 'aifactory-env create NAME --file requirements.txt';

  // What the block says: a problem, an empty state that helps, or one line per environment.
  function view(body) {
    const site = body.site_kernels.map(k => k.display_name || k.name).join(', ') || 'none';
    const kernels = `Site kernels: ${site}.`;
    if (!body.listed) {
      return { kernels, problem: body.problem, rows: [], total: '', empty: false, note: '' };
    }
    const rows = body.environments.map(e => ({
      name: e.name,
      size: e.size_text,
      text:
        `${e.name}: ${e.size_text}` +
        (e.scope === 'project' ? `, project ${e.project}` : '') +
        (e.kernel ? `, kernel ${e.kernel}` : ', no kernel') +
        (e.base ? ` over ${e.base}` : '')
    }));
    const more = body.more ? ` (and ${body.more} more)` : '';
    const count = body.environments.length + body.more;
    const total = count
      ? `${count} ${count === 1 ? 'environment' : 'environments'}${more}, ${body.total_text} in all.`
      : '';
    // Entries a teammate's folder holds that could not be read are counted, not shown.
    return { kernels, problem: '', rows, total, empty: count === 0, note: body.unreadable_text || '' };
  }

  // An element holding text (never markup), of this class: the home page's script makes its own with it.
  function element(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) {
      e.textContent = text;
    }
    if (cls) {
      e.className = cls;
    }
    return e;
  }

  // Fetch and draw into box; helpUrl: the help page's section on environments.
  async function show(box, url, helpUrl) {
    const el = element;
    let body;
    try {
      // Cookie-authenticated API requests carry the page's XSRF token (JupyterHub checks it).
      const headers = { 'X-XSRFToken': (window.jhdata || {}).xsrf_token || '' };
      const r = await fetch(url, { headers, credentials: 'same-origin' });
      body = await r.json();
      if (!r.ok) {
        box.textContent = body.message || 'Your environments could not be listed right now.';
        return;
      }
    } catch {
      box.textContent = 'Your environments could not be listed right now.';
      return;
    }
    const v = view(body);
    box.replaceChildren(el('p', v.kernels, 'mb-1 aifw-site-kernels'));
    if (v.problem) {
      box.append(el('p', v.problem, 'mb-0 text-warning aifw-envs-problem'));
      return;
    }
    if (v.empty) {
      const p = el('p', 'No environments of your own yet: ', 'mb-0 aifw-envs-none');
      const help = el('a', 'your own environment');
      help.href = helpUrl;
      p.append(el('code', CREATE), ' in a JupyterLab terminal (', help, ').');
      box.append(p);
    } else {
      const list = el('ul', undefined, 'mb-1 aifw-envs');
      v.rows.forEach(row => {
        const li = el('li', row.text, 'aifw-env');
        li.dataset.name = row.name;
        li.dataset.size = row.size;
        list.append(li);
      });
      box.append(list, el('p', v.total, 'mb-0 aifw-envs-total'));
    }
    if (v.note) {
      box.append(el('p', v.note, 'mb-0 text-warning aifw-envs-unreadable'));
    }
  }

  return { view, show, element, CREATE };
})();

if (typeof module === 'object') {
  module.exports = aifwEnvironments;
}
