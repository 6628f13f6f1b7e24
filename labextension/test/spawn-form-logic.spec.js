// The spawn form's rules (../spawners/js/spawn-form-logic.js), without a page: the texts and
// checks the form shows, from data shaped as render_form's #aifw-data (Choices.as_data).
const form = require('../../spawners/js/spawn-form-logic.js');

const gpp = {
  name: 'gpp',
  max_cpus: 112,
  max_gpus: 0,
  max_memory_mb: 262144,
  max_memory: '256G',
  max_walltime: 259200,
  limits: 'up to 112 cores, 256G of memory, no GPUs, 72 h'
};
const acc = {
  name: 'acc',
  max_cpus: 80,
  max_gpus: 4,
  max_memory_mb: 524288,
  max_memory: '512G',
  max_walltime: 0,
  limits: 'up to 80 cores, 512G of memory, 4 GPUs, no walltime limit'
};
const choices = {
  partitions: { gpp, acc },
  accounts: { gpp: { proj: ['normal', 'debug'] }, acc: { proj: ['normal'], other: [] } },
  default_account: 'proj',
  default_qos: { gpp: { proj: 'normal' }, acc: { proj: 'normal', other: '' } },
  qos_walltime: { normal: 172800, debug: 7200 },
  reservations: {},
  // render_form's walltime_texts: every limit as the hub words it (slurm/display.py duration_text)
  walltime_text: { 259200: '72 h', 172800: '48 h', 7200: '2 h' }
};
const fields = ['partition', 'account', 'qos', 'reservation', 'cpus', 'memory', 'gpus', 'walltime', 'constraint'];
const ok = { cpus: '4', gpus: '0', memory: '8G', walltime: '02:00:00' };

test("no rule of the hub's again: no walltime or size parsing, no duration or cost arithmetic", () => {
  for (const name of ['seconds', 'hours', 'megabytes', 'cost']) {
    expect(form[name]).toBeUndefined();
  }
});

describe('limits per partition and QoS', () => {
  test('the accounts, QoS and default QoS of a partition', () => {
    expect(form.accountNames(choices, acc)).toEqual(['proj', 'other']);
    expect(form.qosNames(choices, gpp, 'proj')).toEqual(['normal', 'debug']);
    expect(form.qosNames(choices, gpp, 'nobody')).toEqual([]);
    expect(form.defaultQos(choices, acc, 'other')).toBe('');
    expect([form.qosBlank('normal'), form.qosBlank('')]).toEqual(['default (normal)', 'default']);
  });
  test('a refilled select keeps the wanted value if it is offered, else shows the first', () => {
    expect(form.selectValue(['a', 'b'], 'b')).toBe('b');
    expect(form.selectValue(['a', 'b'], 'c')).toBe('a');
    expect(form.selectValue(['a'], '', 'default')).toBe('');
    expect(form.selectValue([], 'x')).toBe('');
  });
  test('the texts under the fields', () => {
    const lim = form.limits(choices, gpp, 'debug', ['normal', 'debug'], 'normal');
    expect(lim.text).toEqual({
      'partition-help': 'The kind of node JupyterLab runs on: up to 112 cores, 256G of memory, no GPUs, 72 h.',
      'cpus-limit': 'at most 112 on gpp',
      'gpus-limit': 'none on gpp',
      'memory-limit': 'at most 256G on gpp (write 8G or 512M)',
      'walltime-limit': 'at most 2 h with QoS debug (48 h with normal)'
    });
    expect(form.limits(choices, acc, '', ['normal'], 'normal').text['gpus-limit']).toBe('at most 4 on acc');
  });
  test("the default QoS's limit applies, and says so", () => {
    const lim = form.limits(choices, gpp, '', ['normal', 'debug'], 'normal');
    expect(lim.text['walltime-limit']).toBe('at most 48 h with QoS normal (the default) (2 h with debug)');
  });
  test("the partition's walltime when the QoS has none, or no limit at all", () => {
    const noQos = { ...choices, qos_walltime: {} };
    expect(form.limits(noQos, gpp, '', [], '').text['walltime-limit']).toBe('at most 72 h on gpp');
    expect(form.limits(noQos, acc, '', [], '').text['walltime-limit']).toBe('no limit');
  });
  test('a limit is said as the hub words it, whatever its seconds', () => {
    const odd = { ...choices, qos_walltime: { normal: 5430 }, walltime_text: { 259200: '72 h', 5430: '1 h 31 min' } };
    expect(form.limits(odd, gpp, 'normal', ['normal'], 'normal').text['walltime-limit']).toBe(
      'at most 1 h 31 min with QoS normal'
    );
  });
  test('a reservation in words', () => {
    const r = { name: 'course', start: '2026-12-01T09:00:00', end: '2026-12-01T17:00:00', partition: 'acc' };
    expect(form.reservationText(r)).toBe('course: 2026-12-01 09:00:00 to 2026-12-01 17:00:00, acc only');
    expect(form.reservationText({ ...r, partition: '' })).toBe('course: 2026-12-01 09:00:00 to 2026-12-01 17:00:00');
    expect(form.reservationText(undefined)).toMatch(/^Nodes set aside/);
  });
});

