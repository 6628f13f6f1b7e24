// The queued page's script (hub/spawn_pending.html): while the JupyterLab job waits, offer the
// requests that SLURM expects to start sooner; pressing one replaces the waiting job (the hub
// submits the new one before it cancels the old). queued-logic.js holds what needs no page.
/* global aifwQueued */
(() => {
  'use strict';
  const L = aifwQueued;
  const box = document.getElementById('aifw-queued-alternatives');
  const said = document.getElementById('aifw-queued-said');
  const holds = document.getElementById('aifw-queued-holds');
  const url = box.dataset.url;
  const headers = { 'X-XSRFToken': window.jhdata.xsrf_token || '', 'Content-Type': 'application/json' };
  let timer = null;

  function show(buttons) {
    box.textContent = '';
    buttons.forEach(b => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'btn btn-outline-primary me-2 mb-2 aifw-start-instead';
      button.textContent = b.text;
      button.addEventListener('click', () => replace(b.options));
      box.append(button);
    });
  }

  async function look() {
    clearTimeout(timer);
    try {
      const r = await fetch(url, { headers, credentials: 'same-origin' });
      if (r.ok) {
        const body = await r.json();
        holds.textContent = body.holds_text || ''; // the hub's words: "Waiting for memory on acc: ..."
        show(L.offers(body));
      }
    } catch {
      // the progress bar still says how the job is doing
    }
    timer = setTimeout(look, L.LOOK_AGAIN_MS);
  }

  async function replace(options) {
    clearTimeout(timer);
    box.querySelectorAll('button').forEach(b => {
      b.disabled = true;
    });
    let ok = false,
      body = {};
    try {
      const r = await fetch(url, {
        method: 'POST',
        headers,
        credentials: 'same-origin',
        body: JSON.stringify({ user_options: options })
      });
      ok = r.ok;
      body = await r.json();
    } catch {
      body = {};
    }
    said.textContent = L.outcome(ok, body);
    show([]);
    timer = setTimeout(look, L.LOOK_AGAIN_MS);
  }

  look();
})();
