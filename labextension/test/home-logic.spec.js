// The home page's logic (../hub/js/home-logic.js), without a page: the usage chart's numbers,
// the jobs card's texts, and when the page looks again.
const home = require('../../hub/js/home-logic.js');

describe("the accounts' usage", () => {
  test('each account in numbers and bars, the largest filling the chart', () => {
    const rows = home.usageRows([
      { account: 'proj', core_hours: 120, gpu_hours: 30 },
      { account: 'other', core_hours: 0, gpu_hours: 0 }
    ]);
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
    const [row] = home.usageRows([{ account: 'p', core_hours: 0.5, gpu_hours: 0.001 }]);
    expect([row.coreWidth, row.gpuWidth]).toEqual([120, 1]);
  });
  test('no accounts, no rows; the caption names the start', () => {
    expect(home.usageRows([])).toEqual([]);
    expect(home.usageCaption('2026-11-04')).toBe(
      "Since 2026-11-04, from SLURM's accounting (all jobs of each account)."
    );
  });
});

describe('Dask workers and notebook jobs', () => {
  const group = { parent_job: '42', running: 2, pending: 1, cores: 1, core_hours: 1.5, gpu_hours: 0 };
  test('a group of workers in words, GPU-hours only when there are some', () => {
    expect(home.workersText(group)).toBe(
      'Dask workers of job 42: 2 running, 1 queued, 1 core; 1.50 core-hours so far.'
    );
    expect(home.workersText({ ...group, cores: 8, gpu_hours: 2 })).toBe(
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
  test('the new limit and the time left, or the limit the hub named', () => {
    expect(home.extendedText(true, { new_limit: '00:40:00', seconds_left: 2088 })).toBe(
      'Extended to 00:40:00: 35 min left.'
    );
    expect(home.extendedText(false, { message: 'the QoS interactive allows at most 12 h' })).toBe(
      'Not extended: the QoS interactive allows at most 12 h.'
    );
    expect(home.extendedText(false, null)).toBe('Not extended: the hub did not answer.');
    expect([59 * 60 + 40, 3600, 20].map(home.durationText)).toEqual(['1 h', '1 h', 'under a minute']);
  });
});
