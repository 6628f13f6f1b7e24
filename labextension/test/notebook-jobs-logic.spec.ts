import {
  ASKING_TEXT,
  askingView,
  batchFields,
  batchRequest,
  cancelQuestion,
  canCancel,
  errorMessage,
  ESTIMATE_DELAY_MS,
  estimateView,
  jobDescription,
  LatestEstimate,
  stateText,
  waitingText
} from '../src/notebook-jobs-logic';

const RUNNING = { job: '7', state: 'running', notebook: 'a.ipynb', notebook_path: 'work/a.ipynb', log_path: 'a.log' };

describe('a notebook job in the panel', () => {
  it('names the notebook, and its failing cell when the server names one', () => {
    expect(jobDescription(RUNNING)).toBe(' job 7: work/a.ipynb ');
    const failed = { job: '8', state: 'failed', notebook: 'b.ipynb', why: "cell 2 ('x'): ValueError: boom" };
    expect(jobDescription(failed)).toBe(" job 8: b.ipynb (cell 2 ('x'): ValueError: boom) ");
  });

  it("says the state in the server's words, not its own", () => {
    expect(stateText({ job: '9', state: 'cancelled', state_text: 'cancelled', notebook: 'c.ipynb' })).toBe('cancelled');
    const oom = { job: '10', state: 'failed', state_text: 'failed (out of memory)', notebook: 'c.ipynb' };
    expect(stateText(oom)).toBe('failed (out of memory)');
    expect(stateText(RUNNING)).toBe('running');
  });
});

describe('the batch job dialog', () => {
  it("offers the server's fields with their defaults", () => {
    const fields = batchFields({
      fields: [
        { name: 'partition', label: 'Partition', help: 'The kind of node.', number: false },
        { name: 'cpus', label: 'Cores', help: 'Cores of the job.', number: true },
        { name: 'constraint', label: 'Node features', help: 'Features.', number: false }
      ],
      defaults: { partition: '', cpus: 2, constraint: '' }
    });
    expect(fields.map(([name]) => name)).toEqual(['partition', 'cpus', 'constraint']);
    expect(fields[1]).toEqual(['cpus', 'Cores', 'Cores of the job.', '2']);
  });

  it('submits the notebook and trimmed values, for the server to check and type', () => {
    expect(
      batchRequest('a.ipynb', [
        ['partition', ' gpp '],
        ['cpus', '4 '],
        ['memory', '1G']
      ])
    ).toEqual({ path: 'a.ipynb', partition: 'gpp', cpus: '4', memory: '1G' });
  });

  it("says the server's refusal in its words", () => {
    expect(errorMessage({ message: 'walltime too long' }, 400)).toBe('walltime too long');
    expect(errorMessage({ reason: 'Forbidden' }, 403)).toBe('Forbidden');
    expect(errorMessage({}, 502)).toBe('the server answered 502');
  });
});

describe('cancelling a notebook job from the panel', () => {
  it('is offered for a queued or running job only', () => {
    expect(canCancel(RUNNING)).toBe(true);
    expect(canCancel({ job: '11', state: 'queued', notebook: 'a.ipynb' })).toBe(true);
    for (const state of ['done', 'cancelled', 'failed']) {
      expect(canCancel({ job: '12', state, notebook: 'a.ipynb' })).toBe(false);
    }
  });

  it('asks first, naming the job, its notebook and what is lost', () => {
    expect(cancelQuestion(RUNNING)).toBe(
      'Cancel job 7 (work/a.ipynb)? It stops where it is: the cells it has not run yet are not run.'
    );
    expect(cancelQuestion({ job: '11', state: 'queued', notebook: 'b.ipynb' })).toBe(
      'Cancel job 11 (b.ipynb)? It leaves the queue without running.'
    );
  });
});

describe('a queued notebook job in the panel', () => {
  it("says why it waits and when SLURM expects it to start, in the server's words", () => {
    const waiting = 'waiting for the scheduler to place it.';
    expect(waitingText({ job: '11', state: 'queued', notebook: 'a.ipynb', waiting })).toBe(waiting);
    expect(waitingText({ job: '11', state: 'queued', notebook: 'a.ipynb' })).toBe('');
    expect(waitingText({ ...RUNNING, waiting })).toBe('');
  });
});

const LIMITS = {
  partition: 'gpp',
  qos: 'normal',
  cpus: 112,
  memory: '16000M',
  gpus: 0,
  walltime: '2-00:00:00',
  text: 'On gpp: up to 112 cores, 16000M of memory, no GPUs, at most 2-00:00:00 with QoS normal.'
};
const COST = { core_hours_text: '0.50', gpu_hours: 0, gpu_hours_text: '0.00' };