describe('what the browser refuses at once', () => {
  const onGpp = form.limits(choices, gpp, 'debug', ['normal', 'debug'], 'normal');
  const onAcc = form.limits(choices, acc, '', ['normal'], 'normal');
  test('values within the limits are fine', () => {
    expect(form.localProblems(ok, onGpp, {})).toEqual({});
  });
  test('cores between 1 and the partition maximum, whole numbers', () => {
    for (const cpus of ['0', '113', '2.5', '', 'x']) {
      expect(form.localProblems({ ...ok, cpus }, onGpp, {})).toEqual({ cpus: 'Between 1 and 112 cores on gpp.' });
    }
  });
  test('GPUs only where there are some', () => {
    expect(form.localProblems({ ...ok, gpus: '1' }, onGpp, {})).toEqual({ gpus: 'No GPUs on gpp.' });
    expect(form.localProblems({ ...ok, gpus: '5' }, onAcc, {})).toEqual({ gpus: 'Between 0 and 4 GPUs on acc.' });
    expect(form.localProblems({ ...ok, gpus: '4' }, onAcc, {})).toEqual({});
  });
  test('memory and walltime are checked by their pattern here, by the hub against their limits', () => {
    // Over a limit: the estimate's refusal names the field (the hub's one check, choices.py).
    expect(form.localProblems({ ...ok, memory: '257G', walltime: '30-00:00:00' }, onGpp, {})).toEqual({});
    const invalid = { walltime: 'a walltime HH:MM:SS or D-HH:MM:SS' };
    expect(form.localProblems({ ...ok, walltime: '2h' }, onGpp, invalid)).toEqual({
      walltime: 'a walltime HH:MM:SS or D-HH:MM:SS.'
    });
  });
  test("a pattern the browser finds unmet, named by the field's title, unless already refused", () => {
    const invalid = { constraint: 'Letters, digits and &|', cpus: 'pattern' };
    expect(form.localProblems({ ...ok, cpus: 'x' }, onGpp, invalid)).toEqual({
      constraint: 'Letters, digits and &|.',
      cpus: 'Between 1 and 112 cores on gpp.'
    });
  });
});

test("the cost as the hub's estimate words it (spawners/form.py cost)", () => {
  const cost = { hours: 2.33, core_hours: 7, gpu_hours: 0, core_hours_text: '7.00', gpu_hours_text: '0.00' };
  expect(form.costText({ cost })).toEqual({ core: '7.00', gpu: '0.00' });
});

