// The queued page's logic (../hub/js/queued-logic.js), without a page: the start-sooner buttons
// and what the page says once one was pressed.
const queued = require('../../hub/js/queued-logic.js');

describe('while the job waits', () => {
  test('each alternative is one button that says when it would start and what it asks', () => {
    const one = {
      options: { partition: 'acc', gpus: 1 },
      what: '1 GPU',
      start: '2026-12-04T12:00:10',
      start_text: 'now',
      label: '1 GPU: now'
    };
    expect(queued.offers({ job_id: '7', alternatives: [one] })).toEqual([
      { text: 'Start now with 1 GPU instead', options: { partition: 'acc', gpus: 1 } }
    ]);
    expect(queued.offers({ alternatives: [] })).toEqual([]);
    expect(queued.offers({})).toEqual([]);
  });
  test('after a press: the new job, or why the old one keeps waiting', () => {
    expect(queued.outcome(true, { job_id: '8', replaced: '7' })).toBe(
      'Job 8 was submitted in place of job 7, which is cancelled; this page follows the new one.'
    );
    const refused = { message: 'SLURM refused the new job: no. Job 7 keeps waiting.' };
    expect(queued.outcome(false, refused)).toBe(refused.message);
    expect(queued.outcome(false, {})).toBe('The waiting job could not be replaced.');
  });
});
