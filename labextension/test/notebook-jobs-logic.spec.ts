import {
  batchFields,
  batchRequest,
  cancelQuestion,
  canCancel,
  errorMessage,
  jobDescription,
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
