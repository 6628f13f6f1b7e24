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

/** A partition's limits for this user, as the server words them (slurm/choices.py's Choices.limits). */
export interface IJobLimits {
  partition: string;
  qos: string;
  cpus: number;
  memory: string;
  gpus: number;
  walltime: string;
  text: string;
}

/** What `POST aifactory/notebook-jobs/estimate` answers for the dialog's values (lab/batch.py's estimate). */
export interface IEstimate {
  /** The chosen partition's limits; null for a partition not open to the user. */
  limits: IJobLimits | null;
  /** The partitions open to the user. */
  partitions: string[];
  /** What the job costs if it runs its whole walltime, with the server's texts; null when not known. */
  cost: { core_hours_text: string; gpu_hours: number; gpu_hours_text: string } | null;
  /** A value that would be refused: its field ("" when SLURM's refusal names none) and why; null otherwise. */
  refused: { field: string; message: string } | null;
  /** SLURM's expected start in words ("" when refused). */
  start_text: string;
}

/** What the dialog shows of an estimate, and whether it may submit. */
export interface IEstimateView {
  limits: string;
  cost: string;
  start: string;
  /** The refusal, as the dialog says it under the fields ("" for none). */
  refused: string;
  /** The field to mark ("" for none). */
  field: string;
  canSubmit: boolean;
}

/** While the server is asked about values just typed (or could not answer). */
export const ASKING_TEXT = 'Asking SLURM what you may ask for and when it would start…';

/** How long the dialog waits after a keystroke before it asks the server (the spawn form's 400 ms). */
export const ESTIMATE_DELAY_MS = 400;

/** The estimate as the dialog shows it: the limits, the cost, the start; a refusal instead of the start. */
export function estimateView(answer: IEstimate): IEstimateView {
  const limits = answer.limits
    ? answer.limits.text
    : answer.partitions.length
      ? `Partitions open to you: ${answer.partitions.join(', ')}.`
      : '';
  const cost = answer.cost
    ? `This job costs at most ${answer.cost.core_hours_text} core-hours` +
      (answer.cost.gpu_hours ? ` and ${answer.cost.gpu_hours_text} GPU-hours` : '') +
      ' if it runs its whole walltime.'
    : '';
  if (answer.refused) {
    return {
      limits,
      cost,
      start: '',
      refused: `Not accepted: ${answer.refused.message}`,
      field: answer.refused.field,
      canSubmit: false
    };
  }
  return { limits, cost, start: answer.start_text, refused: '', field: '', canSubmit: true };
}

/** The dialog's state while its values are being asked about, or could not be. */
export function askingView(error?: string): IEstimateView {
  return {
    limits: '',
    cost: '',
    start: error ? `No estimate right now: ${error}` : ASKING_TEXT,
    refused: '',
    field: '',
    canSubmit: !error
  };
}

/**
 * Asks about the dialog's values at most once per pause in typing, and keeps only the newest
 * answer: `ask(values)` waits `delay` ms for more keystrokes, then calls `fetch`; an answer to
 * values changed meanwhile is dropped (`show` never goes back to older values), and a failed
 * one is shown as its Error.
 */
export class LatestEstimate<V, A> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private asked = 0;

  constructor(
    private readonly fetch: (values: V) => Promise<A>,
    private readonly show: (answer: A | Error, values: V) => void,
    private readonly delay = ESTIMATE_DELAY_MS
  ) {}

  /** Ask about `values` once typing pauses. */
  ask(values: V): void {
    clearTimeout(this.timer);
    const mine = ++this.asked;
    this.timer = setTimeout(() => void this.answer(values, mine), this.delay);
  }

  /** Stop asking (the dialog closed). */
  stop(): void {
    clearTimeout(this.timer);
    this.asked++;
  }

  private async answer(values: V, mine: number): Promise<void> {
    let answer: A | Error;
    try {
      answer = await this.fetch(values);
    } catch (error) {
      answer = error instanceof Error ? error : new Error(String(error));
    }
    if (mine === this.asked) {
      this.show(answer, values);
    }
  }
}
