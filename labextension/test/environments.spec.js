// "Your environments" (../spawners/js/environments.js), without a page: what the spawn form's
// and the home page's block says for a listing, an empty one and one that failed.
const envs = require('../../spawners/js/environments.js');

const SITE = [{ name: 'aifactory', display_name: 'Python (AI Factory)' }];
const ENV = {
  name: 'probe-env',
  size: 3145728,
  size_text: '3.0 MiB',
  kernel: 'probe-env',
  base: 'aifactory',
  scope: 'personal',
  project: '',
  built: '2026-12-04T21:00:00Z'
};

describe('your environments', () => {
  test('each with its size, the project ones named, and the total', () => {
    const team = { ...ENV, name: 'team', scope: 'project', project: 'ehpc01', kernel: '', size_text: '1.0 GiB' };
    const v = envs.view({
      listed: true,
      site_kernels: SITE,
      environments: [ENV, team],
      total_text: '1.0 GiB',
      more: 0
    });
    expect(v.kernels).toBe('Site kernels: Python (AI Factory).');
    expect(v.rows.map(r => r.text)).toEqual([
      'probe-env: 3.0 MiB, kernel probe-env over aifactory',
      'team: 1.0 GiB, project ehpc01, no kernel over aifactory'
    ]);
    expect(v.total).toBe('2 environments, 1.0 GiB in all.');
    expect(v.empty).toBe(false);
  });
  test('none yet: the empty state, which says how to make one', () => {
    const v = envs.view({ listed: true, site_kernels: SITE, environments: [], total_text: '0 B', more: 0 });
    expect([v.empty, v.rows, v.total]).toEqual([true, [], '']);
    expect(envs.CREATE).toBe('aifactory-env create NAME --file requirements.txt');
  });
  test('more than are shown are counted', () => {
    const v = envs.view({ listed: true, site_kernels: [], environments: [ENV], total_text: '3.0 MiB', more: 4 });
    expect(v.total).toBe('5 environments (and 4 more), 3.0 MiB in all.');
    expect(v.kernels).toBe('Site kernels: none.');
  });
  test("entries that could not be read are counted beside the others (a teammate's bad folder)", () => {
    const v = envs.view({
      listed: true,
      site_kernels: SITE,
      environments: [ENV],
      total_text: '3.0 MiB',
      more: 0,
      unreadable: 2,
      unreadable_text: '2 entries could not be read.'
    });
    expect([v.rows.length, v.note]).toEqual([1, '2 entries could not be read.']);
    expect(envs.view({ listed: true, site_kernels: SITE, environments: [ENV], total_text: '', more: 0 }).note).toBe('');
  });
  test('a listing that failed says so, and still shows the site kernels', () => {
    const v = envs.view({
      listed: false,
      problem: 'Your environments could not be listed right now (x).',
      site_kernels: SITE,
      environments: []
    });
    expect([v.problem, v.rows, v.empty]).toEqual(['Your environments could not be listed right now (x).', [], false]);
    expect(v.kernels).toBe('Site kernels: Python (AI Factory).');
  });
});
