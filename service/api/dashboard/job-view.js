// One job, live: its status and progress, and the tutorial's two charts, fed by GET /jobs/{id}/events.

import { api } from './api.js';
import { LineChart } from './chart.js';
import { formatPercent, shortId } from './ui.js';

export class JobView {
  constructor(root, { onEnd, onChange }) {
    this.root = root;
    this.onEnd = onEnd;
    this.onChange = onChange; // after every change shown: a status, a point, the end
    this.title = root.querySelector('h2');
    this.summary = root.querySelector('.job-summary');
    this.progress = root.querySelector('progress');
    this.cancelButton = root.querySelector('[data-action=cancel]');
    const series = [{ key: 'train', kind: 'line' }, { key: 'validation', kind: 'dots' }];
    this.loss = new LineChart(root.querySelector('#loss-chart'), { series, xLabel: 'batch' });
    this.accuracy = new LineChart(root.querySelector('#accuracy-chart'), { series, xLabel: 'batch', yRange: [0, 1] });
    this.cancelButton.addEventListener('click', () => this.cancel());
  }

  get jobId() { return this.job?.id; }

  show(job) {
    this.events?.close();
    this.job = job;
    this.attempt = null;
    this.root.dataset.jobId = job.id;
    this.render();
    // The server sends the whole history first, then each batch as it is trained; after a dropped
    // connection the browser reconnects with Last-Event-ID and the server resumes after it.
    this.events = new EventSource(`jobs/${job.id}/events`);
    this.events.addEventListener('metric', (event) => this.addPoint(JSON.parse(event.data)));
    this.events.addEventListener('status', (event) => {
      this.job = { ...this.job, ...JSON.parse(event.data) }; // its status, and whether it has ended
      this.render();
    });
    this.events.addEventListener('end', (event) => {
      this.events.close();
      this.job = JSON.parse(event.data);
      this.render();
      this.onEnd(this.job);
    });
  }

  addPoint(point) {
    if (point.attempt !== this.attempt) { // a retried job trains again from batch 1
      this.attempt = point.attempt;
      this.loss.reset(this.job.progress.total_batches);
      this.accuracy.reset(this.job.progress.total_batches);
    }
    this.loss.add('train', point.batch, point.loss);
    this.accuracy.add('train', point.batch, point.accuracy);
    if (point.val_accuracy !== undefined) {
      this.loss.add('validation', point.batch, point.val_loss);
      this.accuracy.add('validation', point.batch, point.val_accuracy);
    }
    this.job = { ...this.job, latest: point, progress: { ...this.job.progress, batch: point.batch } };
    this.render();
  }

  async cancel() {
    this.cancelButton.disabled = true;
    try {
      await api(`jobs/${this.job.id}/cancel`, { method: 'POST' }); // the stream tells when it has stopped
    } catch (error) {
      this.summary.textContent = error.message;
      this.cancelButton.disabled = false;
    }
  }

  render() {
    const { id, status, progress, latest, test_accuracy: testAccuracy, error } = this.job;
    this.root.dataset.status = status;
    this.title.textContent = `Job ${shortId(id)}`;
    this.title.title = id;
    const parts = [status, `batch ${progress.batch} of ${progress.total_batches}`];
    if (latest) parts.push(`loss ${latest.loss.toFixed(3)}`, `accuracy ${formatPercent(latest.accuracy)}`);
    if (testAccuracy != null) parts.push(`test accuracy ${formatPercent(testAccuracy)} on 10,000 images`);
    if (error && error !== status) parts.push(error); // a canceled job's error is just "canceled"
    this.summary.textContent = parts.join(' · ');
    this.progress.value = progress.batch / progress.total_batches;
    this.cancelButton.hidden = this.job.ended;
    this.cancelButton.disabled = false;
    this.onChange(this.job);
  }
}
