// The home page's script (hub/home.html): the usage chart, the Dask workers and notebook jobs,
// each session's kernels in jobs of their own, and a Stop that asks first. home-logic.js holds
// what needs no page. Every value is set as text.
/* global aifwHome, aifwEnvironments */
(() => {
  'use strict';
  const L = aifwHome;
  const base = window.jhdata.base_url,
    user = window.jhdata.user;
  const headers = { 'X-XSRFToken': window.jhdata.xsrf_token || '' };
  const result = document.getElementById('aifw-usage-result');
  const svg = (tag, attrs) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
    return e;
  };

  // The usage chart: one bar per account and kind, drawn here (no library, nothing fetched but the numbers).
  async function usage() {
    const days = document.getElementById('aifw-usage-days').value;
    try {
      const r = await fetch(`${base}api/aifactory/usage/${encodeURIComponent(user)}?days=${days}`, {
        headers,
        credentials: 'same-origin'
      });
      const body = await r.json();
      if (!r.ok) {
        result.textContent = body.message || 'Usage is not available right now.';
        return;
      }
      result.textContent = '';
      const table = document.createElement('table');
      table.className = 'table table-sm aifw-usage-table';
      table.createCaption().textContent = L.usageCaption(body.since);
      const head = table.createTHead().insertRow();
      ['Account', 'Core-hours', 'GPU-hours', 'Chart'].forEach(t => {
        const th = document.createElement('th');
        th.scope = 'col';
        th.textContent = t;
        head.appendChild(th);
      });
      const rows = table.createTBody();
      L.usageRows(body.accounts).forEach(a => {
        const row = rows.insertRow();
        row.dataset.account = a.account;
        const th = document.createElement('th');
        th.scope = 'row';
        th.textContent = a.account;
        row.appendChild(th);
        row.insertCell().textContent = a.core;
        row.insertCell().textContent = a.gpu;
        const chart = svg('svg', { width: 240, height: 26, role: 'img', 'aria-label': a.label });
        chart.appendChild(svg('rect', { x: 0, y: 2, height: 10, width: a.coreWidth, fill: '#0b4f8a' }));
        chart.appendChild(svg('rect', { x: 0, y: 14, height: 10, width: a.gpuWidth, fill: '#b36b00' }));
        row.insertCell().appendChild(chart);
      });
      result.appendChild(table);
      const key = document.createElement('p');
      key.className = 'small text-body-secondary';
      key.textContent = 'Blue: core-hours; amber: GPU-hours.';
      result.appendChild(key);
    } catch {
      result.textContent = 'Usage is not available right now.';
    }
  }

  // The jobs the workbench started besides JupyterLab (hub/operator.py): Dask workers with a
  // Stop, notebook jobs with links to their output.
  const jobsBox = document.getElementById('aifw-jobs');
  const el = aifwEnvironments.element; // spawners/js/environments.js, which the page carries first
  const link = (text, href) => {
    if (!href) {
      return el('code', text);
    }
    const a = el('a', text);
    a.href = href;
    return a;
  };
  // Cancel on a queued or running notebook job: asked first (a plain confirm, as the gallery's
  // Withdraw), then the hub cancels it as the user or says why not; the list is asked again.
  function cancelButton(n) {
    const b = el('button', 'Cancel', 'btn btn-sm btn-outline-danger ms-2 aifw-cancel-notebook-job');
    b.type = 'button';
    b.setAttribute('aria-label', `Cancel notebook job ${n.job_id}`);
    const said = el('span', '', 'aifw-cancel-result ms-2');
    said.setAttribute('role', 'status');
    b.addEventListener('click', async () => {
      if (!window.confirm(L.cancelQuestion(n))) {
        return;
      }
      b.disabled = true;
      b.textContent = 'Cancelling…';
      let ok = false,
        body = {};
      try {
        const r = await fetch(
          `${base}api/aifactory/jobs/${encodeURIComponent(user)}/notebooks/${encodeURIComponent(n.job_id)}/cancel`,
          { method: 'POST', headers, credentials: 'same-origin' }
        );
        ok = r.ok;
        body = await r.json().catch(() => ({}));
      } catch {
        /* said below */
      }
      said.textContent = L.cancelledText(ok, body);
      if (ok) {
        setTimeout(jobs, 1500); // the row again, as accounting has it now
      } else {
        b.disabled = false;
        b.textContent = 'Cancel';
      }
    });
    const both = document.createDocumentFragment();
    both.append(b, said);
    return both;
  }
  // A session's kernels in jobs of their own go on its card (the hub words each: hub/operator.py);
  // those whose session has no card here (it has just ended: they end within 30 s) are returned.
  const kernelItem = (k, tag, withSession) => {
    const item = el(tag, L.kernelText(k, withSession), 'aifw-kernel');
    Object.assign(item.dataset, { job: k.job_id, partition: k.partition, state: k.state });
    return item;
  };
  function showKernels(kernels) {
    const lists = new Map();
    for (const card of document.querySelectorAll('.aifw-session')) {
      const list = card.querySelector('.aifw-kernels');
      list.replaceChildren();
      lists.set(card.dataset.job, list);
    }
    const elsewhere = [];
    for (const k of kernels) {
      const list = lists.get(k.session_job);
      if (list) {
        list.append(kernelItem(k, 'li', false));
      } else {
        elsewhere.push(k);
      }
    }
    lists.forEach(list => (list.closest('.aifw-kernels-box').hidden = !list.children.length));
    return elsewhere;
  }
  let jobsAgain;
  async function jobs() {
    clearTimeout(jobsAgain);
    let body;
    try {
      const r = await fetch(`${base}api/aifactory/jobs/${encodeURIComponent(user)}`, {
        headers,
        credentials: 'same-origin'
      });
      body = await r.json();
      if (!r.ok) {
        jobsBox.textContent = body.message || 'Your jobs are not available right now.';
        return;
      }
    } catch {
      jobsBox.textContent = 'Your jobs are not available right now.';
      return;
    }
    jobsBox.replaceChildren();
    if (L.following(body)) {
      jobsAgain = setTimeout(jobs, 15000);
    }
    const elsewhere = showKernels(body.kernels);
    for (const k of elsewhere) {
      jobsBox.append(kernelItem(k, 'p', true));
    }
    if (!body.workers.length && !body.notebooks.length && !elsewhere.length) {
      const p = el('p', L.noJobsText(body.days), 'mb-0 aifw-jobs-none');
      p.append(
        link('Dask on SLURM', `${base}help#dask`),
        ' starts workers from a notebook; ',
        link('a notebook as a batch job', `${base}help#batch`),
        ' runs while you are away.'
      );
      jobsBox.append(p);
      return;
    }
    for (const g of body.workers) {
      const row = el('div', undefined, 'd-flex flex-wrap gap-2 align-items-center mb-2 aifw-workers');
      row.dataset.parent = g.parent_job;
      row.append(el('span', L.workersText(g), 'aifw-workers-text'));
      const b = el('button', 'Stop workers', 'btn btn-sm btn-outline-danger aifw-stop-workers');
      b.type = 'button';
      b.setAttribute('aria-label', `Stop the Dask workers of job ${g.parent_job}`);
      b.addEventListener('click', async () => {
        b.disabled = true;
        b.textContent = 'Stopping…';
        const r = await fetch(`${base}api/aifactory/jobs/${encodeURIComponent(user)}/workers/${g.parent_job}`, {
          method: 'DELETE',
          headers,
          credentials: 'same-origin'
        });
        if (!r.ok) {
          b.textContent = 'Not stopped: ' + ((await r.json().catch(() => ({}))).message || r.status);
          return;
        }
        setTimeout(jobs, 2000);
      });
      row.append(b);
      jobsBox.append(row);
    }
    if (body.notebooks.length) {
      const table = el('table', undefined, 'table table-sm aifw-notebook-jobs');
      table.createCaption().textContent = L.notebooksCaption(body.days);
      const head = table.createTHead().insertRow();
      ['Job', 'Notebook', 'State', 'Executed notebook', 'Log'].forEach(t => {
        const th = el('th', t);
        th.scope = 'col';
        head.append(th);
      });
      const rows = table.createTBody();
      for (const n of body.notebooks) {
        const row = rows.insertRow();
        row.dataset.job = n.job_id;
        row.insertCell().textContent = n.job_id;
        row.insertCell().append(link(n.notebook, n.notebook_url));
        // The hub words the state and names only the outputs there are (hub/operator.py).
        const state = row.insertCell();
        state.append(el('span', L.notebookState(n), 'aifw-notebook-state'));
        if (L.canCancel(n)) {
          state.append(' ', cancelButton(n));
        }
        row.insertCell().append(n.result ? link(n.result, n.result_url) : '');
        row.insertCell().append(n.log ? link(n.log, n.log_url) : '');
      }
      jobsBox.append(table);
      if (body.notebooks.some(n => n.log && !n.log_url)) {
        jobsBox.append(el('p', 'Start your JupyterLab to open them.', 'small text-body-secondary'));
      }
    }
  }
  jobs();
  document.getElementById('aifw-usage-days').addEventListener('change', usage);
  usage();
  aifwEnvironments.show(
    document.getElementById('aifw-environments'),
    `${base}api/aifactory/environments/${encodeURIComponent(user)}`,
    `${base}help#environments`
  );

  // "Stop My Server" asks first; "Stop the job" stops it, then waits until the job is gone and
  // shows what happened to it (the hub's page says "job N cancelled after ...; ... core-hours").
  const stockStop = document.getElementById('stop'),
    stop = document.getElementById('aifw-stop');
  const dialog = document.getElementById('aifw-stop-dialog');
  if (stockStop && stop) {
    stockStop.replaceWith(stop);
    stop.hidden = false;
    stop.addEventListener('click', () => dialog.showModal());
    dialog.addEventListener('close', async () => {
      if (dialog.returnValue !== 'stop') {
        stop.focus();
        return;
      }
      stop.disabled = true;
      stop.textContent = 'Stopping…';
      result.setAttribute('aria-busy', 'true');
      const url = `${base}api/users/${encodeURIComponent(user)}/server`;
      try {
        await fetch(url, { method: 'DELETE', headers, credentials: 'same-origin' });
      } catch {
        /* polled below */
      }
      const started = Date.now();
      const check = async () => {
        try {
          const r = await fetch(`${base}api/users/${encodeURIComponent(user)}`, {
            headers,
            credentials: 'same-origin'
          });
          if (L.serverStopped(await r.json())) {
            window.location.reload();
            return;
          }
        } catch {
          /* ask again */
        }
        if (Date.now() - started < 60000) {
          setTimeout(check, 1000);
        } else {
          window.location.reload();
        }
      };
      setTimeout(check, 1000);
    });
  }

  // Extend on a session card: the hub's extend API; the card's time left follows the answer.
  for (const button of document.querySelectorAll('.aifw-extend')) {
    const card = button.closest('.aifw-session');
    const said = card.querySelector('.aifw-extend-result');
    button.addEventListener('click', async () => {
      button.disabled = true;
      const server = encodeURIComponent(card.dataset.server || '');
      let ok = false,
        body = {};
      try {
        const r = await fetch(`${base}api/aifactory/extend/${encodeURIComponent(user)}/${server}`, {
          method: 'POST',
          headers: { ...headers, 'Content-Type': 'application/json' },
          credentials: 'same-origin',
          body: JSON.stringify({ minutes: Number(button.dataset.minutes) })
        });
        ok = r.ok;
        body = await r.json().catch(() => ({}));
      } catch {
        /* said below */
      }
      said.textContent = L.extendedText(ok, body);
      const left = card.querySelector('.aifw-time-left');
      if (ok && left) {
        left.dataset.seconds = String(body.seconds_left);
        left.textContent = body.time_left_text; // the hub's words (hub/extend.py)
      }
      button.disabled = false;
    });
  }
})();
