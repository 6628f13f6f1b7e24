// The home page's logic (../hub/js/home-logic.js), without a page: the usage chart's numbers,
// the jobs card's texts, and when the page looks again.
const home = require('../../hub/js/home-logic.js');

// An account's hours as the hub sends them (slurm/display.py hours_data): the numbers for the
// bars, the texts to show; the page rounds nothing itself.
const used = (account, core, gpu, coreText, gpuText) => ({
  account,
  core_hours: core,
  gpu_hours: gpu,
  core_hours_text: coreText,
  gpu_hours_text: gpuText
});

describe("the accounts' usage", () => {
  test("each account in the hub's words and in bars, the largest filling the chart", () => {
    const rows = home.usageRows([used('proj', 120, 30, '120.00', '30.00'), used('other', 0, 0, '0.00', '0.00')]);
    expect(rows).toEqual([
      {
        account: 'proj',
        core: '120.00',
        gpu: '30.00',
        label: 'proj: 120.00 core-hours, 30.00 GPU-hours',
        coreWidth: 240,
        gpuWidth: 60
      },
      // Every account has a sliver of a core bar; no GPU bar without GPU-hours.
      {
        account: 'other',
        core: '0.00',
        gpu: '0.00',
        label: 'other: 0.00 core-hours, 0.00 GPU-hours',
        coreWidth: 1,
        gpuWidth: 0
      }
    ]);
  });
  test('small numbers are not blown up to the whole chart', () => {
    const [row] = home.usageRows([used('p', 0.5, 0.001, '0.50', '0.00')]);
    expect([row.coreWidth, row.gpuWidth]).toEqual([120, 1]);
    expect([row.core, row.gpu]).toEqual(['0.50', '0.00']);
  });
  test('no accounts, no rows; the caption names the start', () => {
    expect(home.usageRows([])).toEqual([]);
    expect(home.usageCaption('2026-11-04')).toBe(
      "Since 2026-11-04, from SLURM's accounting (all jobs of each account)."
    );
  });
});