describe("the batch job dialog's limits and estimate", () => {
  it("shows the partition's limits, the cost and SLURM's start in the server's words, and may submit", () => {
    const view = estimateView({
      limits: LIMITS,
      partitions: ['gpp', 'acc'],
      cost: COST,
      refused: null,
      start_text: 'SLURM expects it to start now.'
    });
    expect(view).toEqual({
      limits: LIMITS.text,
      cost: 'This job costs at most 0.50 core-hours if it runs its whole walltime.',
      start: 'SLURM expects it to start now.',
      refused: '',
      field: '',
      canSubmit: true
    });
    const gpus = estimateView({
      limits: LIMITS,
      partitions: ['acc'],
      cost: { core_hours_text: '20.00', gpu_hours: 1, gpu_hours_text: '1.00' },
      refused: null,
      start_text: ''
    });
    expect(gpus.cost).toBe('This job costs at most 20.00 core-hours and 1.00 GPU-hours if it runs its whole walltime.');
  });

  it('refuses a value beyond a limit: the field is marked, the refusal said, and Submit is not offered', () => {
    const view = estimateView({
      limits: LIMITS,
      partitions: ['gpp', 'acc'],
      cost: { core_hours_text: '100.00', gpu_hours: 0, gpu_hours_text: '0.00' },
      refused: { field: 'cpus', message: 'cpus: 200 is not accepted; allowed: at most 112 on partition gpp' },
      start_text: ''
    });
    expect(view.canSubmit).toBe(false);
    expect(view.field).toBe('cpus');
    expect(view.refused).toBe('Not accepted: cpus: 200 is not accepted; allowed: at most 112 on partition gpp');
    expect(view.limits).toBe(LIMITS.text);
    expect(view.start).toBe('');
  });

  it('names the partitions open to the user when the one typed is not', () => {
    const view = estimateView({
      limits: null,
      partitions: ['gpp', 'acc'],
      cost: COST,
      refused: { field: 'partition', message: "partition: 'nope' is not accepted; allowed: one of gpp, acc" },
      start_text: ''
    });
    expect(view.limits).toBe('Partitions open to you: gpp, acc.');
    expect(view.field).toBe('partition');
    const typo = estimateView({
      limits: null,
      partitions: [],
      cost: null,
      refused: { field: 'cpus', message: "cpus: 'many' is not accepted; allowed: a whole number" },
      start_text: ''
    });
    expect([typo.limits, typo.cost, typo.canSubmit]).toEqual(['', '', false]);
  });

  it('says it is asking while the values are new, and why there is no estimate when the server cannot say', () => {
    expect(askingView()).toEqual({
      limits: '',
      cost: '',
      start: ASKING_TEXT,
      refused: '',
      field: '',
      canSubmit: true
    });
    const failed = askingView('SLURM did not answer');
    expect(failed.start).toBe('No estimate right now: SLURM did not answer');
    expect(failed.canSubmit).toBe(false);
  });
});

describe("asking the server about the dialog's values", () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  const flush = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) {
      await Promise.resolve();
    }
  };

  it('asks once typing pauses, with the last values typed', async () => {
    const fetch = jest.fn((values: string) => Promise.resolve(`answer to ${values}`));
    const shown: string[] = [];
    const latest = new LatestEstimate<string, string>(fetch, answer => shown.push(String(answer)));
    latest.ask('c');
    jest.advanceTimersByTime(ESTIMATE_DELAY_MS - 1);
    latest.ask('cp');
    latest.ask('cpu');
    jest.advanceTimersByTime(ESTIMATE_DELAY_MS - 1);
    expect(fetch).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    await flush();
    expect(fetch.mock.calls).toEqual([['cpu']]);
    expect(shown).toEqual(['answer to cpu']);
  });

  it('never shows an answer to values changed meanwhile', async () => {
    const pending: Record<string, (answer: string) => void> = {};
    const fetch = (values: string): Promise<string> => new Promise(resolve => (pending[values] = resolve));
    const shown: string[] = [];
    const latest = new LatestEstimate<string, string>(fetch, answer => shown.push(String(answer)));
    latest.ask('old');
    jest.advanceTimersByTime(ESTIMATE_DELAY_MS);
    latest.ask('new');
    jest.advanceTimersByTime(ESTIMATE_DELAY_MS);
    pending['new']('new answer');
    await flush();
    pending['old']('old answer');
    await flush();
    expect(shown).toEqual(['new answer']);
  });

  it("shows the server's refusal as an Error, and nothing once stopped (the dialog closed)", async () => {
    const fetch = jest.fn((values: string) =>
      values === 'down' ? Promise.reject(new Error('SLURM did not answer')) : Promise.resolve('ok')
    );
    const shown: (string | Error)[] = [];
    const latest = new LatestEstimate<string, string>(fetch, answer => shown.push(answer));
    latest.ask('down');
    jest.advanceTimersByTime(ESTIMATE_DELAY_MS);
    await flush();
    expect(shown).toEqual([new Error('SLURM did not answer')]);
    latest.ask('closing');
    latest.stop();
    jest.advanceTimersByTime(ESTIMATE_DELAY_MS);
    await flush();
    expect(fetch.mock.calls).toEqual([['down']]);
    latest.ask('typed');
    jest.advanceTimersByTime(ESTIMATE_DELAY_MS);
    latest.stop(); // closed while the server was asked: its answer is not shown
    await flush();
    expect(shown.length).toBe(1);
  });
});
