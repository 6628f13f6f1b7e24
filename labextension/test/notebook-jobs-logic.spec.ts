import {
  batchFields,
  batchRequest,
  errorMessage,
  jobDescription,
  logToOpen,
  resultToOpen
} from '../src/notebook-jobs-logic';

const RUNNING = { job: '7', state: 'running', notebook: 'a.ipynb', notebook_path: 'work/a.ipynb', log_path: 'a.log' };

describe('a notebook job in the panel', () => {
  it('names the notebook, and why when the reason is not just its state', () => {
    expect(jobDescription(RUNNING)).toBe(' job 7: work/a.ipynb ');
    expect(jobDescription({ job: '8', state: 'failed', notebook: 'b.ipynb', why: 'OUT_OF_MEMORY' })).toBe(
      ' job 8: b.ipynb (OUT_OF_MEMORY) '
    );
    expect(jobDescription({ job: '9', state: 'queued', notebook: 'c.ipynb', why: 'queued' })).toBe(' job 9: c.ipynb ');
  });

  it('offers the result once the job has ended, the log once it runs', () => {
    expect(resultToOpen({ ...RUNNING, result_path: 'a-out.ipynb' })).toBe('');
    expect(resultToOpen({ ...RUNNING, state: 'done', result_path: 'a-out.ipynb' })).toBe('a-out.ipynb');
    expect(resultToOpen({ ...RUNNING, state: 'failed', result_path: 'a-out.ipynb' })).toBe('a-out.ipynb');
    expect(logToOpen(RUNNING)).toBe('a.log');
    expect(logToOpen({ ...RUNNING, state: 'queued' })).toBe('');
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