describe('Dask workers and notebook jobs', () => {
  // As hub/operator.py's jobs API sends a group: its hours with their texts (hours_data).
  const group = { parent_job: '42', running: 2, pending: 1, cores: 1, ...used('', 1.5, 0, '1.50', '0.00') };
  test('a group of workers in words, GPU-hours only when there are some', () => {
    expect(home.workersText(group)).toBe(
      'Dask workers of job 42: 2 running, 1 queued, 1 core; 1.50 core-hours so far.'
    );
    expect(home.workersText({ ...group, cores: 8, gpu_hours: 2, gpu_hours_text: '2.00' })).toBe(
      'Dask workers of job 42: 2 running, 1 queued, 8 cores; 1.50 core-hours and 2.00 GPU-hours so far.'
    );
  });
  test('the card follows what runs or waits, and only that', () => {
    const done = { state: 'completed' };
    expect(home.following({ workers: [], notebooks: [done] })).toBe(false);
    expect(home.following({ workers: [group], notebooks: [] })).toBe(true);
    expect(home.following({ workers: [], notebooks: [done, { state: 'queued' }] })).toBe(true);
    expect(home.following({ workers: [], notebooks: [{ state: 'running' }] })).toBe(true);
  });
  test('a running or queued kernel keeps the page looking again', () => {
    const kernel = { state: 'running' };
    expect(home.following({ workers: [], kernels: [], notebooks: [] })).toBe(false);
    expect(home.following({ workers: [], kernels: [kernel], notebooks: [] })).toBe(true);
  });
  test("a kernel's job: where it runs, its time left or its wait in the hub's words, what it holds", () => {
    const running = {
      job_id: '447',
      session_job: '441',
      partition: 'acc',
      node: 'mn5-a01',
      state: 'running',
      cores: 4,
      gpus: 1,
      time_left: '57 min',
      waiting: ''
    };
    expect(home.kernelText(running)).toBe('Kernel job 447 on acc (mn5-a01): running, 57 min left; 4 cores, 1 GPU.');
    expect(home.kernelText(running, true)).toBe(
      'Kernel job 447 of job 441 on acc (mn5-a01): running, 57 min left; 4 cores, 1 GPU.'
    );
    const waiting =
      'waiting for free CPUs, memory or GPUs; SLURM expects it to start at 2026-12-03 18:00 (in about 12 min).';
    const queued = { ...running, job_id: '448', node: '', state: 'queued', cores: 1, gpus: 2, time_left: '', waiting };
    expect(home.kernelText(queued)).toBe(`Kernel job 448 on acc: queued, asking for 1 core, 2 GPUs; ${waiting}`);
    // squeue did not answer: no words the page cannot have; no limit: no time left; no GPU: none named
    expect(home.kernelText({ ...queued, waiting: '' })).toBe(
      'Kernel job 448 on acc: queued, asking for 1 core, 2 GPUs.'
    );
    expect(home.kernelText({ ...running, time_left: '', gpus: 0 })).toBe(
      'Kernel job 447 on acc (mn5-a01): running; 4 cores.'
    );
  });
  test("a queued notebook job says why it waits and when, in the hub's words", () => {
    const waiting =
      'waiting for free CPUs, memory or GPUs; SLURM expects it to start at 2026-11-27 16:40 (in about 12 min).';
    expect(home.notebookState({ state: 'queued', state_text: 'queued', waiting })).toBe(`queued: ${waiting}`);
    expect(home.notebookState({ state: 'done', state_text: 'done', waiting: '' })).toBe('done');
    expect(home.notebookState({ state: 'failed', state_text: 'failed (timeout)' })).toBe('failed (timeout)');
  });
  test('Cancel only on a queued or running notebook job, asking first what is lost', () => {
    const job = { job_id: '4701', notebook: '/home/alice/jobs/analysis.ipynb' };
    expect(['queued', 'running', 'done', 'cancelled', 'failed'].filter(state => home.canCancel({ state }))).toEqual([
      'queued',
      'running'
    ]);
    expect(home.cancelQuestion({ ...job, state: 'queued' })).toBe(
      'Cancel job 4701 (/home/alice/jobs/analysis.ipynb)? It leaves the queue without running.'
    );
    expect(home.cancelQuestion({ ...job, state: 'running' })).toBe(
      'Cancel job 4701 (/home/alice/jobs/analysis.ipynb)? It stops where it is: the cells it has not run yet are not run.'
    );
  });
  test("after Cancel, the hub's answer in words, or why not", () => {
    expect(home.cancelledText(true, { job: '4701', message: 'job 4701 (/tmp/a.ipynb) cancelled' })).toBe(
      'Cancelled: job 4701 (/tmp/a.ipynb) cancelled.'
    );
    expect(home.cancelledText(false, { status: 409, message: 'job 4701 has already ended (done)' })).toBe(
      'Not cancelled: job 4701 has already ended (done).'
    );
    expect(home.cancelledText(false, undefined)).toBe('Not cancelled: the hub did not answer.');
  });
  test('the texts that name the period', () => {
    expect(home.noJobsText(30)).toBe('No Dask workers now, and no notebook job in the last 30 days. ');
    expect(home.notebooksCaption(7)).toBe('Notebook jobs of the last 7 days, newest first.');
  });
});

test('after Stop, the page reloads once the default server is gone or stopped', () => {
  expect(home.serverStopped({ servers: {} })).toBe(true);
  expect(home.serverStopped({})).toBe(true);
  expect(home.serverStopped({ servers: { '': { pending: null, ready: false } } })).toBe(true);
  expect(home.serverStopped({ servers: { '': { pending: 'stop', ready: false } } })).toBe(false);
  expect(home.serverStopped({ servers: { '': { pending: null, ready: true } } })).toBe(false);
  expect(home.serverStopped({ servers: { named: { ready: true } } })).toBe(true);
});

describe('Extend on the session card', () => {
  test("the new limit and the time left in the hub's words, or the limit the hub named", () => {
    // hub/extend.py's answer: time_left_text is slurm/display.py's duration_text(seconds_left)
    const answer = { new_limit: '00:40:00', seconds_left: 2088, time_left_text: '35 min' };
    expect(home.extendedText(true, answer)).toBe('Extended to 00:40:00: 35 min left.');
    expect(home.extendedText(false, { message: 'the QoS interactive allows at most 12 h' })).toBe(
      'Not extended: the QoS interactive allows at most 12 h.'
    );
    expect(home.extendedText(false, null)).toBe('Not extended: the hub did not answer.');
    expect(home.durationText).toBeUndefined(); // no duration rule of the page's own
  });
});
