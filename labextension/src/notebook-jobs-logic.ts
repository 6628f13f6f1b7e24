/*
 * The notebook jobs' panel and dialog, apart from the DOM: what a job's line says, which
 * buttons it has, the dialog's fields and what is submitted (lab/notebook_jobs.py's API).
 */

/**
 * One of the user's notebook jobs, as `GET aifactory/notebook-jobs` lists it. The server says
 * what the panel shows: the state in words (`state_text`: "done", "cancelled", "failed (out of
 * memory)"), and an output's path only when there is one to open (lab/batch.py's status).
 */
export interface INotebookJob {
  job: string;
  state: string;
  state_text?: string;
  notebook: string;
  notebook_path?: string;
  why?: string;
  /** A queued job's reason and expected start in the server's words (slurm/pending.py); "" otherwise. */
  waiting?: string;
  result_path?: string;
  log_path?: string;
}

/** One job setting the dialog offers, as the server's table of job fields names it (slurm/job_fields.py). */
export interface IJobField {
  name: string;
  label: string;
  help: string;
  number: boolean;
}

/** The dialog's settings and what each starts as (the server's defaults: this session's own). */
export interface IBatchSettings {
  fields: IJobField[];
  defaults: Record<string, string | number>;
}

export const NO_JOBS_TEXT =
  'None in the last week. Right-click a notebook, or use Run › Run as Batch Job…, ' +
  'to run it as a SLURM job of its own that outlives this session.';

/** The words after the job's state: " job 42: analysis.ipynb (its failing cell) ". */
export function jobDescription(job: INotebookJob): string {
  const why = job.why ? ` (${job.why})` : '';
  return ` job ${job.job}: ${job.notebook_path || job.notebook}${why} `;
}

/** The state as the server words it (an older server: its one word). */
export function stateText(job: INotebookJob): string {
  return job.state_text || job.state;
}

/** The states in which a job can still be cancelled (lab/batch.py's NOTEBOOK_JOB_LIVE). */
const LIVE_STATES = ['queued', 'running'];

/** Does the job's line offer Cancel? Only a queued or running job: one that ended has nothing to cancel. */
export function canCancel(job: INotebookJob): boolean {
  return LIVE_STATES.includes(job.state);
}

/** What the confirmation asks before a job is cancelled: which job, and what is lost. */
export function cancelQuestion(job: INotebookJob): string {
  const lost =
    job.state === 'running'
      ? 'It stops where it is: the cells it has not run yet are not run.'
      : 'It leaves the queue without running.';
  return `Cancel job ${job.job} (${job.notebook_path || job.notebook})? ${lost}`;
}

/** A queued job's line under it: why it waits and when SLURM expects it to start ("" for none). */
export function waitingText(job: INotebookJob): string {
  return job.state === 'queued' && job.waiting ? job.waiting : '';
}

/** The dialog's fields, one per job field: the input's name, its label, its help, its first value. */
export function batchFields(settings: IBatchSettings): [string, string, string, string][] {
  return settings.fields.map(f => [f.name, f.label, f.help, String(settings.defaults[f.name] ?? '')]);
}

/** What the dialog submits: the notebook and each field trimmed (the server checks and types them). */
export function batchRequest(path: string, fields: Iterable<[string, string]>): Record<string, string> {
  const values: Record<string, string> = { path };
  for (const [name, value] of fields) {
    values[name] = value.trim();
  }
  return values;
}

/** The server's error in words: its message, else its reason, else its status. */
export function errorMessage(body: { message?: string; reason?: string }, status: number): string {
  return body.message || body.reason || `the server answered ${status}`;
}
