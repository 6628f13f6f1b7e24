// The share page's script (hub/share.html): share with a colleague, revoke, make and copy a share
// link, through JupyterHub's share API. Its data (the API's address, the user, the XSRF token)
// is the page's #aifw-share-data.
(() => {
  'use strict';
  const data = JSON.parse(document.getElementById('aifw-share-data').textContent);
  const api = data.api,
    me = encodeURIComponent(data.user);
  const call = (method, path, body) =>
    fetch(api + path, {
      method,
      headers: { 'X-XSRFToken': data.xsrf, 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined
    });
  for (const section of document.querySelectorAll('[data-server]')) {
    const server = encodeURIComponent(section.dataset.server),
      error = section.querySelector('.aifw-share-error');
    const done = async r => {
      if (r.ok) {
        return location.reload();
      }
      const j = await r.json().catch(() => ({}));
      error.textContent = j.message || 'refused: ' + r.status;
    };
    section.querySelector('.aifw-invite').addEventListener('submit', async e => {
      e.preventDefault();
      const name = e.target.user.value.trim();
      // A colleague who never signed in is added first, if this hub's sign-in would let them in.
      const known = await call('POST', `/aifactory/colleagues/${encodeURIComponent(name)}`);
      if (!known.ok) {
        return done(known);
      }
      done(await call('POST', `/shares/${me}/${server}`, { user: name }));
    });
    for (const b of section.querySelectorAll('.aifw-revoke')) {
      b.addEventListener('click', async () =>
        done(await call('PATCH', `/shares/${me}/${server}`, { user: b.dataset.user }))
      );
    }
    for (const b of section.querySelectorAll('.aifw-revoke-code')) {
      b.addEventListener('click', async () =>
        done(await call('DELETE', `/share-codes/${me}/${server}?id=${encodeURIComponent(b.dataset.code)}`))
      );
    }
    section.querySelector('.aifw-code').addEventListener('click', async () => {
      const r = await call('POST', `/share-codes/${me}/${server}`, { expires_in: 86400 });
      if (!r.ok) {
        return done(r);
      }
      const made = await r.json(),
        box = section.querySelector('.aifw-code-made');
      const field = section.querySelector('.aifw-code-url');
      field.value = new URL(made.accept_url, location.origin).href;
      section.querySelector('.aifw-code-expires').textContent =
        `Expires ${new Date(made.expires_at).toLocaleString()}. Revoke it below until it is used.`;
      box.hidden = false;
      field.focus();
      field.select();
    });
    section.querySelector('.aifw-copy').addEventListener('click', async e => {
      const field = section.querySelector('.aifw-code-url');
      try {
        await navigator.clipboard.writeText(field.value);
        e.target.textContent = 'Copied';
      } catch {
        field.select();
        e.target.textContent = 'Press Ctrl+C';
      }
    });
  }
})();
