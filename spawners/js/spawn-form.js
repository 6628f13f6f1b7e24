// The spawn form's page: spawn-form-logic.js's rules wired to the fields of
// spawners/spawn_form.html.j2 (its data in #aifw-data). The hub checks everything again.
/* global aifwSpawnForm, aifwEnvironments */
(() => {
  'use strict';
  const L = aifwSpawnForm;
  const data = JSON.parse(document.getElementById('aifw-data').textContent);
  const $ = id => document.getElementById(id);
  const FIELDS = data.fields; // the job fields' table (slurm/job_fields.py), in its order
  // The form's Start button comes after these fields in the page: found when needed.
  const submit = () => document.querySelector('#spawn_form button[type=submit]');
  const values = () => Object.fromEntries(FIELDS.map(k => [k, $(k).value]));

  function fillSelect(select, names, wanted, blank) {
    select.textContent = '';
    if (blank) {
      select.add(new Option(blank, ''));
    }
    names.forEach(n => select.add(new Option(n, n)));
    select.value = L.selectValue(names, wanted, blank);
    select.dataset.value = select.value;
  }

  function followPartition() {
    const p = data.choices.partitions[$('partition').value];
    if (!p) {
      return undefined;
    }
    fillSelect($('account'), L.accountNames(data.choices, p), $('account').value || data.choices.default_account);
    const qos = L.qosNames(data.choices, p, $('account').value);
    const fallback = L.defaultQos(data.choices, p, $('account').value);
    fillSelect($('qos'), qos, $('qos').dataset.value, L.qosBlank(fallback));
    const limits = L.limits(data.choices, p, $('qos').value, qos, fallback);
    Object.entries(limits.text).forEach(([id, text]) => {
      $(id).textContent = text;
    });
    $('cpus').max = p.max_cpus;
    $('gpus').max = p.max_gpus;
    $('reservation-help').textContent = L.reservationText(data.choices.reservations[$('reservation').value]);
    return limits;
  }

  function localProblems(limits) {
    const invalid = {};
    FIELDS.forEach(k => {
      const el = $(k);
      if (el.pattern && !el.validity.valid) {
        invalid[k] = el.title;
      }
    });
    return L.localProblems(values(), limits, invalid);
  }

  function mark(problems) {
    FIELDS.forEach(k => {
      const el = $(k),
        err = $(k + '-error'),
        text = problems[k] || '';
      el.classList.toggle('is-invalid', !!text);
      el.setAttribute('aria-invalid', text ? 'true' : 'false');
      if (err) {
        err.textContent = text;
      }
    });
    const bad = Object.keys(problems).length > 0;
    const start = submit();
    if (start) {
      start.disabled = bad;
      start.title = bad ? 'Correct the marked fields first' : '';
    }
    $('aifw-cost').hidden = bad; // no cost for values that would be refused
    return bad;
  }

  // The cost as the hub's estimate words it ("…" while it is asked: a request per change
  // already, so the form has no cost rule of its own).
  function showCost(cost) {
    $('cost-core').textContent = cost.core;
    $('cost-gpu').textContent = cost.gpu;
  }

  // The estimate's alternatives: one button each; a click applies its options and asks again.
  // Above them, what holds the start as the hub words it (holds_text; none when it is unsure).
  function offer(body) {
    const box = $('aifw-alternatives');
    box.textContent = '';
    $('aifw-holds').textContent = body.holds_text || '';
    const shown = L.alternatives(body);
    if (!shown.buttons.length) {
      return;
    }
    const intro = document.createElement('span');
    intro.textContent = shown.intro + ' ';
    box.append(intro);
    shown.buttons.forEach(b => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'btn btn-sm btn-outline-primary me-2 aifw-alternative';
      button.textContent = b.label;
      button.title = b.title;
      button.addEventListener('click', () => {
        show(L.after({ preset: checkedPreset(), values: values() }, { options: b.options }, data), FIELDS);
        changed();
        lastShown = values();
      });
      box.append(button);
    });
  }

  let timer = null,
    asked = 0;
  async function estimate() {
    const mine = ++asked;
    try {
      const r = await fetch(data.estimate_url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-XSRFToken': (window.jhdata || {}).xsrf_token || '' },
        body: JSON.stringify({ user_options: values() })
      });
      const body = await r.json();
      if (mine !== asked) {
        return; // the fields changed meanwhile: a newer answer is coming
      }
      if (r.status === 429) {
        timer = setTimeout(estimate, 1000);
        return;
      }
      if (!r.ok) {
        offer({});
        $('aifw-usage').textContent = '';
        $('aifw-start').textContent = '';
        const refused = L.refusal(body, FIELDS);
        $('aifw-cost').hidden = true; // no cost for a request the hub refuses
        if (refused.field) {
          mark({ [refused.field]: refused.message });
        }
        $('aifw-refused').textContent = refused.text;
        return;
      }
      $('aifw-refused').textContent = '';
      showCost(L.costText(body));
      $('aifw-usage').textContent = L.usageText(body.usage);
      $('aifw-start').textContent = body.start_text;
      offer(body); // with what holds the start, in the hub's words (holds_text)
    } catch {
      showCost({ core: '?', gpu: '?' });
      $('aifw-start').textContent = 'No estimate right now.';
    }
  }

  function changed() {
    const limits = followPartition();
    $('aifw-refused').textContent = '';
    offer({});
    clearTimeout(timer);
    asked += 1; // an answer in flight is for the values before this change: not shown
    if (mark(localProblems(limits))) {
      $('aifw-start').textContent = '';
      $('aifw-usage').textContent = '';
      return;
    }
    showCost({ core: '…', gpu: '…' });
    $('aifw-start').textContent = 'Asking SLURM when it would start...';
    timer = setTimeout(estimate, 400);
  }

  // The preset radios (none without presets: then there is no Custom either).
  const checkedPreset = () => (document.querySelector('.aifw-preset:checked') || { value: '' }).value;
  // The fields' values as the form last showed them (after an edit, a preset, an alternative): an
  // edit is read against them. (A select's dataset.value is another thing: the value its user
  // wants, which fillSelect keeps when the options change.)
  let lastShown = values();
  // The preset chosen, and into the fields named in ``written`` their values.
  function show(state, written) {
    const radio = document.querySelector(`.aifw-preset[value="${CSS.escape(state.preset)}"]`);
    if (radio) {
      radio.checked = true;
    }
    written.forEach(k => {
      $(k).value = state.values[k];
      $(k).dataset.value = state.values[k];
    });
  }

  // A preset is a starting point: clicking it (again) applies it; editing a field makes the request Custom.
  document.querySelectorAll('.aifw-preset').forEach(el =>
    el.addEventListener('click', () => {
      const before = { preset: checkedPreset(), values: values() };
      const next = L.after(before, { preset: el.value }, data);
      show(next, next.values !== before.values ? FIELDS : []); // a preset this user cannot run changes nothing
      changed();
      lastShown = values();
    })
  );
  // What was typed stays as typed; a field the edit changed besides it (node features that
  // another partition's nodes lack) is written.
  const edited = id => {
    const before = { ...values(), [id]: lastShown[id] };
    const next = L.after({ preset: checkedPreset(), values: before }, { field: id, value: $(id).value }, data);
    show(
      next,
      FIELDS.filter(k => k !== id && next.values[k] !== before[k])
    );
    changed();
    lastShown = values();
  };
  FIELDS.filter(id => $(id).tagName === 'SELECT').forEach(id =>
    $(id).addEventListener('change', () => {
      $(id).dataset.value = $(id).value;
      edited(id);
    })
  );
  FIELDS.filter(id => $(id).tagName === 'INPUT').forEach(id => $(id).addEventListener('input', () => edited(id)));
  changed();
  lastShown = values(); // as the partition's account and QoS lists left them
  if (data.environments_url) {
    aifwEnvironments.show($('aifw-environments'), data.environments_url, data.help_url); // not awaited
  }
})();
