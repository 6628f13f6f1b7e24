/*
 * The notebook jobs' panel and dialog, apart from the DOM: what a job's line says, which
 * buttons it has, the dialog's fields and what is submitted (lab/notebook_jobs.py's API).
 */

/** One of the user's notebook jobs, as `GET aifactory/notebook-jobs` lists it. */
export interface INotebookJob {
  job: string;
  state: string;
  notebook: string;
  notebook_path?: string;
  why?: string;
  result_path?: string;
  log_path?: string;
}

/** The resources the dialog offers first (the server's defaults). */
export interface IBatchDefaults {
  partition: string;
  account: string;
  cpus: number;
  memory: string;
  walltime: string;
}

export const NO_JOBS_TEXT =
  'None in the last week. Right-click a notebook, or use Run › Run as Batch Job…, ' +
  'to run it as a SLURM job of its own that outlives this session.';

/** The words after the job's state: " job 42: analysis.ipynb (why) ". */
export function jobDescription(job: INotebookJob): string {
  const why = job.why && job.why !== job.state ? ` (${job.why})` : '';
  return ` job ${job.job}: ${job.notebook_path || job.notebook}${why} `;
}

/** The executed notebook is there once the job has ended, whether it failed or not. */
export function resultToOpen(job: INotebookJob): string {
  return (job.state === 'done' || job.state === 'failed') && job.result_path ? job.result_path : '';
}

/** The log is written as soon as the job runs. */
export function logToOpen(job: INotebookJob): string {
  return job.state !== 'queued' && job.log_path ? job.log_path : '';
}

/** The dialog's fields: the input's name, its label, its first value. */
export function batchFields(defaults: IBatchDefaults): [string, string, string][] {
  return [
    ['partition', 'Partition (empty: the default)', defaults.partition],
    ['account', 'Account (empty: your default)', defaults.account],
    ['cpus', 'Cores', String(defaults.cpus)],
    ['memory', 'Memory (e.g. 4G)', defaults.memory],
    ['walltime', 'Walltime (HH:MM:SS)', defaults.walltime]
  ];
}

/** What the dialog submits: the notebook, each field trimmed, the cores as a number. */
export function batchRequest(path: string, fields: Iterable<[string, string]>): Record<string, string | number> {
  const values: Record<string, string | number> = { path };
  for (const [name, value] of fields) {
    values[name] = value.trim();
  }
  values.cpus = Number(values.cpus);
  return values;
}

/** The server's error in words: its message, else its reason, else its status. */
export function errorMessage(body: { message?: string; reason?: string }, status: number): string {
  return body.message || body.reason || `the server answered ${status}`;
}
