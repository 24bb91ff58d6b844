// The jobs, newest first, with status and progress: refreshed every few seconds, and the row of the job that the
// view shows live follows its stream in between; a click opens one.

import { api } from './api.js';
import { el, formatPercent, shortId } from './ui.js';

const REFRESH_MS = 2000;

export class JobsList {
  constructor(list, { onSelect }) {
    this.list = list;
    this.onSelect = onSelect;
    this.selectedId = null;
    setInterval(() => { if (!document.hidden) this.refresh(); }, REFRESH_MS);
  }

  // The job as the live view has it now: its row shows it at once, rather than at the next refresh.
  showLive(job) {
    this.live = job;
    const row = [...this.list.children].find((item) => item.dataset.jobId === job.id);
    row?.replaceWith(this.row(job));
  }

  // A refresh's answer was fetched before the stream's latest points: it does not set the live job's row back,
  // unless it has ended (before the stream says so) or has trained further than the stream has shown.
  newer(job) {
    const { live } = this;
    if (live?.id !== job.id || job.ended || job.progress.batch > live.progress.batch) return job;
    return live;
  }

  select(jobId) {
    this.selectedId = jobId;
    for (const row of this.list.children) row.classList.toggle('selected', row.dataset.jobId === jobId);
  }

  async refresh() {
    let jobs;
    try {
      ({ jobs } = await api('jobs?limit=20'));
    } catch (error) {
      this.list.replaceChildren(el('li', { class: 'note' }, error.message));
      return [];
    }
    const rows = jobs.map((job) => this.row(this.newer(job)));
    this.list.replaceChildren(...(rows.length ? rows : [el('li', { class: 'note' }, 'No jobs yet.')]));
    return jobs;
  }

  row(job) {
    const { batch, total_batches: total } = job.progress;
    const result = job.test_accuracy == null ? `${batch}/${total}` : formatPercent(job.test_accuracy);
    const button = el('button', { type: 'button', class: 'row-button', title: job.id },
      el('span', { class: 'mono' }, shortId(job.id)),
      el('span', { class: `badge ${job.status}` }, job.status),
      el('progress', { max: total, value: batch, 'aria-label': `batch ${batch} of ${total}` }),
      el('span', { class: 'number' }, result));
    button.addEventListener('click', () => this.onSelect(job));
    return el('li', { 'data-job-id': job.id, class: job.id === this.selectedId ? 'selected' : null }, button);
  }
}