describe('presets', () => {
  const data = {
    fields,
    presets: [{ name: 'gpu', title: 'GPU', partition: 'acc', gpus: 1, cpus: 20 }]
  };
  const start = {
    partition: 'gpp',
    account: 'proj',
    qos: '',
    reservation: 'ws1',
    cpus: 4,
    memory: '8G',
    gpus: 0,
    walltime: '02:00:00',
    constraint: 'highmem'
  };
  const mine = { ...start, cpus: '12', memory: '64G', walltime: '08:00:00' };
  test('a preset applies its fields, keeps the others, and clears a reservation it does not name', () => {
    expect(form.after({ preset: '', values: mine }, { preset: 'gpu' }, data)).toEqual({
      preset: 'gpu',
      values: { ...mine, partition: 'acc', gpus: 1, cpus: 20, reservation: '', constraint: '' }
    });
  });
  test('a preset on another partition clears node features (the acc nodes have no highmem), on the same keeps them', () => {
    expect(form.after({ preset: '', values: mine }, { preset: 'gpu' }, data).values.constraint).toBe('');
    const onAcc = { ...mine, partition: 'acc' };
    expect(form.after({ preset: '', values: onAcc }, { preset: 'gpu' }, data).values.constraint).toBe('highmem');
  });
  test('so does choosing another partition in its field, or an alternative on another partition', () => {
    const state = { preset: '', values: mine };
    expect(form.after(state, { field: 'partition', value: 'acc' }, data).values.constraint).toBe('');
    expect(form.after(state, { field: 'cpus', value: '4' }, data).values.constraint).toBe('highmem');
    expect(form.after(state, { options: { partition: 'acc' } }, data).values.constraint).toBe('');
    const named = form.after(state, { options: { partition: 'acc', constraint: 'a100' } }, data);
    expect(named.values.constraint).toBe('a100');
  });
  test('clicking a preset again applies it again', () => {
    const edited = { ...start, partition: 'acc', gpus: 1, cpus: '2' };
    expect(form.after({ preset: 'gpu', values: edited }, { preset: 'gpu' }, data).values.cpus).toBe(20);
  });
  test('editing a field makes the request Custom, keeping what was typed', () => {
    const state = form.after({ preset: '', values: mine }, { preset: 'gpu' }, data);
    const next = form.after(state, { field: 'walltime', value: '04:00:00' }, data);
    expect(next).toEqual({ preset: '', values: { ...state.values, walltime: '04:00:00' } });
  });
  test('an alternative applied sets the job fields it names, as text, and makes the request Custom', () => {
    const state = form.after({ preset: '', values: mine }, { preset: 'gpu' }, data);
    const options = { ...state.values, gpus: 1, walltime: '01:00:00', preset: 'gpu', unknown: 'x' };
    expect(form.after(state, { options }, data)).toEqual({
      preset: '',
      values: { ...state.values, gpus: '1', cpus: '20', walltime: '01:00:00' }
    });
  });
  test('an unknown preset changes no value', () => {
    const state = { preset: '', values: mine };
    expect(form.after(state, { preset: 'gone' }, data).values).toBe(mine);
  });
});

describe("the hub's refusals", () => {
  test('a refusal naming a job field marks that field', () => {
    const body = { field: 'qos', message: 'The job settings were refused: qos: debug is not allowed' };
    expect(form.refusal(body, fields)).toEqual({
      field: 'qos',
      message: 'qos: debug is not allowed',
      text: 'Not accepted: qos: debug is not allowed'
    });
  });
  test('any other refusal is shown as the hub says it, and marks no field', () => {
    expect(form.refusal({ field: 'script', message: 'No.' }, fields)).toEqual({
      field: null,
      message: '',
      text: 'No.'
    });
    expect(form.refusal({}, fields).text).toBe('This request would be refused.');
  });
  test("the estimate's alternatives are one button each, labelled with SLURM's start", () => {
    const one = { options: { gpus: 1 }, start: '2026-12-04T12:00:10', start_text: 'now', label: '1 GPU: now' };
    expect(form.alternatives({ alternatives: [one] })).toEqual({
      intro: 'These start sooner:',
      buttons: [{ label: '1 GPU: now', title: 'Apply: 1 GPU: now', options: { gpus: 1 } }]
    });
    expect(form.alternatives({ alternatives: [] })).toEqual({ intro: '', buttons: [] });
    expect(form.alternatives({})).toEqual({ intro: '', buttons: [] });
  });
  test("the account's usage in words", () => {
    const hours = { core_hours: 12.5, gpu_hours: 0, core_hours_text: '12.50', gpu_hours_text: '0.00' };
    const usage = { account: 'proj', since: '2026-11-04', ...hours };
    expect(form.usageText(usage)).toBe('Account proj has used 12.50 core-hours and 0.00 GPU-hours since 2026-11-04.');
  });
});
