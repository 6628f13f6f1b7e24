// The spawn form's logic without the page (spawners/spawn_form.html.j2): what the limits say for
// the chosen partition, account and QoS, what the browser can tell is wrong at once, the cost
// and usage as the hub words them, what a preset sets, and what a refusal from the hub marks.
// spawn-form.js wires it to the page; the hub checks everything again, so all of this only helps.
// A classic script whose text the form carries (render_form): one global, aifwSpawnForm; under
// node (the unit tests, labextension/test/), a CommonJS module.
const aifwSpawnForm = (() => {
  'use strict';

  // No rule of the hub's is written again here (issue 37): durations come worded in the data
  // (choices.walltime_text, slurm/display.py), the cost and usage in the estimate's answer, and
  // what a field's text must look like in its pattern attribute (slurm/job_fields.py).

  // What a select shows once refilled with names: the wanted one if it is there (or the blank
  // choice, wanted as ""), else the first.
  const selectValue = (names, wanted, blank) =>
    names.includes(wanted) || (blank && wanted === '') ? wanted : names[0] || '';

  // The accounts of a partition, the QoS of an account there, and the association's default QoS
  // (the blank choice: its limit is the one that applies).
  const accountNames = (choices, p) => Object.keys(choices.accounts[p.name] || {});
  const qosNames = (choices, p, account) => (choices.accounts[p.name] || {})[account] || [];
  const defaultQos = (choices, p, account) => (choices.default_qos[p.name] || {})[account] || '';
  const qosBlank = fallback => (fallback ? 'default (' + fallback + ')' : 'default');

  // The limits of partition p with the QoS chosen (qos: the select's value, "" for the default,
  // fallback), and the texts the form shows under each field, keyed by the element's id. A
  // walltime limit is said as the hub words it (choices.walltime_text, by its seconds).
  function limits(choices, p, qos, names, fallback) {
    const wallFor = q => Math.min(...[p.max_walltime, choices.qos_walltime[q]].filter(w => w));
    const hours = w => choices.walltime_text[w];
    const chosen = qos || fallback;
    const others = names.filter(q => q !== chosen && isFinite(wallFor(q))).map(q => hours(wallFor(q)) + ' with ' + q);
    const wall = wallFor(chosen);
    const which = qos ? ' with QoS ' + chosen : ' with QoS ' + chosen + ' (the default)';
    const text = {
      'partition-help': 'The kind of node JupyterLab runs on: ' + p.limits + '.',
      'cpus-limit': 'at most ' + p.max_cpus + ' on ' + p.name,
      'gpus-limit': (p.max_gpus ? 'at most ' + p.max_gpus : 'none') + ' on ' + p.name,
      'memory-limit': 'at most ' + p.max_memory + ' on ' + p.name + ' (write 8G or 512M)',
      'walltime-limit': isFinite(wall)
        ? 'at most ' +
          hours(wall) +
          (chosen && choices.qos_walltime[chosen] ? which : ' on ' + p.name) +
          (others.length ? ' (' + others.join(', ') + ')' : '')
        : 'no limit'
    };
    return { p, text };
  }

  const reservationText = r =>
    r
      ? r.name +
        ': ' +
        r.start.replace('T', ' ') +
        ' to ' +
        r.end.replace('T', ' ') +
        (r.partition ? ', ' + r.partition + ' only' : '')
      : 'Nodes set aside for a course or an event you take part in; "none" otherwise.';

  // What the browser can tell at once, by field: the cores and GPUs against the partition's, and
  // each field whose pattern it finds unmet (its title says what it takes). Memory and walltime
  // within their limits, like everything else, are the hub's to check: the estimate's refusal
  // names the field. values: the fields' text; invalid: the title of each field found unmet.
  function localProblems(values, lim, invalid) {
    const found = {};
    const p = lim.p;
    const cpus = Number(values.cpus),
      gpus = Number(values.gpus);
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > p.max_cpus) {
      found.cpus = 'Between 1 and ' + p.max_cpus + ' cores on ' + p.name + '.';
    }
    if (!Number.isInteger(gpus) || gpus < 0 || gpus > p.max_gpus) {
      found.gpus = p.max_gpus
        ? 'Between 0 and ' + p.max_gpus + ' GPUs on ' + p.name + '.'
        : 'No GPUs on ' + p.name + '.';
    }
    for (const [k, title] of Object.entries(invalid || {})) {
      if (!(k in found)) {
        found[k] = title + '.';
      }
    }
    return found;
  }

  // What the request costs if it runs its whole walltime, and what the account has used, as the
  // hub's estimate words them (spawners/estimate.py summary).
  const costText = body => ({ core: body.cost.core_hours_text, gpu: body.cost.gpu_hours_text });

  // The preset chosen and the fields' values after something happens. A preset is a starting
  // point: clicking it (again) applies the fields it names; the others keep their values, but
  // a reservation belongs to the preset that names it (a workshop's), so one that does not
  // name it clears it. Editing a field makes the request Custom (""), as typed; so does an
  // alternative applied (the estimate's options: only the job fields among them, as text).
  // Node features belong to a partition's nodes: whatever moves the request to another
  // partition clears those it does not name itself.
  // event: { preset: name }, { field: name, value: text } or { options: {name: value} }.
  function after(state, event, data) {
    const next = changed(state, event, data);
    if (next.values.partition !== state.values.partition && !('constraint' in named(event, data))) {
      next.values.constraint = '';
    }
    return next;
  }

  // The fields an event names: an alternative's options, a preset's own, or the one edited.
  function named(event, data) {
    if ('options' in event) {
      return event.options;
    }
    if ('preset' in event) {
      return data.presets.find(p => p.name === event.preset) || {};
    }
    return { [event.field]: event.value };
  }

  function changed(state, event, data) {
    if ('options' in event) {
      const values = { ...state.values };
      data.fields.forEach(k => {
        if (k in event.options) {
          values[k] = String(event.options[k]);
        }
      });
      return { preset: '', values };
    }
    if ('preset' in event) {
      const preset = data.presets.find(p => p.name === event.preset);
      if (!preset) {
        return { preset: event.preset, values: state.values };
      }
      const values = { ...state.values, reservation: '' };
      data.fields.forEach(k => {
        if (k in preset) {
          values[k] = preset[k];
        }
      });
      return { preset: event.preset, values };
    }
    return {
      preset: '',
      values: { ...state.values, [event.field]: event.value }
    };
  }

  // The hub's answer to an estimate that it refused: the field it names, if it is a job field,
  // is marked with the message; the text goes under the cost either way.
  function refusal(body, fields) {
    const message = (body.message || '').replace(/^The job settings were refused: /, '');
    if (body.field && fields.includes(body.field)) {
      return { field: body.field, message, text: 'Not accepted: ' + message };
    }
    return {
      field: null,
      message: '',
      text: body.message || 'This request would be refused.'
    };
  }

  // The estimate's alternatives as the form offers them: one button each, its label SLURM's
  // start ("1 GPU: now"); the line before them says whose start they beat.
  const alternatives = body =>
    (body.alternatives || []).length
      ? {
          intro: 'These start sooner:',
          buttons: body.alternatives.map(a => ({
            label: a.label,
            title: 'Apply: ' + a.label,
            options: a.options
          }))
        }
      : { intro: '', buttons: [] };

  const usageText = u =>
    'Account ' +
    u.account +
    ' has used ' +
    u.core_hours_text +
    ' core-hours and ' +
    u.gpu_hours_text +
    ' GPU-hours since ' +
    u.since +
    '.';

  return {
    selectValue,
    accountNames,
    qosNames,
    defaultQos,
    qosBlank,
    limits,
    reservationText,
    localProblems,
    costText,
    after,
    refusal,
    alternatives,
    usageText
  };
})();

if (typeof module === 'object') {
  module.exports = aifwSpawnForm;
}
